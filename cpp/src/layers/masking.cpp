// Masking(mask_value): a step whose features all equal mask_value is masked: its
// output is zeros (as Keras's inputs * mask) and the step mask (Rows::mask) says
// so to the recurrent layers after it, which then skip it.
#include "neuraxis/layer.hpp"
#include "neuraxis/threads.hpp"

namespace neuraxis {

namespace {

template <class T>
class Masking final : public Layer<T> {
  public:
    Masking(const Config& c, const Shape& in) : value_(c.number("mask_value", 0.0)) {
        if (in.size() != 2)
            c.fail("needs inputs of shape (steps, features), got " + shape_str(in));
        this->in_ = this->out_ = in;
        T_ = in[0];
        F_ = in[1];
    }
    idx mask_steps() const override { return T_; }
    double macs_per_row() const override { return kElementCost * double(T_ * F_); }

    void forward(const Rows& r, const T* const*, const T* x, T* y, std::byte*) const override {
        if (r.nonfinite && !all_finite(x, r.m * T_ * F_)) *r.nonfinite = true;
        const T v = T(value_);
        for (idx i = 0; i < r.m; ++i)
            for (idx t = 0; t < T_; ++t) {
                const T* xs = x + (i * T_ + t) * F_;
                T* ys = y + (i * T_ + t) * F_;
                bool real = false;
                for (idx f = 0; f < F_; ++f) real = real || !(xs[f] == v);
                if (r.mask) r.mask[i * T_ + t] = real ? 1 : 0;
                for (idx f = 0; f < F_; ++f) ys[f] = real ? xs[f] : T(0);
            }
    }
    void backward(const Rows& r, const T* const*, const T* x, const T*, const std::byte*, T* dy,
                  T* dx, T* const*) const override {
        if (!dx) return;
        const T v = T(value_);
        for (idx i = 0; i < r.m; ++i)
            for (idx t = 0; t < T_; ++t) {
                const T* xs = x + (i * T_ + t) * F_;
                bool real = false;
                for (idx f = 0; f < F_; ++f) real = real || !(xs[f] == v);
                for (idx f = 0; f < F_; ++f)
                    dx[(i * T_ + t) * F_ + f] = real ? dy[(i * T_ + t) * F_ + f] : T(0);
            }
    }

  private:
    double value_;
    idx T_ = 0, F_ = 0;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_masking(const Config& c, const Shape& in) {
    return std::make_unique<Masking<T>>(c, in);
}
template std::unique_ptr<Layer<float>> make_masking(const Config&, const Shape&);
template std::unique_ptr<Layer<double>> make_masking(const Config&, const Shape&);

}  // namespace neuraxis
