// AVX-512 GEMM (gemm_avx512.cpp, compiled with AVX-512 flags); call only
// when gemm_avx512_available() says the CPU has it.
#pragma once

namespace neuraxis {

bool gemm_avx512_available();
void gemm_avx512(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc);
void gemm_avx512(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
                 const double* B, int ldb, double beta, double* C, int ldc);

}  // namespace neuraxis
