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

#ifdef NEURAXIS_AVX512
#include "neuraxis/gemm_avx512.hpp"
#endif

namespace neuraxis {

// Products at least this big go to our AVX-512 GEMM when the CPU has it.
constexpr double kOwnGemmMinMacs = 4096;

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
// than the product itself for a single sample (predict latency). Larger
// products go to our AVX-512 GEMM when the CPU has it, else OpenBLAS.
template <class T>
void gemm1(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
           int ldb, T beta, T* C, int ldc) {
    if (M == 1 && K > 0) {
        blas_gemv(tb ? CblasNoTrans : CblasTrans, tb ? N : K, tb ? K : N, alpha, B, ldb, A,
                  ta ? lda : 1, beta, C);
        return;
    }
#ifdef NEURAXIS_AVX512
    if (double(M) * N * K >= kOwnGemmMinMacs && gemm_avx512_available()) {
        gemm_avx512(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    blas_gemm(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
              lda, B, ldb, beta, C, ldc);
}

// Below this many multiply-adds a GEMM runs on the calling thread.
constexpr double kGemmParallelMacs = 2.0e5;

// C(M,N) = alpha * op(A) @ op(B) + beta * C, row-major; rows of C split over threads.
template <class T>
void gemm(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb,
          T beta, T* C, int ldc) {
    const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    const double macs = double(M) * N * K;
    if (nt <= 1 || macs < kGemmParallelMacs || M < 16) {
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
