// 2-D max and average pooling, NHWC. Max keeps the arg-max of each output
// (the first in window order on ties) for backward; average divides by the
// number of window positions inside the input (padding='same' does not count
// the padding, as TensorFlow and Keras).
#include <algorithm>
#include <limits>

#include "neuraxis/kernels.hpp"
#include "neuraxis/simd.hpp"

namespace neuraxis {

Conv2dGeom pool2d_geom(idx H, idx W, idx C, idx PH, idx PW, idx SH, idx SW, bool same) {
    if (PH < 1 || PW < 1 || SH < 1 || SW < 1)
        throw ValueError("pool2d: pool sizes and strides must be positive");
    Conv2dGeom g = conv2d_geom(H, W, C, PH, PW, C, SH, SW, 1, 1, same);
    return g;
}

// y[oh][ow][c] = max over the window; arg[...] = the input offset (h*W + w)*C + c of it.
// Window positions outer, channels inner (contiguous, vectorised, branch-free);
// the first position inside the input starts the max, a later one replaces it
// only when strictly greater (ties keep the first), and a NaN is taken and kept.
namespace {
template <class F>
NX_INLINE void each_window(const Conv2dGeom& g, F&& f) {  // f(output offset / C, h0, h1, w0, w1)
    for (idx oh = 0; oh < g.OH; ++oh) {
        const idx h0 = std::max<idx>(oh * g.SH - g.PT, 0);
        const idx h1 = std::min<idx>(oh * g.SH - g.PT + g.KH, g.H);
        for (idx ow = 0; ow < g.OW; ++ow) {
            const idx w0 = std::max<idx>(ow * g.SW - g.PL, 0);
            const idx w1 = std::min<idx>(ow * g.SW - g.PL + g.KW, g.W);
            f(oh * g.OW + ow, h0, h1, w0, w1);
        }
    }
}

template <class T>
NX_INLINE void max_pool_image(const T* xi, const Conv2dGeom& g, T* y, std::int32_t* arg) {
    const idx C = g.C;
    each_window(g, [&](idx p, idx h0, idx h1, idx w0, idx w1) __attribute__((always_inline)) {
        T* yo = y + p * C;
        std::int32_t* ao = arg ? arg + p * C : nullptr;
        const idx first = (h0 * g.W + w0) * C;
        std::copy(xi + first, xi + first + C, yo);
        if (ao)
            for (idx c = 0; c < C; ++c) ao[c] = std::int32_t(first + c);
        for (idx h = h0; h < h1; ++h)
            for (idx w = (h == h0 ? w0 + 1 : w0); w < w1; ++w) {
                const std::int32_t o = std::int32_t((h * g.W + w) * C);
                const T* xr = xi + o;
                if (ao) {
#pragma omp simd
                    for (idx c = 0; c < C; ++c) {
                        const T v = xr[c], b = yo[c];
                        const bool take = v > b || (v != v && b == b);
                        yo[c] = take ? v : b;
                        ao[c] = take ? o + std::int32_t(c) : ao[c];
                    }
                } else {
#pragma omp simd
                    for (idx c = 0; c < C; ++c) {
                        const T v = xr[c], b = yo[c];
                        yo[c] = (v > b || (v != v && b == b)) ? v : b;
                    }
                }
            }
    });
}
NX_CLONES void max_pool_image_block(const float* x, const Conv2dGeom& g, float* y,
                                    std::int32_t* arg) {
    max_pool_image(x, g, y, arg);
}
NX_CLONES void max_pool_image_block(const double* x, const Conv2dGeom& g, double* y,
                                    std::int32_t* arg) {
    max_pool_image(x, g, y, arg);
}
}  // namespace

template <class T>
void max_pool2d_forward(const T* x, idx n, const Conv2dGeom& g, T* y, std::int32_t* arg) {
    const idx in = g.H * g.W * g.C, out = g.OH * g.OW * g.C;
    for (idx i = 0; i < n; ++i)
        max_pool_image_block(x + i * in, g, y + i * out, arg ? arg + i * out : nullptr);
}

namespace {
// Windows that tile the input (strides = pool size, all inside): every input
// position is in at most one window, so dx is written once, position by
// position, dy where the arg-max is and 0 elsewhere (no zero-fill pass first).
template <class T>
NX_INLINE void max_pool_tiled_backward(const T* dy, const Conv2dGeom& g, const std::int32_t* arg,
                                       T* dx) {
    const idx C = g.C;
    if (g.OH * g.KH < g.H || g.OW * g.KW < g.W)  // rows / columns no window covers
        std::fill(dx, dx + g.H * g.W * C, T(0));
    for (idx oh = 0; oh < g.OH; ++oh)
        for (idx ow = 0; ow < g.OW; ++ow) {
            const idx o = (oh * g.OW + ow) * C;
            const T* d = dy + o;
            const std::int32_t* a = arg + o;
            for (idx kh = 0; kh < g.KH; ++kh)
                for (idx kw = 0; kw < g.KW; ++kw) {
                    const std::int32_t pos =
                        std::int32_t(((oh * g.KH + kh) * g.W + ow * g.KW + kw) * C);
                    T* xr = dx + pos;
#pragma omp simd
                    for (idx c = 0; c < C; ++c)
                        xr[c] = a[c] == pos + std::int32_t(c) ? d[c] : T(0);
                }
        }
}
NX_CLONES void max_pool_tiled_block(const float* dy, const Conv2dGeom& g,
                                    const std::int32_t* arg, float* dx) {
    max_pool_tiled_backward(dy, g, arg, dx);
}
NX_CLONES void max_pool_tiled_block(const double* dy, const Conv2dGeom& g,
                                    const std::int32_t* arg, double* dx) {
    max_pool_tiled_backward(dy, g, arg, dx);
}
}  // namespace

// dx[arg] += dy
template <class T>
void max_pool2d_backward(const T* dy, idx n, const Conv2dGeom& g, const std::int32_t* arg,
                         T* dx) {
    const idx in = g.H * g.W * g.C, out = g.OH * g.OW * g.C;
    if (g.SH == g.KH && g.SW == g.KW && g.PT == 0 && g.PL == 0 && g.OH * g.KH <= g.H &&
        g.OW * g.KW <= g.W) {
        for (idx i = 0; i < n; ++i) max_pool_tiled_block(dy + i * out, g, arg + i * out, dx + i * in);
        return;
    }
    std::fill(dx, dx + n * in, T(0));
    for (idx i = 0; i < n; ++i)
        for (idx o = 0; o < out; ++o) dx[i * in + arg[i * out + o]] += dy[i * out + o];
}


// y = mean of the window's positions inside the input
template <class T>
void avg_pool2d_forward(const T* x, idx n, const Conv2dGeom& g, T* y) {
    const idx C = g.C, in = g.H * g.W * C, out = g.OH * g.OW * C;
    for (idx i = 0; i < n; ++i) {
        const T* xi = x + i * in;
        each_window(g, [&](idx o, idx h0, idx h1, idx w0, idx w1) {
            T* yo = y + i * out + o * C;
            std::fill(yo, yo + C, T(0));
            for (idx h = h0; h < h1; ++h)
                for (idx w = w0; w < w1; ++w) {
                    const T* xr = xi + (h * g.W + w) * C;
                    for (idx c = 0; c < C; ++c) yo[c] += xr[c];
                }
            const T inv = T(1) / T((h1 - h0) * (w1 - w0));
            for (idx c = 0; c < C; ++c) yo[c] *= inv;
        });
    }
}

// dx[window] += dy / count
template <class T>
void avg_pool2d_backward(const T* dy, idx n, const Conv2dGeom& g, T* dx) {
    const idx C = g.C, in = g.H * g.W * C, out = g.OH * g.OW * C;
    std::fill(dx, dx + n * in, T(0));
    for (idx i = 0; i < n; ++i)
        each_window(g, [&](idx o, idx h0, idx h1, idx w0, idx w1) {
            const T* d = dy + i * out + o * C;
            const T inv = T(1) / T((h1 - h0) * (w1 - w0));
            for (idx h = h0; h < h1; ++h)
                for (idx w = w0; w < w1; ++w) {
                    T* xr = dx + i * in + (h * g.W + w) * C;
                    for (idx c = 0; c < C; ++c) xr[c] += d[c] * inv;
                }
        });
}

#define NX_POOL(T)                                                                          \
    template void max_pool2d_forward<T>(const T*, idx, const Conv2dGeom&, T*, std::int32_t*); \
    template void max_pool2d_backward<T>(const T*, idx, const Conv2dGeom&,                 \
                                         const std::int32_t*, T*);                         \
    template void avg_pool2d_forward<T>(const T*, idx, const Conv2dGeom&, T*);             \
    template void avg_pool2d_backward<T>(const T*, idx, const Conv2dGeom&, T*);
NX_POOL(float)
NX_POOL(double)
#undef NX_POOL

}  // namespace neuraxis
