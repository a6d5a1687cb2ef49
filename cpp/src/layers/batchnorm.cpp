// BatchNormalization over the last axis (Keras's axis=-1): every other axis
// of the batch is reduced. Training (and trainable): y = gamma (x - mean) /
// sqrt(var + eps) + beta with the batch's mean and (biased) variance, which
// couples the rows of a batch: each thread reduces its rows into its part
// (Rows::sync), and after a barrier every thread combines all parts in thread
// order. The moving statistics move once per batch (end_batch): moving =
// moving * momentum + batch * (1 - momentum). Otherwise (inference, or the
// layer frozen, as Keras) the moving statistics normalize.
#include <cmath>

#include "neuraxis/layer.hpp"

namespace neuraxis {

namespace {

template <class T>
class BatchNorm final : public Layer<T> {
  public:
    BatchNorm(const Config& c, const Shape& in)
        : momentum_(c.number("momentum", 0.99)),
          eps_(c.number("epsilon", 1e-3)),
          center_(c.flag("center", true)),
          scale_(c.flag("scale", true)),
          trainable_(c.flag("trainable", true)) {
        if (!(eps_ > 0.0)) c.fail("'epsilon' must be positive, got " + std::to_string(eps_));
        this->in_ = this->out_ = in;
        C_ = in.back();
        int p = 0;
        ig_ = scale_ ? p++ : -1;
        ib_ = center_ ? p++ : -1;
        im_ = p++;
        iv_ = p++;
        end_comb_.resize(2 * C_ + 1);
    }
    std::vector<ParamSpec> params() const override {
        std::vector<ParamSpec> p;
        if (scale_) p.push_back({{C_}, false, trainable_});   // gamma
        if (center_) p.push_back({{C_}, false, trainable_});  // beta
        p.push_back({{C_}, false, false});                     // moving_mean
        p.push_back({{C_}, false, false});                     // moving_variance
        return p;
    }
    // [count, mean, M2] of this thread's rows in forward, [sum dy, sum dy xhat] in backward
    idx batch_doubles() const override { return 4 * C_ + 1; }
    // a, b, mean, inv_std, p, q as T, then the combined moments (2C + 1 doubles)
    idx work_bytes(idx) const override {
        return 6 * C_ * idx(sizeof(T)) + (2 * C_ + 1) * idx(sizeof(double));
    }
    double macs_per_row() const override { return 2.0 * double(this->in_size()); }

    void forward(const Rows& r, const T* const* W, const T* x, T* y, std::byte*) const override {
        const idx n = r.m * (this->in_size() / C_);
        if (r.nonfinite && !all_finite(x, n * C_)) *r.nonfinite = true;
        Scratch s = scratch(r);
        if (coupled(r)) {
            bn_moments(x, n, C_, r.sync->parts[r.sync->t]);
            r.sync->barrier();
        }
        statistics(r, W, s);
        bn_scale_shift(x, n, C_, s.mean, s.a, s.b, y);
    }

