// Embedding: each input value is a row index into the table E (input_dim,
// output_dim); y[..., :] = E[x[...]]. Any per-sample shape of ids, output
// shape (..., output_dim). The ids arrive as T values: the Python front checks
// them (integers in [0, input_dim)) before any engine call, so here an id is
// only made safe, never reported: truncated toward zero as Keras casts, NaN and
// out-of-range values clamped into [0, input_dim) (JAX's take), so no thread
// ever reads outside E or throws inside the batch's parallel region.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "neuraxis/layer.hpp"
#include "neuraxis/threads.hpp"

namespace neuraxis {

namespace {

template <class T>
inline idx row_of(T v, idx rows) {
    if (!(v > T(0))) return 0;  // also NaN
    if (v >= T(rows)) return rows - 1;
    return idx(v);  // truncation toward zero, as a cast to int32
}

template <class T>
class Embedding final : public Layer<T> {
  public:
    Embedding(const Config& c, const Shape& in) {
        rows_ = c.integer("input_dim");
        dim_ = c.integer("output_dim");
        if (rows_ < 1)
            c.fail("'input_dim' must be a positive integer, got " + std::to_string(rows_));
        if (dim_ < 1)
            c.fail("'output_dim' must be a positive integer, got " + std::to_string(dim_));
        trainable_ = c.flag("trainable", true);
        mask_zero_ = c.flag("mask_zero", false);
        if (in.empty()) c.fail("needs inputs with at least one axis");
        if (mask_zero_ && in.size() != 1)
            c.fail("mask_zero needs ids of shape (steps,), got " + shape_str(in));
        this->in_ = in;
        this->out_ = in;
        this->out_.push_back(dim_);
        ids_ = numel(in);
    }
    std::vector<ParamSpec> params() const override {
        return {{{rows_, dim_}, true, trainable_}};
    }
    double macs_per_row() const override { return kElementCost * double(ids_ * dim_); }
    // mask_zero: id 0 marks a padding step (Keras's mask for the layers after it)
    idx mask_steps() const override { return mask_zero_ ? ids_ : 0; }

    // y[i][p][:] = E[x[i][p]][:]
    void forward(const Rows& r, const T* const* W, const T* x, T* y,
                 std::byte*) const override {
        const idx n = r.m * ids_;
        const T* E = W[0];
        for (idx i = 0; i < n; ++i)
            std::memcpy(y + i * dim_, E + row_of(x[i], rows_) * dim_, sizeof(T) * dim_);
        if (mask_zero_ && r.mask)
            for (idx i = 0; i < n; ++i) r.mask[i] = row_of(x[i], rows_) != 0 ? 1 : 0;
        if (r.nonfinite) *r.nonfinite = *r.nonfinite || !all_finite(y, n * dim_);
    }
    // dE[x[i][p]][:] += dy[i][p][:] (repeated ids accumulate, in row order);
    // ids have no gradient: dx (a layer below) gets zeros.
    void backward(const Rows& r, const T* const*, const T* x, const T*, const std::byte*, T* dy,
                  T* dx, T* const* dW) const override {
        if (dx) std::fill(dx, dx + r.m * ids_, T(0));
        if (!dW || !dW[0]) return;  // by slices (param_grad), or frozen
        scatter(r.m, x, dy, 0, rows_, dW[0]);
    }

    // Slices of whole table rows: each thread adds the dy rows of the ids in its
    // slice, scanning the batch's ids in order (the same sums as backward()).
    bool grads_by_slice() const override { return true; }
    idx grad_granularity(int) const override { return dim_; }
    void param_grad(int, idx m, const T* x, const T* dz, idx e0, idx e1, T* g) const override {
        scatter(m, x, dz, e0 / dim_, e1 / dim_, g);
    }

  private:
    // g (rows [r0, r1) of dE) = sum over the m rows' ids v in [r0, r1) of dy at v
    void scatter(idx m, const T* x, const T* dy, idx r0, idx r1, T* g) const {
        std::fill(g, g + (r1 - r0) * dim_, T(0));
        const idx n = m * ids_;
        for (idx i = 0; i < n; ++i) {
            const idx v = row_of(x[i], rows_);
            if (v < r0 || v >= r1) continue;
            T* gr = g + (v - r0) * dim_;
            const T* d = dy + i * dim_;
            for (idx j = 0; j < dim_; ++j) gr[j] += d[j];
        }
    }

    idx rows_ = 0, dim_ = 0, ids_ = 0;
    bool trainable_ = true, mask_zero_ = false;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_embedding(const Config& c, const Shape& in) {
    return std::make_unique<Embedding<T>>(c, in);
}
template std::unique_ptr<Layer<float>> make_embedding(const Config&, const Shape&);
template std::unique_ptr<Layer<double>> make_embedding(const Config&, const Shape&);

}  // namespace neuraxis
