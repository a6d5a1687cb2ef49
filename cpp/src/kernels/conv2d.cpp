// 2-D convolution, NHWC, Keras kernel layout (kh, kw, in, out): im2col of one
// image into the caller's scratch, then one GEMM; backward by the transposed
// products and col2im. Forward and backward side by side.
#include <algorithm>
#include <cstring>

#include "neuraxis/blas.hpp"
#include "neuraxis/kernels.hpp"

namespace neuraxis {

namespace {
idx out_dim(idx in, idx k, idx s, idx d, bool same, idx* pad_lo, const char* what) {
    const idx span = (k - 1) * d + 1;
    idx out;
    if (same) {
        out = (in + s - 1) / s;
        const idx total = std::max<idx>((out - 1) * s + span - in, 0);
        *pad_lo = total / 2;  // the odd extra goes bottom/right (TensorFlow's rule)
    } else {
        out = in >= span ? (in - span) / s + 1 : 0;
        *pad_lo = 0;
    }
    if (out < 1)
        throw ValueError(std::string(what) + ": a window of " + std::to_string(span) +
                         " does not fit an input of " + std::to_string(in) +
                         " with padding='valid' (the output size would be " +
                         std::to_string(in >= span ? out : (in - span) / s + 1) + ")");
    return out;
}
}  // namespace

Conv2dGeom conv2d_geom(idx H, idx W, idx C, idx KH, idx KW, idx F, idx SH, idx SW, idx DH, idx DW,
                       bool same) {
    if (H < 1 || W < 1 || C < 1 || KH < 1 || KW < 1 || F < 1)
        throw ValueError("conv2d: sizes must be positive");
    if (SH < 1 || SW < 1 || DH < 1 || DW < 1)
        throw ValueError("conv2d: strides and dilation rates must be positive");
    Conv2dGeom g{H, W, C, KH, KW, F, SH, SW, DH, DW, 0, 0, 0, 0};
    g.OH = out_dim(H, KH, SH, DH, same, &g.PT, "conv2d");
    g.OW = out_dim(W, KW, SW, DW, same, &g.PL, "conv2d");
    return g;
}

Conv2dGeom conv1d_geom(idx T, idx C, idx K, idx F, idx S, idx D, const std::string& padding) {
    if (T < 1 || K < 1 || D < 1) throw ValueError("conv1d: sizes and dilation must be positive");
    // causal: the valid convolution of x with (K - 1) * D zeros in front of it
    const idx left = padding == "causal" ? (K - 1) * D : 0;
    try {
        Conv2dGeom g = conv2d_geom(1, T + left, C, 1, K, F, 1, S, 1, D, padding == "same");
        g.W = T;
        g.PL += left;
        return g;
    } catch (const ValueError& e) {  // the same message, naming this kernel
        throw ValueError("conv1d" + std::string(e.what()).substr(6));
    }
}

// col[(oh, ow)][(kh, kw, c)] = x[oh*SH - PT + kh*DH][ow*SW - PL + kw*DW][c], 0 outside.
// Without dilation along W, a window row inside the input is one contiguous run of
// KW*C values: one copy per (kh) instead of one per (kh, kw) (C = 3: 36 bytes).
template <class T>
void im2col_rows(const T* x, const Conv2dGeom& g, idx p0, idx p1, T* col) {
    const idx C = g.C, K = g.KH * g.KW * C, run = g.KW * C;
    for (idx p = p0; p < p1; ++p) {
        const idx oh = p / g.OW, ow = p % g.OW;
        T* row = col + (p - p0) * K;
        const idx iw0 = ow * g.SW - g.PL;
        const bool contiguous = g.DW == 1 && iw0 >= 0 && iw0 + g.KW <= g.W;
        for (idx kh = 0; kh < g.KH; ++kh) {
            const idx ih = oh * g.SH - g.PT + kh * g.DH;
            T* dst = row + kh * run;
            if (ih < 0 || ih >= g.H) {
                std::fill(dst, dst + run, T(0));
                continue;
            }
            const T* src = x + ih * g.W * C;
            if (contiguous) {
                std::copy(src + iw0 * C, src + iw0 * C + run, dst);
                continue;
            }
            for (idx kw = 0; kw < g.KW; ++kw, dst += C) {
                const idx iw = iw0 + kw * g.DW;
                if (iw < 0 || iw >= g.W)
                    std::fill(dst, dst + C, T(0));
                else
                    std::copy(src + iw * C, src + (iw + 1) * C, dst);
            }
        }
    }
}

template <class T>
void im2col(const T* x, const Conv2dGeom& g, T* col) {
    im2col_rows(x, g, 0, g.OH * g.OW, col);
}

// dx[ih][iw][c] += dcol[(oh, ow)][(kh, kw, c)] over every window that read it
template <class T>
void col2im_add(const T* dcol, const Conv2dGeom& g, T* dx) {
    const idx C = g.C, K = g.KH * g.KW * C;
    for (idx oh = 0; oh < g.OH; ++oh)
        for (idx ow = 0; ow < g.OW; ++ow) {
            const T* row = dcol + (oh * g.OW + ow) * K;
            for (idx kh = 0; kh < g.KH; ++kh) {
                const idx ih = oh * g.SH - g.PT + kh * g.DH;
                if (ih < 0 || ih >= g.H) continue;
                for (idx kw = 0; kw < g.KW; ++kw) {
                    const idx iw = ow * g.SW - g.PL + kw * g.DW;
                    if (iw < 0 || iw >= g.W) continue;
                    const T* src = row + (kh * g.KW + kw) * C;
                    T* dst = dx + (ih * g.W + iw) * C;
                    for (idx c = 0; c < C; ++c) dst[c] += src[c];
                }
            }
        }
}

// Output positions per block of the forward: its im2col rows and its outputs
// stay in L2 (~256 KB each) from im2col through the GEMM to the activation.
idx conv_block_rows(const Conv2dGeom& g) {
    const idx K = g.KH * g.KW * g.C;
    return std::min<idx>(g.OH * g.OW, std::max<idx>(65536 / std::max(K, g.F), 16));
}

// y_i(OH*OW, F) = f(im2col(x_i) @ W(K, F) + b), block of output positions by block
template <class T>
void conv2d_forward_act(const T* x, idx n, const Conv2dGeom& g, const T* w, const T* b,
                        const Activation& act, T* y, T* col, bool* nonfinite) {
    const idx K = g.KH * g.KW * g.C, P = g.OH * g.OW, rb = conv_block_rows(g);
    const bool epilogue = b || act.kind != Act::identity || nonfinite;
    for (idx i = 0; i < n; ++i)
        for (idx p0 = 0; p0 < P; p0 += rb) {
            const idx p1 = std::min(P, p0 + rb);
            T* yb = y + (i * P + p0) * g.F;
            im2col_rows(x + i * g.H * g.W * g.C, g, p0, p1, col);
            gemm1(false, false, int(p1 - p0), int(g.F), int(K), T(1), col, int(K), w, int(g.F),
                  T(0), yb, int(g.F));
            if (epilogue) bias_act_forward(act, yb, b, p1 - p0, g.F, nonfinite);
        }
}

template <class T>
void conv2d_forward(const T* x, idx n, const Conv2dGeom& g, const T* w, T* y, T* col) {
    conv2d_forward_act(x, n, g, w, static_cast<const T*>(nullptr), Activation{}, y, col,
                       nullptr);
}

// dW = sum_i im2col(x_i)^T dz_i,  db = sum of dz rows,  dx_i = col2im(dz_i W^T)
// (dW / db / dx may be null; dW and db are overwritten, zeros for n = 0).
template <class T>
void conv2d_backward(const T* x, idx n, const Conv2dGeom& g, const T* w, const T* dz, T* dx,
                     T* dw, T* db, T* col, T* dcol) {
    const idx K = g.KH * g.KW * g.C, P = g.OH * g.OW, in = g.H * g.W * g.C;
    if (dw && n == 0) std::fill(dw, dw + K * g.F, T(0));
    if (db) column_sums(dz, n * P, g.F, 0, g.F, db);
    for (idx i = 0; i < n; ++i) {
        const T* dzi = dz + i * P * g.F;
        if (dw) {
            im2col(x + i * in, g, col);
            gemm1(true, false, int(K), int(g.F), int(P), T(1), col, int(K), dzi, int(g.F),
                  T(i == 0 ? 0 : 1), dw, int(g.F));
        }
        if (dx) {
            gemm1(false, true, int(P), int(K), int(g.F), T(1), dzi, int(g.F), w, int(g.F), T(0),
                  dcol, int(K));
            std::fill(dx + i * in, dx + (i + 1) * in, T(0));
            col2im_add(dcol, g, dx + i * in);
        }
    }
}

template void im2col<float>(const float*, const Conv2dGeom&, float*);
template void im2col<double>(const double*, const Conv2dGeom&, double*);
template void conv2d_forward_act<float>(const float*, idx, const Conv2dGeom&, const float*,
                                        const float*, const Activation&, float*, float*, bool*);
template void conv2d_forward_act<double>(const double*, idx, const Conv2dGeom&, const double*,
                                         const double*, const Activation&, double*, double*,
                                         bool*);
template void conv2d_forward<float>(const float*, idx, const Conv2dGeom&, const float*, float*,
                                    float*);
template void conv2d_forward<double>(const double*, idx, const Conv2dGeom&, const double*,
                                     double*, double*);
template void conv2d_backward<float>(const float*, idx, const Conv2dGeom&, const float*,
                                     const float*, float*, float*, float*, float*, float*);
template void conv2d_backward<double>(const double*, idx, const Conv2dGeom&, const double*,
                                      const double*, double*, double*, double*, double*, double*);

}  // namespace neuraxis
