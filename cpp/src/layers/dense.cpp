// Dense: y = f(x @ W + b) over the last axis (leading axes are more rows).
#include "neuraxis/layer.hpp"

namespace neuraxis {

namespace {

template <class T>
class Dense final : public Layer<T> {
  public:
    Dense(const Config& c, const Shape& in) {
        units_ = c.integer("units");
        if (units_ < 1) c.fail("'units' must be a positive integer, got " + std::to_string(units_));
        act_ = parse_activation(c.text("activation", "identity"), c.number("alpha", 0.0));
        bias_ = c.flag("use_bias", true);
        trainable_ = c.flag("trainable", true);
        if (in.empty()) c.fail("needs inputs with at least one axis");
        this->in_ = in;
        this->out_ = in;
        this->out_.back() = units_;
        fan_in_ = in.back();
        lead_ = numel(in) / std::max<idx>(fan_in_, 1);
    }
    std::vector<ParamSpec> params() const override {
        std::vector<ParamSpec> p{{{fan_in_, units_}, true, trainable_}};
        if (bias_) p.push_back({{units_}, false, trainable_});
        return p;
    }
    double macs_per_row() const override { return double(lead_) * fan_in_ * units_; }
    const Activation* output_activation() const override { return &act_; }

    // y = f(x W + b); the first computing layer also probes x W + b for NaN/inf
    void forward(const Rows& r, const T* const* W, const T* x, T* y,
                 std::byte*) const override {
        dense_act_forward(x, r.m * lead_, fan_in_, W[0], bias_ ? W[1] : nullptr, units_, act_, y,
                          r.nonfinite);
    }
    // dz = dy * f'(z) (unless the loss already gave dz); dW = x^T dz, db = colsum dz, dx = dz W^T
    void backward(const Rows& r, const T* const* W, const T* x, const T* y, const std::byte*,
                  T* dy, T* dx, T* const* dW) const override {
        const idx n = r.m * lead_;
        if (!r.dz) act_backward(act_, y, dy, n, units_);
        dense_backward(x, n, fan_in_, W[0], units_, dy, dx, dW[0], bias_ ? dW[1] : nullptr);
    }

    bool forward_by_slice() const override { return lead_ == 1; }
    void forward_part(idx m, const T* const* W, const T* x, idx ld, idx c0, idx c1,
                      T* part) const override {
        dense_partial_forward(x + c0, m, ld, c1 - c0, W[0] + c0 * units_, units_, part);
    }
    void forward_finish(const Rows& r, const T* const* W, const T* const* parts, int nparts,
                        T* y) const override {
        sum_parts(parts, nparts, r.m * units_, y);
        bias_act_forward(act_, y, bias_ ? W[1] : nullptr, r.m, units_, r.nonfinite);
    }
    bool grads_by_slice() const override { return true; }
    idx grad_granularity(int p) const override { return p == 0 ? units_ : 1; }
    // W rows [c0, c1): dW[c0:c1] = x[:, c0:c1]^T dz;  bias [j0, j1): db = colsum dz[:, j0:j1]
    void param_grad(int p, idx m, const T* x, const T* dz, idx e0, idx e1, T* g) const override {
        const idx n = m * lead_;
        if (p == 0) {
            const idx c0 = e0 / units_, rows = (e1 - e0) / units_;
            dense_weight_grad(x + c0, n, fan_in_, rows, dz, units_, g);
        } else {
            column_sums(dz, n, units_, e0, e1, g);
        }
    }

  private:
    idx units_ = 0, fan_in_ = 0, lead_ = 1;
    Activation act_;
    bool bias_ = true, trainable_ = true;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_dense(const Config& c, const Shape& in) {
    return std::make_unique<Dense<T>>(c, in);
}
template std::unique_ptr<Layer<float>> make_dense(const Config&, const Shape&);
template std::unique_ptr<Layer<double>> make_dense(const Config&, const Shape&);

}  // namespace neuraxis
