// Elementwise activations: one scalar function per activation, written
// branch-free where it can be, inside loops that are compiled per SIMD level
// (simd.hpp). Derivatives are written through the output y = f(z).
#include <algorithm>
#include <atomic>
#include <cmath>

#include "neuraxis/kernels.hpp"
#include "neuraxis/simd.hpp"
#include "neuraxis/threads.hpp"

namespace neuraxis {

namespace {

template <class T>
NX_INLINE T sigmoid(T z) {  // stable on both tails, like scipy.special.expit
    if (z >= 0) return T(1) / (T(1) + std::exp(-z));
    T e = std::exp(z);
    return e / (T(1) + e);
}

// z = f(z) over n values (softmax is per row, elsewhere).
template <class T>
NX_INLINE void fwd_loop(Act kind, T al, T* z, idx n) {
#define NX_MAP(expr)                                     \
    _Pragma("omp simd") for (idx i = 0; i < n; ++i) { \
        const T v = z[i];                                \
        z[i] = (expr);                                   \
    }                                                    \
    return;
    switch (kind) {
        case Act::identity: return;
        case Act::logistic: NX_MAP(sigmoid(v))
        case Act::tanh: NX_MAP(std::tanh(v))
        case Act::relu: NX_MAP(v < T(0) ? T(0) : v)  // NaN stays NaN, as np.maximum
        case Act::leaky_relu: NX_MAP(v > T(0) ? v : al * v)
        case Act::elu: NX_MAP(v > T(0) ? v : al * std::expm1(v))
        // log(1 + e^v) = max(v, 0) + log1p(e^-|v|)
        case Act::softplus: NX_MAP(std::max(v, T(0)) + std::log1p(std::exp(-std::abs(v))))
        case Act::step: NX_MAP(v > T(0) ? T(1) : v <= T(0) ? T(0) : v)  // NaN stays NaN
        case Act::exp: NX_MAP(std::exp(v))
        case Act::softmax: return;
    }
#undef NX_MAP
}

// d *= f'(z), written through y = f(z).
template <class T>
NX_INLINE void grad_loop(Act kind, T al, const T* y, T* d, idx n) {
#define NX_GRAD(expr)                                    \
    _Pragma("omp simd") for (idx i = 0; i < n; ++i) { \
        const T v = y[i];                                \
        d[i] *= (expr);                                  \
    }                                                    \
    return;
    switch (kind) {
        case Act::logistic: NX_GRAD(v * (T(1) - v))
        case Act::tanh: NX_GRAD(T(1) - v * v)
        case Act::relu: NX_GRAD(v > T(0) ? T(1) : T(0))
        case Act::leaky_relu: NX_GRAD(v > T(0) ? T(1) : al)
        case Act::elu: NX_GRAD(v > T(0) ? T(1) : v + al)  // z <= 0: f' = alpha e^z = y + alpha
        case Act::softplus: NX_GRAD(-std::expm1(-v))      // f' = sigmoid(z) = 1 - e^-y
        case Act::exp: NX_GRAD(v)
        default: return;
    }
#undef NX_GRAD
}

// Rows [0, m) of k values: z = f(z + b), one pass; returns whether any z + b
// was NaN/inf (only looked at when `check`). Kinds without a fused form get
// the bias only (the caller applies f after).
template <class T>
NX_INLINE bool bias_act_loop(Act kind, T al, T* z, const T* b, idx m, idx k, bool check) {
    bool seen = false;
    for (idx i = 0; i < m; ++i) {
        T* r = z + i * k;
        if (b) {
#pragma omp simd
            for (idx j = 0; j < k; ++j) r[j] += b[j];
        }
        if (check) {  // any inf/NaN makes the sum NaN (inf * 0 = NaN)
            T probe = T(0);
#pragma omp simd reduction(+ : probe)
            for (idx j = 0; j < k; ++j) probe += r[j] * T(0);
            seen = seen || !(probe == T(0));
        }
        switch (kind) {
            case Act::relu:
            case Act::leaky_relu:
            case Act::logistic:
            case Act::tanh: fwd_loop(kind, al, r, k); break;
            default: break;
        }
    }
    return seen;
}

// Rows [0, m) of k values: d *= f'(y), and s[j] += d[i][j] while the row is in L1.
template <class T>
NX_INLINE void grad_sum_loop(Act kind, T al, const T* y, T* d, idx m, idx k, T* s) {
    for (idx i = 0; i < m; ++i) {
        T* r = d + i * k;
        grad_loop(kind, al, y + i * k, r, k);
#pragma omp simd
        for (idx j = 0; j < k; ++j) s[j] += r[j];
    }
}

NX_CLONES void fwd_block(Act kind, float al, float* z, idx n) { fwd_loop(kind, al, z, n); }
NX_CLONES void fwd_block(Act kind, double al, double* z, idx n) { fwd_loop(kind, al, z, n); }
NX_CLONES void grad_block(Act kind, float al, const float* y, float* d, idx n) {
    grad_loop(kind, al, y, d, n);
}
NX_CLONES void grad_block(Act kind, double al, const double* y, double* d, idx n) {
    grad_loop(kind, al, y, d, n);
}
NX_CLONES void grad_sum_block(Act kind, float al, const float* y, float* d, idx m, idx k,
                              float* s) {
    grad_sum_loop(kind, al, y, d, m, k, s);
}
NX_CLONES void grad_sum_block(Act kind, double al, const double* y, double* d, idx m, idx k,
                              double* s) {
    grad_sum_loop(kind, al, y, d, m, k, s);
}
NX_CLONES bool bias_act_block(Act kind, float al, float* z, const float* b, idx m, idx k,
                              bool check) {
    return bias_act_loop(kind, al, z, b, m, k, check);
}
NX_CLONES bool bias_act_block(Act kind, double al, double* z, const double* b, idx m, idx k,
                              bool check) {
    return bias_act_loop(kind, al, z, b, m, k, check);
}

}  // namespace

template <class T>
void act_forward(Activation a, T* z, idx n, idx k) {
    if (a.kind == Act::identity) return;
    if (a.kind == Act::softmax) {
        parallel_for(n, kElementCost * k, [&](idx i0, idx i1) {
            for (idx i = i0; i < i1; ++i) {
                T* r = z + i * k;
                T mx = *std::max_element(r, r + k);
                T s = 0;
                for (idx j = 0; j < k; ++j) s += (r[j] = std::exp(r[j] - mx));
                for (idx j = 0; j < k; ++j) r[j] /= s;
            }
        });
        return;
    }
    parallel_for(n * k, kElementCost,
                 [&](idx i0, idx i1) { fwd_block(a.kind, T(a.alpha), z + i0, i1 - i0); });
}

template <class T>
void act_backward(Activation a, const T* y, T* d, idx n, idx k) {
    switch (a.kind) {
        case Act::identity: return;
        case Act::step:
            throw ValueError(
                "the binary step activation has no useful gradient (zero almost everywhere); "
                "it can be used for prediction but not for training");
        case Act::softmax:  // dz_j = y_j * (d_j - sum_i d_i y_i)
            parallel_for(n, kElementCost * k, [&](idx i0, idx i1) {
                for (idx i = i0; i < i1; ++i) {
                    const T* yr = y + i * k;
                    T* dr = d + i * k;
                    T dot = 0;
                    for (idx j = 0; j < k; ++j) dot += dr[j] * yr[j];
                    for (idx j = 0; j < k; ++j) dr[j] = yr[j] * (dr[j] - dot);
                }
            });
            return;
        default:
            parallel_for(n * k, kElementCost, [&](idx i0, idx i1) {
                grad_block(a.kind, T(a.alpha), y + i0, d + i0, i1 - i0);
            });
    }
}

// d = dL/dz from dL/dy in place and s = its column sums (the bias gradient),
// in one pass for the elementwise activations (single-threaded: a layer's rows).
template <class T>
void act_backward_sums(Activation a, const T* y, T* d, idx n, idx k, T* s) {
    if (a.kind == Act::softmax || a.kind == Act::step) {
        act_backward(a, y, d, n, k);
        column_sums(d, n, k, 0, k, s);
        return;
    }
    std::fill(s, s + k, T(0));
    if (a.kind == Act::identity) {
        column_sums(d, n, k, 0, k, s);
        return;
    }
    grad_sum_block(a.kind, T(a.alpha), y, d, n, k, s);
}

// z = f(z + b) row by row in one pass (b may be null); optionally reports
// whether any z + b was NaN/inf (checked before the activation can hide it).
template <class T>
void bias_act_forward(Activation a, T* z, const T* b, idx n, idx k, bool* nonfinite) {
    std::atomic<bool> bad{false};
    parallel_for(n, kElementCost * k, [&](idx i0, idx i1) {
        if (bias_act_block(a.kind, T(a.alpha), z + i0 * k, b, i1 - i0, k, nonfinite != nullptr))
            bad.store(true, std::memory_order_relaxed);
    });
    switch (a.kind) {
        case Act::identity:
        case Act::relu:
        case Act::leaky_relu:
        case Act::logistic:
        case Act::tanh: break;     // applied in the pass above
        default: act_forward(a, z, n, k);  // the rest (softmax is per row): a second pass
    }
    if (nonfinite) *nonfinite = *nonfinite || bad.load();
}

template void act_backward_sums<float>(Activation, const float*, float*, idx, idx, float*);
template void act_backward_sums<double>(Activation, const double*, double*, idx, idx, double*);
template void bias_act_forward<float>(Activation, float*, const float*, idx, idx, bool*);
template void bias_act_forward<double>(Activation, double*, const double*, idx, idx, bool*);
template void act_forward<float>(Activation, float*, idx, idx);
template void act_forward<double>(Activation, double*, idx, idx);
template void act_backward<float>(Activation, const float*, float*, idx, idx);
template void act_backward<double>(Activation, const double*, double*, idx, idx);

}  // namespace neuraxis
