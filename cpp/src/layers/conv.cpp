// Conv2D: y = f(conv(x, W) + b) on (H, W, C) samples; images of a block are
// convolved one by one through the thread's im2col scratch (work_bytes).
#include "neuraxis/layer.hpp"

namespace neuraxis {

namespace {

std::pair<idx, idx> pair_of(const Config& c, const std::string& key, idx fallback) {
    if (!c.has(key)) return {fallback, fallback};
    const auto v = c.ints(key);
    if (v.size() == 1) return {v[0], v[0]};
    if (v.size() != 2) c.fail("'" + key + "' must hold 1 or 2 integers");
    return {v[0], v[1]};
}

bool same_padding(const Config& c) {
    const std::string p = c.text("padding", "valid");
    if (p != "valid" && p != "same") c.fail("'padding' must be 'valid' or 'same', got '" + p + "'");
    return p == "same";
}

template <class T>
class Conv2D final : public Layer<T> {
  public:
    Conv2D(const Config& c, const Shape& in) {
        const idx F = c.integer("filters");
        if (F < 1) c.fail("'filters' must be a positive integer, got " + std::to_string(F));
        const auto [kh, kw] = pair_of(c, "kernel_size", 0);
        const auto [sh, sw] = pair_of(c, "strides", 1);
        const auto [dh, dw] = pair_of(c, "dilation_rate", 1);
        const bool same = same_padding(c);
        act_ = parse_activation(c.text("activation", "identity"), c.number("alpha", 0.0));
        bias_ = c.flag("use_bias", true);
        trainable_ = c.flag("trainable", true);
        if (in.size() != 3)
            c.fail("needs inputs of shape (height, width, channels), got " + shape_str(in));
        try {
            g_ = conv2d_geom(in[0], in[1], in[2], kh, kw, F, sh, sw, dh, dw, same);
        } catch (const ValueError& e) {
            c.fail(e.what());
        }
        this->in_ = in;
        this->out_ = {g_.OH, g_.OW, F};
        k_ = g_.KH * g_.KW * g_.C;
    }
    std::vector<ParamSpec> params() const override {
        std::vector<ParamSpec> p{{{g_.KH, g_.KW, g_.C, g_.F}, true, trainable_}};
        if (bias_) p.push_back({{g_.F}, false, trainable_});
        return p;
    }
    idx work_bytes(idx) const override { return 2 * g_.OH * g_.OW * k_ * idx(sizeof(T)); }
    double macs_per_row() const override { return double(g_.OH) * g_.OW * k_ * g_.F; }
    const Activation* output_activation() const override { return &act_; }

    // y = f(im2col(x) W + b)
    void forward(const Rows& r, const T* const* W, const T* x, T* y, std::byte*) const override {
        conv2d_forward_act(x, r.m, g_, W[0], bias_ ? W[1] : nullptr, act_, y,
                           reinterpret_cast<T*>(r.work), r.nonfinite);
    }
    // dz = dy f'(z); dW = sum im2col(x)^T dz, db = colsum dz, dx = col2im(dz W^T)
    void backward(const Rows& r, const T* const* W, const T* x, const T* y, const std::byte*,
                  T* dy, T* dx, T* const* dW) const override {
        const idx P = g_.OH * g_.OW;
        T* db = bias_ ? dW[1] : nullptr;
        if (!r.dz && db)  // dz and the bias gradient in one pass
            act_backward_sums(act_, y, dy, r.m * P, g_.F, db);
        else if (!r.dz)
            act_backward(act_, y, dy, r.m * P, g_.F);
        else if (db)
            column_sums(dy, r.m * P, g_.F, 0, g_.F, db);
        T* col = reinterpret_cast<T*>(r.work);
        conv2d_backward(x, r.m, g_, W[0], dy, dx, dW[0], static_cast<T*>(nullptr), col,
                        col + P * k_);
    }

  private:
    Conv2dGeom g_{};
    idx k_ = 0;
    Activation act_;
    bool bias_ = true, trainable_ = true;
};

// MaxPooling2D / AveragePooling2D: the window's max (arg-max kept per row for
// backward) or the mean of its positions inside the input.
template <class T>
class Pool2D final : public Layer<T> {
  public:
    Pool2D(const Config& c, const Shape& in) : max_(c.kind() == "max_pool2d") {
        const auto [ph, pw] = pair_of(c, "pool_size", 2);
        const auto [sh, sw] = c.has("strides") ? pair_of(c, "strides", 1) : std::pair{ph, pw};
        const bool same = same_padding(c);
        if (in.size() != 3)
            c.fail("needs inputs of shape (height, width, channels), got " + shape_str(in));
        try {
            g_ = pool2d_geom(in[0], in[1], in[2], ph, pw, sh, sw, same);
        } catch (const ValueError& e) {
            c.fail(e.what());
        }
        this->in_ = in;
        this->out_ = {g_.OH, g_.OW, g_.C};
    }
    idx saved_bytes_per_row() const override {
        return max_ ? this->out_size() * idx(sizeof(std::int32_t)) : 0;
    }
    double macs_per_row() const override {
        return double(this->out_size()) * g_.KH * g_.KW;
    }

    void forward(const Rows& r, const T* const*, const T* x, T* y, std::byte* saved) const override {
        if (r.nonfinite && !all_finite(x, r.m * this->in_size())) *r.nonfinite = true;
        if (max_)
            max_pool2d_forward(x, r.m, g_, y, reinterpret_cast<std::int32_t*>(saved));
        else
            avg_pool2d_forward(x, r.m, g_, y);
    }
    void backward(const Rows& r, const T* const*, const T*, const T*, const std::byte* saved,
                  T* dy, T* dx, T* const*) const override {
        if (!dx) return;
        if (max_)
            max_pool2d_backward(dy, r.m, g_, reinterpret_cast<const std::int32_t*>(saved), dx);
        else
            avg_pool2d_backward(dy, r.m, g_, dx);
    }

  private:
    bool max_;
    Conv2dGeom g_{};
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_conv(const Config& c, const Shape& in) {
    if (c.kind() == "conv2d") return std::make_unique<Conv2D<T>>(c, in);
    return std::make_unique<Pool2D<T>>(c, in);
}
template std::unique_ptr<Layer<float>> make_conv(const Config&, const Shape&);
template std::unique_ptr<Layer<double>> make_conv(const Config&, const Shape&);

}  // namespace neuraxis
