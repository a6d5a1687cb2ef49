// Conv2D: y = f(conv(x, W) + b) on (H, W, C) samples; images of a block are
// convolved one by one through the thread's im2col scratch (work_bytes).
// Conv1D is the same layer on (T, C) samples with H = 1 (the same memory), and
// the 1-D and global pools are Pool2D with H = 1 (global: one window over all).
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

idx single(const Config& c, const std::string& key, idx fallback) {
    if (!c.has(key)) return fallback;
    const auto v = c.ints(key);
    if (v.size() != 1) c.fail("'" + key + "' must hold 1 integer");
    return v[0];
}

std::string padding_of(const Config& c, bool causal_too) {
    const std::string p = c.text("padding", "valid");
    if (p != "valid" && p != "same" && !(causal_too && p == "causal"))
        c.fail(std::string("'padding' must be ") +
               (causal_too ? "'valid', 'same' or 'causal'" : "'valid' or 'same'") + ", got '" +
               p + "'");
    return p;
}

bool same_padding(const Config& c) { return padding_of(c, false) == "same"; }

// A geometry, its ValueError reported as this layer's.
template <class F>
Conv2dGeom checked(const Config& c, F&& geom) {
    try {
        return geom();
    } catch (const ValueError& e) {
        c.fail(e.what());
    }
}

