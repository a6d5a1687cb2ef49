// Activation: y = f(x) elementwise (softmax over the last axis).
#include <cstring>

#include "neuraxis/layer.hpp"
#include "neuraxis/threads.hpp"

namespace neuraxis {

namespace {

template <class T>
class ActivationLayer final : public Layer<T> {
  public:
    ActivationLayer(const Config& c, const Shape& in) {
        act_ = parse_activation(c.text("activation"), c.number("alpha", 0.0));
        this->in_ = this->out_ = in;
        k_ = in.empty() ? 1 : in.back();
        lead_ = numel(in) / std::max<idx>(k_, 1);
    }
    double macs_per_row() const override { return kElementCost * double(numel(this->in_)); }
    const Activation* output_activation() const override { return &act_; }

    void forward(const Rows& r, const T* const*, const T* x, T* y, std::byte*) const override {
        const idx n = r.m * lead_;
        std::memcpy(y, x, sizeof(T) * n * k_);
        bias_act_forward(act_, y, static_cast<const T*>(nullptr), n, k_, r.nonfinite);
    }
    // dx = dy * f'(x), through y (the loss may have fused f' already)
    void backward(const Rows& r, const T* const*, const T*, const T* y, const std::byte*, T* dy,
                  T* dx, T* const*) const override {
        if (!dx) return;
        const idx n = r.m * lead_;
        if (!r.dz) act_backward(act_, y, dy, n, k_);
        std::memcpy(dx, dy, sizeof(T) * n * k_);
    }

  private:
    Activation act_;
    idx k_ = 1, lead_ = 1;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_activation(const Config& c, const Shape& in) {
    return std::make_unique<ActivationLayer<T>>(c, in);
}
template std::unique_ptr<Layer<float>> make_activation(const Config&, const Shape&);
template std::unique_ptr<Layer<double>> make_activation(const Config&, const Shape&);

}  // namespace neuraxis
