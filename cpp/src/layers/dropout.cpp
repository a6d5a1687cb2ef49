// Dropout: inverted dropout in training, the identity otherwise. The mask is
// recomputed from the counter-based seed in backward: nothing is stored.
#include <cstring>

#include "neuraxis/layer.hpp"
#include "neuraxis/threads.hpp"

namespace neuraxis {

namespace {

template <class T>
class Dropout final : public Layer<T> {
  public:
    Dropout(const Config& c, const Shape& in, int index) : index_(index) {
        rate_ = c.number("rate", 0.0);
        if (!(rate_ >= 0.0 && rate_ < 1.0))
            c.fail("'rate' must be in [0, 1), got " + std::to_string(rate_));
        // per_channel (SpatialDropout): one mask entry per (row, channel of the last axis),
        // the same at every position of the sample
        channels_ = c.flag("per_channel", false) ? in.back() : 0;
        this->in_ = this->out_ = in;
    }
    double macs_per_row() const override { return kElementCost * double(numel(this->in_)); }

    void forward(const Rows& r, const T* const*, const T* x, T* y, std::byte*) const override {
        const idx k = this->in_size();
        if (r.training && rate_ > 0.0) {
            apply(r, x, y);
        } else {
            std::memcpy(y, x, sizeof(T) * r.m * k);
            if (r.nonfinite) *r.nonfinite = *r.nonfinite || !all_finite(y, r.m * k);
        }
    }
    // dx = dy * mask (the same mask, from the same counters)
    void backward(const Rows& r, const T* const*, const T*, const T*, const std::byte*, T* dy,
                  T* dx, T* const*) const override {
        if (!dx) return;
        const idx k = this->in_size();
        if (r.training && rate_ > 0.0)
            apply(r, dy, dx);
        else
            std::memcpy(dx, dy, sizeof(T) * r.m * k);
    }

  private:
    // out = in * mask for the block's rows
    void apply(const Rows& r, const T* in, T* out) const {
        const idx k = this->in_size();
        if (!channels_) {
            dropout_apply(r.seed, std::uint64_t(index_), r.row0, r.m, k, rate_, in, out);
            return;
        }
        for (idx i = 0; i < r.m; ++i)
            for (idx c = 0; c < channels_; ++c) {
                const T s = T(dropout_scale(r.seed, std::uint64_t(index_),
                                            std::uint64_t(r.row0 + i), std::uint64_t(c), rate_));
                for (idx e = c; e < k; e += channels_) out[i * k + e] = in[i * k + e] * s;
            }
    }

    double rate_ = 0.0;
    idx channels_ = 0;
    int index_ = 0;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_dropout(const Config& c, const Shape& in, int index) {
    return std::make_unique<Dropout<T>>(c, in, index);
}
template std::unique_ptr<Layer<float>> make_dropout(const Config&, const Shape&, int);
template std::unique_ptr<Layer<double>> make_dropout(const Config&, const Shape&, int);

}  // namespace neuraxis