template <class T>
class Conv2D final : public Layer<T> {
  public:
    Conv2D(const Config& c, const Shape& in) : one_d_(c.kind() == "conv1d") {
        const idx F = c.integer("filters");
        if (F < 1) c.fail("'filters' must be a positive integer, got " + std::to_string(F));
        act_ = parse_activation(c.text("activation", "identity"), c.number("alpha", 0.0));
        bias_ = c.flag("use_bias", true);
        trainable_ = c.flag("trainable", true);
        if (one_d_) {
            const idx k = single(c, "kernel_size", 0), s = single(c, "strides", 1);
            const idx d = single(c, "dilation_rate", 1);
            const std::string padding = padding_of(c, true);
            if (in.size() != 2)
                c.fail("needs inputs of shape (steps, channels), got " + shape_str(in));
            g_ = checked(c, [&] { return conv1d_geom(in[0], in[1], k, F, s, d, padding); });
        } else {
            const auto [kh, kw] = pair_of(c, "kernel_size", 0);
            const auto [sh, sw] = pair_of(c, "strides", 1);
            const auto [dh, dw] = pair_of(c, "dilation_rate", 1);
            const bool same = same_padding(c);
            if (in.size() != 3)
                c.fail("needs inputs of shape (height, width, channels), got " + shape_str(in));
            g_ = checked(c, [&] {
                return conv2d_geom(in[0], in[1], in[2], kh, kw, F, sh, sw, dh, dw, same);
            });
        }
        this->in_ = in;
        this->out_ = one_d_ ? Shape{g_.OW, F} : Shape{g_.OH, g_.OW, F};
        k_ = g_.KH * g_.KW * g_.C;
    }
    std::vector<ParamSpec> params() const override {
        const Shape kernel = one_d_ ? Shape{g_.KW, g_.C, g_.F} : Shape{g_.KH, g_.KW, g_.C, g_.F};
        std::vector<ParamSpec> p{{kernel, true, trainable_}};
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
    bool one_d_;
    Conv2dGeom g_{};
    idx k_ = 0;
    Activation act_;
    bool bias_ = true, trainable_ = true;
};

// MaxPooling2D / AveragePooling2D: the window's max (arg-max kept per row for
// backward) or the mean of its positions inside the input. The 1-D pools run
// with H = 1; the global pools with one window over every position: (P, C)
// with P = the product of all but the last axis.
template <class T>
class Pool2D final : public Layer<T> {
  public:
    Pool2D(const Config& c, const Shape& in)
        : max_(c.kind() == "max_pool2d" || c.kind() == "max_pool1d" ||
               c.kind() == "global_max_pool") {
        const std::string kind = c.kind();
        this->in_ = in;
        if (kind == "global_max_pool" || kind == "global_avg_pool") {
            const bool keepdims = c.flag("keepdims", false);
            if (in.size() < 2)
                c.fail("needs inputs of shape (..., channels), got " + shape_str(in));
            const idx C = in.back(), P = numel(in) / C;
            g_ = checked(c, [&] { return pool2d_geom(1, P, C, 1, P, 1, P, false); });
            this->out_ = keepdims ? Shape(in.size(), 1) : Shape{C};
            this->out_.back() = C;
        } else if (kind == "max_pool1d" || kind == "avg_pool1d") {
            const idx p = single(c, "pool_size", 2);
            const idx s = single(c, "strides", p);
            const bool same = same_padding(c);
            if (in.size() != 2)
                c.fail("needs inputs of shape (steps, channels), got " + shape_str(in));
            g_ = checked(c, [&] { return pool2d_geom(1, in[0], in[1], 1, p, 1, s, same); });
            this->out_ = {g_.OW, g_.C};
        } else {
            const auto [ph, pw] = pair_of(c, "pool_size", 2);
            const auto [sh, sw] = c.has("strides") ? pair_of(c, "strides", 1) : std::pair{ph, pw};
            const bool same = same_padding(c);
            if (in.size() != 3)
                c.fail("needs inputs of shape (height, width, channels), got " + shape_str(in));
            g_ = checked(c, [&] {
                return pool2d_geom(in[0], in[1], in[2], ph, pw, sh, sw, same);
            });
            this->out_ = {g_.OH, g_.OW, g_.C};
        }
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
    bool absorb_input_activation(const Activation& a) override {
        if (!max_) return false;  // an average spreads the gradient over the window
        input_act_ = a;
        absorbed_ = true;
        return true;
    }

    void backward(const Rows& r, const T* const*, const T*, const T* y, const std::byte* saved,
                  T* dy, T* dx, T* const*) const override {
        if (!dx) return;
        // y = f(z) at the arg-max: f'(z) there from the pooled y (dy is scratch)
        if (absorbed_) act_backward(input_act_, y, dy, r.m * this->out_size() / g_.C, g_.C);
        if (max_)
            max_pool2d_backward(dy, r.m, g_, reinterpret_cast<const std::int32_t*>(saved), dx);
        else
            avg_pool2d_backward(dy, r.m, g_, dx);
    }

  private:
    bool max_;
    bool absorbed_ = false;  // backward also applies the input's activation derivative
    Activation input_act_{};
    Conv2dGeom g_{};
};

}  // namespace

// Conv2DTranspose: the gradient of a Conv2D with respect to its input, as Keras /
// TensorFlow define it. Kernel (kh, kw, filters, in_channels), i.e. the kernel of the
// forward convolution that maps this layer's output (Ho, Wo, filters) back to its input
// (H, W, in_channels); output size H * s + max(k - s, 0) ('valid') or H * s ('same'), the
// dilated k. y = f(col2im(x W^T) + b); backward dx = im2col(dz) W, dW = im2col(dz)^T x.
template <class T>
class ConvTranspose2D final : public Layer<T> {
  public:
    ConvTranspose2D(const Config& c, const Shape& in) {
        const idx F = c.integer("filters");
        if (F < 1) c.fail("'filters' must be a positive integer, got " + std::to_string(F));
        act_ = parse_activation(c.text("activation", "identity"), c.number("alpha", 0.0));
        bias_ = c.flag("use_bias", true);
        trainable_ = c.flag("trainable", true);
        const auto [kh, kw] = pair_of(c, "kernel_size", 0);
        const auto [sh, sw] = pair_of(c, "strides", 1);
        const auto [dh, dw] = pair_of(c, "dilation_rate", 1);
        const bool same = same_padding(c);
        if (in.size() != 3)
            c.fail("needs inputs of shape (height, width, channels), got " + shape_str(in));
        if (kh < 1 || kw < 1) c.fail("'kernel_size' must be positive");
        auto out_len = [&](idx n, idx k, idx s, idx d) {
            const idx kd = (k - 1) * d + 1;
            return same ? n * s : n * s + std::max<idx>(kd - s, 0);
        };
        const idx OH = out_len(in[0], kh, sh, dh), OW = out_len(in[1], kw, sw, dw);
        g_ = checked(c, [&] { return conv2d_geom(OH, OW, F, kh, kw, in[2], sh, sw, dh, dw, same); });
        if (g_.OH != in[0] || g_.OW != in[1])
            c.fail("inconsistent transposed geometry for inputs " + shape_str(in));
        this->in_ = in;
        this->out_ = {OH, OW, F};
        k_ = g_.KH * g_.KW * g_.C;
    }
    std::vector<ParamSpec> params() const override {
        std::vector<ParamSpec> p{{{g_.KH, g_.KW, g_.C, g_.F}, true, trainable_}};
        if (bias_) p.push_back({{g_.C}, false, trainable_});
        return p;
    }
    // one image's im2col rows (P x K) twice: col and dcol of the kernels
    idx work_bytes(idx) const override { return 2 * g_.OH * g_.OW * k_ * idx(sizeof(T)); }
    double macs_per_row() const override { return double(g_.OH) * g_.OW * k_ * g_.F; }
    const Activation* output_activation() const override { return &act_; }

