// GEMM through OpenBLAS (scipy-openblas32: symbols carry the scipy_ prefix).
//
// One thread pool: OpenBLAS runs single-threaded and `gemm` splits the rows
// of C across our OpenMP threads. Two pools on few cores fight (each spins
// while the other works); a fixed row split also keeps results reproducible
// for a given thread count.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cblas.h>

#include "neuraxis/threads.hpp"

namespace neuraxis {

// The size up to which OpenBLAS (0.3.x, x86-64 kernels) multiplies without packing.
constexpr double kUnpackedGemmMacs = 1.0e6;

// The OpenBLAS entry points, one overload per type.
inline void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                      const float* A, int lda, const float* B, int ldb, float beta, float* C,
                      int ldc) {
    scipy_cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, double alpha,
                      const double* A, int lda, const double* B, int ldb, double beta, double* C,
                      int ldc) {
    scipy_cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline void blas_gemv(CBLAS_TRANSPOSE t, int m, int n, float alpha, const float* A, int lda,
                      const float* x, int incx, float beta, float* y) {
    scipy_cblas_sgemv(CblasRowMajor, t, m, n, alpha, A, lda, x, incx, beta, y, 1);
}
inline void blas_gemv(CBLAS_TRANSPOSE t, int m, int n, double alpha, const double* A, int lda,
                      const double* x, int incx, double beta, double* y) {
    scipy_cblas_dgemv(CblasRowMajor, t, m, n, alpha, A, lda, x, incx, beta, y, 1);
}

// C = alpha * op(A) @ op(B) + beta * C on the calling thread. One row of C
// (M == 1) goes to GEMV: GEMM would first pack all of B, which costs more
// than the product itself for a single sample (predict latency).
template <class T>
void gemm1(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
           int ldb, T beta, T* C, int ldc) {
    if (M == 1 && K > 0) {
        blas_gemv(tb ? CblasNoTrans : CblasTrans, tb ? N : K, tb ? K : N, alpha, B, ldb, A,
                  ta ? lda : 1, beta, C);
        return;
    }
    // OpenBLAS multiplies products of up to ~1e6 multiply-adds straight from the
    // operands and packs both of them above that. A product just above that size
    // (a small batch's rows times a large kernel) ran ~20% faster here as two
    // unpacked halves of its rows than as one packed product (bench/README.md).
    const double macs = double(M) * N * K;
    if (M >= 8 && macs > kUnpackedGemmMacs && macs <= 2 * kUnpackedGemmMacs) {
        const int h = M / 2;
        const T* A2 = ta ? A + h : A + std::size_t(h) * lda;
        blas_gemm(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, h, N, K, alpha,
                  A, lda, B, ldb, beta, C, ldc);
        blas_gemm(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M - h, N, K,
                  alpha, A2, lda, B, ldb, beta, C + std::size_t(h) * ldc, ldc);
        return;
    }
    blas_gemm(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
              lda, B, ldb, beta, C, ldc);
}

// C(M,N) = alpha * op(A) @ op(B) + beta * C, row-major; rows of C split over threads.
template <class T>
void gemm(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb,
          T beta, T* C, int ldc) {
    const int nt = threads_for(double(N) * K, M, 8);
    if (nt <= 1) {
        gemm1(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    // Row blocks of C, multiples of 8 rows, one per thread.
    const int parts = std::min(nt, (M + 7) / 8);
    const int step = ((M + parts - 1) / parts + 7) / 8 * 8;
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int p = 0; p < parts; ++p) {
        const int r0 = p * step, r1 = std::min(M, r0 + step);
        if (r0 >= r1) continue;
        // Row r of op(A) starts at A + r*lda (no transpose) or at column r (transpose).
        const T* Ap = ta ? A + r0 : A + std::size_t(r0) * lda;
        gemm1(ta, tb, r1 - r0, N, K, alpha, Ap, lda, B, ldb, beta, C + std::size_t(r0) * ldc, ldc);
    }
}

}  // namespace neuraxis
