// AVX-512 GEMM (gemm_avx512.cpp, compiled with AVX-512 flags); call only
// when gemm_avx512_available() says the CPU has it.
#pragma once

namespace neuraxis {

// Applied to C while it is stored the last time: C = act(C + bias), and
// *nonfinite set when any C + bias is NaN/inf. act: 0 identity, 1 relu,
// 2 leaky relu with `slope`.
struct GemmEpilogue {
    const void* bias = nullptr;  // N values of the GEMM's type, or null
    int act = 0;
    double slope = 0.0;
    bool* nonfinite = nullptr;
};

bool gemm_avx512_available();
void gemm_avx512(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc,
                 const GemmEpilogue* ep = nullptr);
void gemm_avx512(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
                 const double* B, int ldb, double beta, double* C, int ldc,
                 const GemmEpilogue* ep = nullptr);

}  // namespace neuraxis