    void forward(const Rows& r, const T* const* W, const T* x, T* y, std::byte*) const override {
        T* col = reinterpret_cast<T*>(r.work);
        const idx P = g_.OH * g_.OW;
        conv2d_backward(static_cast<const T*>(nullptr), r.m, g_, W[0], x, y,
                        static_cast<T*>(nullptr), static_cast<T*>(nullptr), col, col + P * k_);
        bias_act_forward(act_, y, bias_ ? W[1] : nullptr, r.m * g_.H * g_.W, g_.C, r.nonfinite);
    }
    void backward(const Rows& r, const T* const* W, const T* x, const T* y, const std::byte*,
                  T* dy, T* dx, T* const* dW) const override {
        const idx rows = r.m * g_.H * g_.W;  // output positions
        T* db = bias_ ? dW[1] : nullptr;
        if (!r.dz && db)
            act_backward_sums(act_, y, dy, rows, g_.C, db);
        else if (!r.dz)
            act_backward(act_, y, dy, rows, g_.C);
        else if (db)
            column_sums(dy, rows, g_.C, 0, g_.C, db);
        T* col = reinterpret_cast<T*>(r.work);
        const idx P = g_.OH * g_.OW;
        if (dx) conv2d_forward(dy, r.m, g_, W[0], dx, col);
        if (dW[0])
            conv2d_backward(dy, r.m, g_, W[0], x, static_cast<T*>(nullptr), dW[0],
                            static_cast<T*>(nullptr), col, col + P * k_);
    }

  private:
    Conv2dGeom g_{};  // the forward convolution: output (H, W, filters) -> input (OH, OW, in)
    idx k_ = 0;
    Activation act_;
    bool bias_ = true, trainable_ = true;
};

template <class T>
std::unique_ptr<Layer<T>> make_conv(const Config& c, const Shape& in) {
    if (c.kind() == "conv2d" || c.kind() == "conv1d") return std::make_unique<Conv2D<T>>(c, in);
    if (c.kind() == "conv2d_transpose") return std::make_unique<ConvTranspose2D<T>>(c, in);
    return std::make_unique<Pool2D<T>>(c, in);
}
template std::unique_ptr<Layer<float>> make_conv(const Config&, const Shape&);
template std::unique_ptr<Layer<double>> make_conv(const Config&, const Shape&);

}  // namespace neuraxis
