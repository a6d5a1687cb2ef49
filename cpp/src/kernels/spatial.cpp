// Zero padding, cropping and nearest-neighbour up-sampling, NHWC (1-D layers
// run them with H = 1). Pure data movement: forward and backward side by side.
#include <algorithm>
#include <cstring>

#include "neuraxis/kernels.hpp"

namespace neuraxis {

// y[oh][ow] = x[oh - top][ow - left], 0 where that is outside x
template <class T>
void pad_crop2d(const T* x, idx n, idx H, idx W, idx C, idx OH, idx OW, idx top, idx left, T* y) {
    // the output columns [w0, w1) that read an input column, the same for every row
    const idx w0 = std::clamp<idx>(left, 0, OW), w1 = std::clamp<idx>(W + left, w0, OW);
    for (idx i = 0; i < n; ++i) {
        const T* xi = x + i * H * W * C;
        T* yi = y + i * OH * OW * C;
        for (idx oh = 0; oh < OH; ++oh) {
            T* yr = yi + oh * OW * C;
            const idx ih = oh - top;
            if (ih < 0 || ih >= H || w0 == w1) {
                std::fill(yr, yr + OW * C, T(0));
                continue;
            }
            std::fill(yr, yr + w0 * C, T(0));
            std::memcpy(yr + w0 * C, xi + (ih * W + w0 - left) * C, sizeof(T) * (w1 - w0) * C);
            std::fill(yr + w1 * C, yr + OW * C, T(0));
        }
    }
}

// y[h*SH + a][w*SW + b] = x[h][w] for a < SH, b < SW
template <class T>
void upsample2d_forward(const T* x, idx n, idx H, idx W, idx C, idx SH, idx SW, T* y) {
    const idx OW = W * SW;
    for (idx i = 0; i < n; ++i) {
        const T* xi = x + i * H * W * C;
        T* yi = y + i * H * SH * OW * C;
        for (idx h = 0; h < H; ++h) {
            T* first = yi + h * SH * OW * C;  // one output row, then copied SH - 1 times
            for (idx w = 0; w < W; ++w)
                for (idx b = 0; b < SW; ++b)
                    std::memcpy(first + (w * SW + b) * C, xi + (h * W + w) * C, sizeof(T) * C);
            for (idx a = 1; a < SH; ++a) std::memcpy(first + a * OW * C, first, sizeof(T) * OW * C);
        }
    }
}

// dx[h][w] = sum over a < SH, b < SW of dy[h*SH + a][w*SW + b] (added in that order)
template <class T>
void upsample2d_backward(const T* dy, idx n, idx H, idx W, idx C, idx SH, idx SW, T* dx) {
    const idx OW = W * SW;
    std::fill(dx, dx + n * H * W * C, T(0));
    for (idx i = 0; i < n; ++i) {
        T* dxi = dx + i * H * W * C;
        const T* dyi = dy + i * H * SH * OW * C;
        for (idx h = 0; h < H; ++h)
            for (idx a = 0; a < SH; ++a) {
                const T* row = dyi + (h * SH + a) * OW * C;
                for (idx w = 0; w < W; ++w) {
                    T* d = dxi + (h * W + w) * C;
                    for (idx b = 0; b < SW; ++b) {
                        const T* s = row + (w * SW + b) * C;
                        for (idx c = 0; c < C; ++c) d[c] += s[c];
                    }
                }
            }
    }
}

#define NX_SPATIAL(T)                                                                       \
    template void pad_crop2d<T>(const T*, idx, idx, idx, idx, idx, idx, idx, idx, T*);      \
    template void upsample2d_forward<T>(const T*, idx, idx, idx, idx, idx, idx, T*);        \
    template void upsample2d_backward<T>(const T*, idx, idx, idx, idx, idx, idx, T*);
NX_SPATIAL(float)
NX_SPATIAL(double)
#undef NX_SPATIAL

}  // namespace neuraxis
