// Dense layer kernels: matrix products on OpenBLAS, bias + activation (+ the
// NaN/inf probe) fused into one pass after the product.
#include <algorithm>

#include "neuraxis/blas.hpp"
#include "neuraxis/kernels.hpp"
#include "neuraxis/simd.hpp"

namespace neuraxis {

// Y = X @ W + b
template <class T>
void dense_forward(const T* X, idx n, idx in, const T* W, const T* b, idx out, T* Y) {
    if (n == 0) return;
    if (in == 0) {
        std::fill(Y, Y + n * out, T(0));
    } else {
        gemm(false, false, int(n), int(out), int(in), T(1), X, int(in), W, int(out), T(0), Y,
             int(out));
    }
    if (!b) return;
    parallel_for(n, kElementCost * out, [&](idx i0, idx i1) {
        for (idx i = i0; i < i1; ++i) {
            T* r = Y + i * out;
            for (idx j = 0; j < out; ++j) r[j] += b[j];
        }
    });
}

// dW[c][o] = sum_i X[i][c] * dY[i][o]
// db[o]    = sum_i dY[i][o]             (rows added in order: deterministic)
// dX[i][c] = sum_o dY[i][o] * W[c][o]
template <class T>
void dense_backward(const T* X, idx n, idx in, const T* W, idx out, const T* dY, T* dX, T* dW,
                    T* db) {
    if (dW && in > 0 && out > 0) {
        if (n > 0)
            gemm(true, false, int(in), int(out), int(n), T(1), X, int(in), dY, int(out), T(0),
                 dW, int(out));
        else
            std::fill(dW, dW + in * out, T(0));
    }
    if (db) {
        std::fill(db, db + out, T(0));
        for (idx i = 0; i < n; ++i) {
            const T* r = dY + i * out;
            for (idx j = 0; j < out; ++j) db[j] += r[j];
        }
    }
    if (dX && n > 0 && in > 0) {
        if (out > 0)
            gemm(false, true, int(n), int(in), int(out), T(1), dY, int(out), W, int(out), T(0),
                 dX, int(in));
        else
            std::fill(dX, dX + n * in, T(0));
    }
}

// dW[c][o] = sum_i X[i][c] * dY[i][o] for the first `rows` columns c of X
template <class T>
void dense_weight_grad(const T* X, idx n, idx ld, idx rows, const T* dY, idx out, T* dW) {
    if (rows <= 0 || out <= 0) return;
    if (n == 0) {
        std::fill(dW, dW + rows * out, T(0));
        return;
    }
    gemm1(true, false, int(rows), int(out), int(n), T(1), X, int(ld), dY, int(out), T(0), dW,
          int(out));
}

template <class T>
void dense_partial_forward(const T* X, idx n, idx ld, idx k, const T* W, idx out, T* P) {
    if (n <= 0 || out <= 0) return;
    if (k <= 0) {
        std::fill(P, P + n * out, T(0));
        return;
    }
    gemm1(false, false, int(n), int(out), int(k), T(1), X, int(ld), W, int(out), T(0), P,
          int(out));
}

template <class T>
void sum_parts(const T* const* parts, int nparts, idx len, T* y) {
    std::copy(parts[0], parts[0] + len, y);
    for (int t = 1; t < nparts; ++t) {
        const T* p = parts[t];
#pragma omp simd
        for (idx i = 0; i < len; ++i) y[i] += p[i];
    }
}

// Rows added in order (as NumPy's sum over axis 0), columns in SIMD lanes.
namespace {
template <class T>
NX_INLINE void column_sums_loop(const T* __restrict Y, idx n, idx k, idx j0, idx j1,
                                T* __restrict s) {
    std::fill(s, s + (j1 - j0), T(0));
    for (idx i = 0; i < n; ++i) {
        const T* __restrict r = Y + i * k + j0;
#pragma omp simd
        for (idx j = 0; j < j1 - j0; ++j) s[j] += r[j];
    }
}
NX_CLONES void column_sums_block(const float* Y, idx n, idx k, idx j0, idx j1, float* s) {
    column_sums_loop(Y, n, k, j0, j1, s);
}
NX_CLONES void column_sums_block(const double* Y, idx n, idx k, idx j0, idx j1, double* s) {
    column_sums_loop(Y, n, k, j0, j1, s);
}
}  // namespace

template <class T>
void column_sums(const T* Y, idx n, idx k, idx j0, idx j1, T* s) {
    column_sums_block(Y, n, k, j0, j1, s);
}

// Y = f(X @ W + b) (+ NaN/inf report): the GEMM, then bias, probe and
// activation in one pass over Y.
template <class T>
void dense_act_forward(const T* X, idx n, idx in, const T* W, const T* b, idx out, Activation a,
                       T* Y, bool* nonfinite) {
    dense_forward(X, n, in, W, static_cast<const T*>(nullptr), out, Y);
    bias_act_forward(a, Y, b, n, out, nonfinite);
}

template void dense_act_forward<float>(const float*, idx, idx, const float*, const float*, idx,
                                       Activation, float*, bool*);
template void dense_act_forward<double>(const double*, idx, idx, const double*, const double*, idx,
                                        Activation, double*, bool*);
template void dense_weight_grad<float>(const float*, idx, idx, idx, const float*, idx, float*);
template void dense_weight_grad<double>(const double*, idx, idx, idx, const double*, idx,
                                        double*);
template void dense_partial_forward<float>(const float*, idx, idx, idx, const float*, idx,
                                           float*);
template void dense_partial_forward<double>(const double*, idx, idx, idx, const double*, idx,
                                            double*);
template void sum_parts<float>(const float* const*, int, idx, float*);
template void sum_parts<double>(const double* const*, int, idx, double*);
template void column_sums<float>(const float*, idx, idx, idx, idx, float*);
template void column_sums<double>(const double*, idx, idx, idx, idx, double*);
template void dense_forward<float>(const float*, idx, idx, const float*, const float*, idx, float*);
template void dense_forward<double>(const double*, idx, idx, const double*, const double*, idx,
                                    double*);
template void dense_backward<float>(const float*, idx, idx, const float*, idx, const float*, float*,
                                    float*, float*);
template void dense_backward<double>(const double*, idx, idx, const double*, idx, const double*,
                                     double*, double*, double*);

}  // namespace neuraxis
