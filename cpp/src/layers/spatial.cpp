// ZeroPadding1D/2D, Cropping1D/2D and UpSampling1D/2D (nearest): data movement
// on (H, W, C) samples, the 1-D layers on (T, C) samples as H = 1.
#include "neuraxis/layer.hpp"
#include "neuraxis/threads.hpp"

namespace neuraxis {

namespace {

// (H, W, C) of a sample; a 1-D layer's (T, C) as (1, T, C).
struct Image {
    idx H, W, C;
};

Image image_of(const Config& c, const Shape& in, bool one_d) {
    if (one_d && in.size() != 2)
        c.fail("needs inputs of shape (steps, channels), got " + shape_str(in));
    if (!one_d && in.size() != 3)
        c.fail("needs inputs of shape (height, width, channels), got " + shape_str(in));
    return one_d ? Image{1, in[0], in[1]} : Image{in[0], in[1], in[2]};
}

Shape shape_of(const Image& im, bool one_d) {
    return one_d ? Shape{im.W, im.C} : Shape{im.H, im.W, im.C};
}

// zero_pad*: 'padding' [top, bottom, left, right] (1-D: [left, right]) zeros
// around each sample; crop*: 'cropping' as many rows/columns removed.
template <class T>
class PadCrop final : public Layer<T> {
  public:
    PadCrop(const Config& c, const Shape& in) {
        const std::string kind = c.kind();
        const bool one_d = kind == "zero_pad1d" || kind == "crop1d";
        const bool crop = kind == "crop1d" || kind == "crop2d";
        const char* key = crop ? "cropping" : "padding";
        const auto v = c.ints(key);
        if (v.size() != (one_d ? 2u : 4u))
            c.fail(std::string("'") + key + "' must hold " + (one_d ? "2" : "4") + " integers");
        for (idx e : v)
            if (e < 0) c.fail(std::string("'") + key + "' must not be negative");
        const idx top = one_d ? 0 : v[0], bottom = one_d ? 0 : v[1];
        const idx left = v[one_d ? 0 : 2], right = v[one_d ? 1 : 3];
        x_ = image_of(c, in, one_d);
        const idx sign = crop ? -1 : 1;
        y_ = {x_.H + sign * (top + bottom), x_.W + sign * (left + right), x_.C};
        if (y_.H < 1 || y_.W < 1)
            c.fail("cropping " + shape_str(v) + " leaves nothing of inputs of shape " +
                   shape_str(in));
        top_ = sign * top;
        left_ = sign * left;
        this->in_ = in;
        this->out_ = shape_of(y_, one_d);
    }
    double macs_per_row() const override { return kElementCost * double(this->out_size()); }

    void forward(const Rows& r, const T* const*, const T* x, T* y, std::byte*) const override {
        if (r.nonfinite && !all_finite(x, r.m * this->in_size())) *r.nonfinite = true;
        pad_crop2d(x, r.m, x_.H, x_.W, x_.C, y_.H, y_.W, top_, left_, y);
    }
    // dx = dy moved back: the inverse window
    void backward(const Rows& r, const T* const*, const T*, const T*, const std::byte*, T* dy,
                  T* dx, T* const*) const override {
        if (dx) pad_crop2d(dy, r.m, y_.H, y_.W, x_.C, x_.H, x_.W, -top_, -left_, dx);
    }

  private:
    Image x_{}, y_{};  // x's and y's (H, W, C)
    idx top_ = 0, left_ = 0;  // where x's (0, 0) lands in y (negative: cropped)
};

// upsample*: 'size' [SH, SW] (1-D: [S]) copies of every row and column.
template <class T>
class UpSample final : public Layer<T> {
  public:
    UpSample(const Config& c, const Shape& in) {
        const bool one_d = c.kind() == "upsample1d";
        const auto v = c.ints("size");
        if (v.size() != (one_d ? 1u : 2u))
            c.fail(std::string("'size' must hold ") + (one_d ? "1 integer" : "2 integers"));
        for (idx e : v)
            if (e < 1) c.fail("'size' must hold positive integers, got " + shape_str(v));
        sh_ = one_d ? 1 : v[0];
        sw_ = v.back();
        x_ = image_of(c, in, one_d);
        this->in_ = in;
        this->out_ = shape_of(Image{x_.H * sh_, x_.W * sw_, x_.C}, one_d);
    }
    double macs_per_row() const override { return kElementCost * double(this->out_size()); }

    void forward(const Rows& r, const T* const*, const T* x, T* y, std::byte*) const override {
        if (r.nonfinite && !all_finite(x, r.m * this->in_size())) *r.nonfinite = true;
        upsample2d_forward(x, r.m, x_.H, x_.W, x_.C, sh_, sw_, y);
    }
    // dx = the sum of dy over each copied block
    void backward(const Rows& r, const T* const*, const T*, const T*, const std::byte*, T* dy,
                  T* dx, T* const*) const override {
        if (dx) upsample2d_backward(dy, r.m, x_.H, x_.W, x_.C, sh_, sw_, dx);
    }

  private:
    Image x_{};  // x's (H, W, C)
    idx sh_ = 1, sw_ = 1;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_spatial(const Config& c, const Shape& in) {
    if (c.kind() == "upsample1d" || c.kind() == "upsample2d")
        return std::make_unique<UpSample<T>>(c, in);
    return std::make_unique<PadCrop<T>>(c, in);
}
template std::unique_ptr<Layer<float>> make_spatial(const Config&, const Shape&);
template std::unique_ptr<Layer<double>> make_spatial(const Config&, const Shape&);

}  // namespace neuraxis