    // dx = a (dy - mean(dy) - xhat mean(dy xhat)) with the batch statistics
    // (the means over the whole batch, after a barrier), dx = a dy with the
    // moving ones; dgamma = sum dy xhat, dbeta = sum dy over this thread's rows.
    void backward(const Rows& r, const T* const* W, const T* x, const T*, const std::byte*,
                  T* dy, T* dx, T* const* dW) const override {
        const idx n = r.m * (this->in_size() / C_);
        Scratch s = scratch(r);
        statistics(r, W, s);
        const bool batch = coupled(r);
        double* sums = batch ? r.sync->parts[r.sync->t] + 2 * C_ + 1 : s.comb;
        const bool want_sums = batch || (ig_ >= 0 && dW[ig_]) || (ib_ >= 0 && dW[ib_]);
        if (want_sums) bn_grad_sums(x, dy, n, C_, s.mean, s.inv_std, sums);
        if (ig_ >= 0 && dW[ig_])
            for (idx c = 0; c < C_; ++c) dW[ig_][c] = T(sums[C_ + c]);
        if (ib_ >= 0 && dW[ib_])
            for (idx c = 0; c < C_; ++c) dW[ib_][c] = T(sums[c]);
        if (!dx) return;  // (the same for every thread: nobody reads the sums)
        if (!batch) {
            for (idx c = 0; c < C_; ++c) s.p[c] = s.q[c] = T(0);
        } else {
            r.sync->barrier();
            const double N = s.comb[0];
            for (idx c = 0; c < C_; ++c) {
                double sdy = 0.0, sdyx = 0.0;
                for (int u = 0; u < r.sync->nt; ++u) {
                    sdy += r.sync->parts[u][2 * C_ + 1 + c];
                    sdyx += r.sync->parts[u][3 * C_ + 1 + c];
                }
                const double a = double(s.a[c]), is = double(s.inv_std[c]);
                const double p = -a * is * sdyx / N;
                s.p[c] = T(p);
                s.q[c] = T(-a * sdy / N);
            }
        }
        bn_backward_dx(x, dy, n, C_, s.mean, s.a, s.p, s.q, dx);
    }

    void end_batch(T* const* W, const double* const* parts, int nparts) const override {
        if (!trainable_) return;  // ran on the moving statistics: nothing moves
        std::vector<double>& comb = end_comb_;  // training is never concurrent
        bn_combine(parts, nparts, C_, comb.data());
        if (comb[0] == 0.0) return;
        const T mom = T(momentum_), rest = T(1.0 - momentum_);
        for (idx c = 0; c < C_; ++c) {
            W[im_][c] = W[im_][c] * mom + T(comb[1 + c]) * rest;
            W[iv_][c] = W[iv_][c] * mom + T(comb[1 + C_ + c] / comb[0]) * rest;
        }
    }

  private:
    struct Scratch {
        T *a, *b, *mean, *inv_std, *p, *q;
        double* comb;
    };
    Scratch scratch(const Rows& r) const {
        T* w = reinterpret_cast<T*>(r.work);
        return {w, w + C_, w + 2 * C_, w + 3 * C_, w + 4 * C_, w + 5 * C_,
                reinterpret_cast<double*>(w + 6 * C_)};
    }
    bool coupled(const Rows& r) const { return r.training && trainable_ && r.sync; }

    // mean, inv_std and y = (x - mean) a + b's a, b: from the batch's parts (coupled) or
    // the moving statistics.
    void statistics(const Rows& r, const T* const* W, Scratch& s) const {
        const bool batch = coupled(r);
        if (batch) bn_combine(r.sync->parts, r.sync->nt, C_, s.comb);
        for (idx c = 0; c < C_; ++c) {
            const double mean = batch ? s.comb[1 + c] : double(W[im_][c]);
            const double var = batch ? s.comb[1 + C_ + c] / s.comb[0] : double(W[iv_][c]);
            const double inv = 1.0 / std::sqrt(var + eps_);
            const double a = ig_ >= 0 ? double(W[ig_][c]) * inv : inv;
            s.mean[c] = T(mean);
            s.inv_std[c] = T(inv);
            s.a[c] = T(a);
            s.b[c] = ib_ >= 0 ? W[ib_][c] : T(0);
        }
    }

    double momentum_, eps_;
    bool center_, scale_, trainable_;
    idx C_ = 0;
    int ig_ = -1, ib_ = -1, im_ = 0, iv_ = 0;
    mutable std::vector<double> end_comb_;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_batch_norm(const Config& c, const Shape& in) {
    return std::make_unique<BatchNorm<T>>(c, in);
}
template std::unique_ptr<Layer<float>> make_batch_norm(const Config&, const Shape&);
template std::unique_ptr<Layer<double>> make_batch_norm(const Config&, const Shape&);

}  // namespace neuraxis
