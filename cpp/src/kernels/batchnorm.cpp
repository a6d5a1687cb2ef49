// Batch normalization over the last axis: x is n rows of C channels (every
// other axis of a sample folded into the rows). Statistics are accumulated in
// double and combined block by block (Chan's pairwise rule), so a batch split
// over threads gets the same mean and variance, to rounding, as one pass.
#include <algorithm>
#include <cmath>

#include "neuraxis/kernels.hpp"
#include "neuraxis/simd.hpp"

namespace neuraxis {

namespace {

// out = [count, mean (C), M2 (C)]: sums of x - x[0] and their squares in
// double (the shift keeps a large mean from cancelling the variance).
template <class T>
NX_INLINE void bn_moments_loop(const T* x, idx n, idx C, double* out) {
    double* mean = out + 1;
    double* m2 = out + 1 + C;
    out[0] = double(n);
    for (idx c = 0; c < C; ++c) mean[c] = m2[c] = 0.0;
    if (n == 0) return;
    for (idx i = 0; i < n; ++i) {
        const T* xr = x + i * C;
#pragma omp simd
        for (idx c = 0; c < C; ++c) {
            const double d = double(xr[c]) - double(x[c]);
            mean[c] += d;
            m2[c] += d * d;
        }
    }
    const double inv = 1.0 / double(n);
    for (idx c = 0; c < C; ++c) {
        const double s = mean[c];
        mean[c] = double(x[c]) + s * inv;
        m2[c] = std::max(m2[c] - s * s * inv, 0.0);
    }
}

template <class T>
NX_INLINE void bn_scale_shift_loop(const T* x, idx n, idx C, const T* m, const T* a, const T* b,
                                   T* y) {
    for (idx i = 0; i < n; ++i) {
        const T* xr = x + i * C;
        T* yr = y + i * C;
#pragma omp simd
        for (idx c = 0; c < C; ++c) yr[c] = (xr[c] - m[c]) * a[c] + b[c];
    }
}

template <class T>
NX_INLINE void bn_grad_sums_loop(const T* x, const T* dy, idx n, idx C, const T* mean,
                            const T* inv_std, double* out) {
    double* sdy = out;
    double* sdyx = out + C;
    for (idx c = 0; c < C; ++c) sdy[c] = sdyx[c] = 0.0;
    for (idx i = 0; i < n; ++i) {
        const T* xr = x + i * C;
        const T* dr = dy + i * C;
#pragma omp simd
        for (idx c = 0; c < C; ++c) {
            const double g = double(dr[c]);
            sdy[c] += g;
            sdyx[c] += g * (double(xr[c] - mean[c]) * double(inv_std[c]));
        }
    }
}

template <class T>
NX_INLINE void bn_backward_dx_loop(const T* x, const T* dy, idx n, idx C, const T* m,
                                   const T* a, const T* p, const T* q, T* dx) {
    for (idx i = 0; i < n; ++i) {
        const T* xr = x + i * C;
        const T* dr = dy + i * C;
        T* o = dx + i * C;
#pragma omp simd
        for (idx c = 0; c < C; ++c) o[c] = a[c] * dr[c] + ((xr[c] - m[c]) * p[c] + q[c]);
    }
}

// The loops compiled per SIMD level (simd.hpp), one overload per type.
#define NX_BN_CLONES(T)                                                                     \
    NX_CLONES void bn_moments_block(const T* x, idx n, idx C, double* out) {                \
        bn_moments_loop(x, n, C, out);                                                      \
    }                                                                                       \
    NX_CLONES void bn_scale_shift_block(const T* x, idx n, idx C, const T* m, const T* a,   \
                                        const T* b, T* y) {                                 \
        bn_scale_shift_loop(x, n, C, m, a, b, y);                                           \
    }                                                                                       \
    NX_CLONES void bn_grad_sums_block(const T* x, const T* dy, idx n, idx C, const T* mean, \
                                      const T* inv_std, double* out) {                      \
        bn_grad_sums_loop(x, dy, n, C, mean, inv_std, out);                                 \
    }                                                                                       \
    NX_CLONES void bn_backward_dx_block(const T* x, const T* dy, idx n, idx C, const T* m,  \
                                        const T* a, const T* p, const T* q, T* dx) {        \
        bn_backward_dx_loop(x, dy, n, C, m, a, p, q, dx);                                   \
    }
NX_BN_CLONES(float)
NX_BN_CLONES(double)
#undef NX_BN_CLONES

}  // namespace

template <class T>
void bn_moments(const T* x, idx n, idx C, double* out) {
    bn_moments_block(x, n, C, out);
}
template <class T>
void bn_scale_shift(const T* x, idx n, idx C, const T* m, const T* a, const T* b, T* y) {
    bn_scale_shift_block(x, n, C, m, a, b, y);
}
template <class T>
void bn_grad_sums(const T* x, const T* dy, idx n, idx C, const T* mean, const T* inv_std,
                  double* out) {
    bn_grad_sums_block(x, dy, n, C, mean, inv_std, out);
}
template <class T>
void bn_backward_dx(const T* x, const T* dy, idx n, idx C, const T* m, const T* a, const T* p,
                    const T* q, T* dx) {
    bn_backward_dx_block(x, dy, n, C, m, a, p, q, dx);
}

void bn_combine(const double* const* parts, int nparts, idx C, double* out) {
    double* mean = out + 1;
    double* m2 = out + 1 + C;
    out[0] = 0.0;
    for (idx c = 0; c < C; ++c) mean[c] = m2[c] = 0.0;
    for (int p = 0; p < nparts; ++p) {
        const double nb = parts[p][0];
        if (nb == 0.0) continue;
        const double na = out[0], nn = na + nb;
        const double* mb = parts[p] + 1;
        const double* m2b = parts[p] + 1 + C;
        for (idx c = 0; c < C; ++c) {
            const double d = mb[c] - mean[c];
            mean[c] += d * (nb / nn);
            m2[c] += m2b[c] + d * d * (na * nb / nn);
        }
        out[0] = nn;
    }
}

#define NX_BN(T)                                                                           \
    template void bn_moments(const T*, idx, idx, double*);                                 \
    template void bn_scale_shift(const T*, idx, idx, const T*, const T*, const T*, T*);     \
    template void bn_grad_sums(const T*, const T*, idx, idx, const T*, const T*, double*); \
    template void bn_backward_dx(const T*, const T*, idx, idx, const T*, const T*, const T*, \
                                 const T*, T*);
NX_BN(float)
NX_BN(double)
#undef NX_BN

}  // namespace neuraxis
