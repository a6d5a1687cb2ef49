// Flatten and Reshape: rows are row-major per sample, so only the logical
// shape changes. The output aliases the input; no copy, no backward work.
#include "neuraxis/layer.hpp"

namespace neuraxis {

namespace {

template <class T>
class Reshape final : public Layer<T> {
  public:
    Reshape(const Config& c, const Shape& in) {
        this->in_ = in;
        const idx size = numel(in);
        if (c.kind() == "flatten") {
            this->out_ = {size};
            return;
        }
        Shape target = c.ints("target_shape");
        idx known = 1, unknown = -1;
        for (std::size_t i = 0; i < target.size(); ++i) {
            if (target[i] == -1 && unknown < 0) {
                unknown = idx(i);
            } else if (target[i] < 1) {
                c.fail("'target_shape' " + shape_str(target) +
                       " must hold positive sizes and at most one -1");
            } else {
                known *= target[i];
            }
        }
        if (unknown >= 0 && known > 0 && size % known == 0) target[unknown] = size / known;
        if (target.empty() || numel(target) != size)
            c.fail("cannot reshape inputs of shape " + shape_str(in) + " (" +
                   std::to_string(size) + " values) to " + shape_str(c.ints("target_shape")));
        this->out_ = target;
    }
    double macs_per_row() const override { return 0.0; }
    bool aliases_input() const override { return true; }
    void forward(const Rows&, const T* const*, const T*, T*, std::byte*) const override {}
    void backward(const Rows&, const T* const*, const T*, const T*, const std::byte*, T*, T*,
                  T* const*) const override {}
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_reshape(const Config& c, const Shape& in) {
    return std::make_unique<Reshape<T>>(c, in);
}
template std::unique_ptr<Layer<float>> make_reshape(const Config&, const Shape&);
template std::unique_ptr<Layer<double>> make_reshape(const Config&, const Shape&);

}  // namespace neuraxis
