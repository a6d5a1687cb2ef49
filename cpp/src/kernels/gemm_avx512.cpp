// An AVX-512 GEMM for the shapes the engine runs (tens to hundreds of rows,
// columns and depth), used instead of OpenBLAS's when the CPU has AVX-512:
// some OpenBLAS builds/settings pick their AVX2 kernels on such CPUs.
// This file alone is compiled with AVX-512 flags; it is only called after a
// runtime cpuid check (gemm_avx512_available), so the wheel stays portable.
//
// C(M,N) = alpha * op(A) @ op(B) + beta * C, row-major. B is packed into
// k-major panels of NR columns, A into k-major panels of MR rows; an
// MR x NR register tile accumulates over a KC-deep block of k.
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "neuraxis/gemm_avx512.hpp"

namespace neuraxis {

namespace {

constexpr int KC = 256;

template <class T>
struct Simd;

template <>
struct Simd<float> {
    using V = __m512;
    using M = __mmask16;
    static constexpr int W = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V set1(float x) { return _mm512_set1_ps(x); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V max(V a, V b) { return _mm512_max_ps(a, b); }
    // lanes where v > 0 keep v, the others take w
    static V select_pos(V v, V w) {
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), w, v);
    }
    static bool any_nan(V v) { return _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) != 0; }
    static V mload(M m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
    static void mstore(float* p, M m, V v) { _mm512_mask_storeu_ps(p, m, v); }
};

template <>
struct Simd<double> {
    using V = __m512d;
    using M = __mmask8;
    static constexpr int W = 8;
    static V zero() { return _mm512_setzero_pd(); }
    static V set1(double x) { return _mm512_set1_pd(x); }
    static V load(const double* p) { return _mm512_loadu_pd(p); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
    static V add(V a, V b) { return _mm512_add_pd(a, b); }
    static V max(V a, V b) { return _mm512_max_pd(a, b); }
    static V select_pos(V v, V w) {
        return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_GT_OQ), w, v);
    }
    static bool any_nan(V v) { return _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q) != 0; }
    static V mload(M m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
    static void mstore(double* p, M m, V v) { _mm512_mask_storeu_pd(p, m, v); }
};

constexpr int MR = 8;  // rows of the register tile; NR = 2 vectors

template <class T>
inline typename Simd<T>::M mask_for(int n) {
    using S = Simd<T>;
    if (n >= S::W) return typename S::M(~0u);
    if (n <= 0) return typename S::M(0);
    return typename S::M((1u << n) - 1u);
}

// c(mr x nr) (+)= alpha * Ap(kc x MR)^T Bp(kc x NR); the first k block applies beta.
template <class T>
inline void micro(int kc, const T* __restrict Ap, const T* __restrict Bp, T* C, int ldc, int mr,
                  int nr, T alpha, T beta, bool first, const GemmEpilogue* ep, const T* bias,
                  typename Simd<T>::V* probe) {
    using S = Simd<T>;
    constexpr int W = S::W;
    typename S::V c0[MR], c1[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) c0[i] = S::zero(), c1[i] = S::zero();
    for (int k = 0; k < kc; ++k) {
        const typename S::V b0 = S::load(Bp + k * 2 * W), b1 = S::load(Bp + k * 2 * W + W);
        const T* a = Ap + k * MR;
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
            const typename S::V ai = S::set1(a[i]);
            c0[i] = S::fma(ai, b0, c0[i]);
            c1[i] = S::fma(ai, b1, c1[i]);
        }
    }
    const typename S::M m0 = mask_for<T>(nr), m1 = mask_for<T>(nr - W);
    const typename S::V va = S::set1(alpha), vb = S::set1(first ? beta : T(1));
    const bool read_c = !first || beta != T(0);
    // epilogue (last k block only): + bias, NaN/inf probe, activation
    const typename S::V bb0 = bias ? S::mload(m0, bias) : S::zero();
    const typename S::V bb1 = bias ? S::mload(m1, bias + W) : S::zero();
    const int act = ep ? ep->act : 0;
    const typename S::V slope = S::set1(ep ? T(ep->slope) : T(0)), zero = S::zero();
    for (int i = 0; i < mr; ++i) {
        T* row = C + std::size_t(i) * ldc;
        typename S::V r0 = S::mul(va, c0[i]), r1 = S::mul(va, c1[i]);
        if (read_c) {
            r0 = S::fma(vb, S::mload(m0, row), r0);
            r1 = S::fma(vb, S::mload(m1, row + W), r1);
        }
        if (ep) {
            r0 = S::add(r0, bb0);
            r1 = S::add(r1, bb1);
            if (probe) *probe = S::fma(r0, zero, S::fma(r1, zero, *probe));  // inf * 0 = NaN
            if (act == 1) {  // relu
                r0 = S::max(r0, zero);
                r1 = S::max(r1, zero);
            } else if (act == 2) {  // leaky relu: v > 0 ? v : slope * v
                r0 = S::select_pos(r0, S::mul(slope, r0));
                r1 = S::select_pos(r1, S::mul(slope, r1));
            }
        }
        S::mstore(row, m0, r0);
        if (nr > W) S::mstore(row + W, m1, r1);
    }
}

inline void copy8(const float* src, float* dst) { _mm256_storeu_ps(dst, _mm256_loadu_ps(src)); }
inline void copy8(const double* src, double* dst) { _mm512_storeu_pd(dst, _mm512_loadu_pd(src)); }

// dst[k * 8 + i] = src[i * lda + k] for 8 rows, 8 k at a time by an in-register
// 8x8 transpose (float); returns how many k it packed (the rest is done by the caller).
inline int pack_rows8(const float* src, int lda, int kc, float* dst) {
    static_assert(MR == 8, "pack_rows8 transposes 8 rows");
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + std::size_t(i) * lda + k);
        const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
        const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
        const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
        const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
        const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
        const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
        const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
        const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
        const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
        const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
        const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
        const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
        float* d = dst + std::size_t(k) * 8;
        _mm256_storeu_ps(d + 0, _mm256_permute2f128_ps(u0, u4, 0x20));
        _mm256_storeu_ps(d + 8, _mm256_permute2f128_ps(u1, u5, 0x20));
        _mm256_storeu_ps(d + 16, _mm256_permute2f128_ps(u2, u6, 0x20));
        _mm256_storeu_ps(d + 24, _mm256_permute2f128_ps(u3, u7, 0x20));
        _mm256_storeu_ps(d + 32, _mm256_permute2f128_ps(u0, u4, 0x31));
        _mm256_storeu_ps(d + 40, _mm256_permute2f128_ps(u1, u5, 0x31));
        _mm256_storeu_ps(d + 48, _mm256_permute2f128_ps(u2, u6, 0x31));
        _mm256_storeu_ps(d + 56, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    return k;
}
// The same for double: two 4x4 transposes (rows 0-3 and 4-7) per 4 k.
inline int pack_rows8(const double* src, int lda, int kc, double* dst) {
    int k = 0;
    for (; k + 4 <= kc; k += 4) {
        for (int h = 0; h < 2; ++h) {
            const double* s = src + std::size_t(4 * h) * lda + k;
            const __m256d r0 = _mm256_loadu_pd(s), r1 = _mm256_loadu_pd(s + lda);
            const __m256d r2 = _mm256_loadu_pd(s + 2 * std::size_t(lda));
            const __m256d r3 = _mm256_loadu_pd(s + 3 * std::size_t(lda));
            const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
            const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            double* d = dst + std::size_t(k) * 8 + 4 * h;
            _mm256_storeu_pd(d + 0, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_storeu_pd(d + 8, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_storeu_pd(d + 16, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_storeu_pd(d + 24, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
    }
    return k;
}

template <class T>
void gemm_impl(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
               int ldb, T beta, T* C, int ldc, const GemmEpilogue* ep) {
    using S = Simd<T>;
    constexpr int W = S::W, NR = 2 * W;
    if (K == 0) {  // C = beta * C (the engine never asks for an epilogue here)
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) C[std::size_t(i) * ldc + j] *= beta;
        return;
    }
    const int npan = (N + NR - 1) / NR, mpan = (M + MR - 1) / MR;
    thread_local std::vector<T> bpack, apack;  // grown once, reused
    // k blocks of (nearly) equal depth, at most KC each
    const int nkb = (K + KC - 1) / KC, kstep = (K + nkb - 1) / nkb;
    const T* bias = ep ? static_cast<const T*>(ep->bias) : nullptr;
    typename Simd<T>::V probe = Simd<T>::zero();
    for (int p0 = 0; p0 < K; p0 += kstep) {
        const int kc = std::min(kstep, K - p0);
        const bool first = p0 == 0, last = p0 + kc >= K;
        // B block (kc x N) -> npan k-major panels of kc x NR, zero padded
        bpack.resize(std::size_t(npan) * kc * NR);
        for (int jp = 0; jp < npan; ++jp) {
            T* dst = bpack.data() + std::size_t(jp) * kc * NR;
            const int j0 = jp * NR, nr = std::min(NR, N - j0);
            if (!tb) {
                const typename S::M m0 = mask_for<T>(nr), m1 = mask_for<T>(nr - W);
                for (int k = 0; k < kc; ++k) {
                    const T* src = B + std::size_t(p0 + k) * ldb + j0;
                    _mm512_storeu_si512(dst + k * NR, (__m512i)S::mload(m0, src));
                    _mm512_storeu_si512(dst + k * NR + W, (__m512i)S::mload(m1, src + W));
                }
            } else {  // op(B)(k, j) = B[j][k]
                for (int k = 0; k < kc; ++k)
                    for (int j = nr; j < NR; ++j) dst[k * NR + j] = T(0);
                for (int j = 0; j < nr; ++j) {
                    const T* src = B + std::size_t(j0 + j) * ldb + p0;
                    for (int k = 0; k < kc; ++k) dst[k * NR + j] = src[k];
                }
            }
        }
        // A block (M x kc) -> mpan k-major panels of kc x MR, zero padded
        apack.resize(std::size_t(mpan) * kc * MR);
        for (int ip = 0; ip < mpan; ++ip) {
            T* dst = apack.data() + std::size_t(ip) * kc * MR;
            const int i0 = ip * MR, mr = std::min(MR, M - i0);
            if (ta) {  // op(A)(i, k) = A[k][i]: MR consecutive values of A's row k
                for (int k = 0; k < kc; ++k) {
                    const T* src = A + std::size_t(p0 + k) * lda + i0;
                    if (mr == MR)
                        copy8(src, dst + k * MR);
                    else
                        for (int i = 0; i < MR; ++i) dst[k * MR + i] = i < mr ? src[i] : T(0);
                }
            } else {
                int k0 = 0;
                if (mr == MR) k0 = pack_rows8(A + std::size_t(i0) * lda + p0, lda, kc, dst);
                for (int i = 0; i < MR && k0 < kc; ++i) {
                    if (i >= mr) {
                        for (int k = k0; k < kc; ++k) dst[k * MR + i] = T(0);
                        continue;
                    }
                    const T* src = A + std::size_t(i0 + i) * lda + p0;
                    for (int k = k0; k < kc; ++k) dst[k * MR + i] = src[k];
                }
            }
        }
        for (int jp = 0; jp < npan; ++jp) {
            const int j0 = jp * NR, nr = std::min(NR, N - j0);
            const T* bp = bpack.data() + std::size_t(jp) * kc * NR;
            for (int ip = 0; ip < mpan; ++ip) {
                const int i0 = ip * MR, mr = std::min(MR, M - i0);
                micro<T>(kc, apack.data() + std::size_t(ip) * kc * MR, bp,
                         C + std::size_t(i0) * ldc + j0, ldc, mr, nr, alpha, beta, first,
                         last ? ep : nullptr, last && bias ? bias + j0 : nullptr,
                         last && ep && ep->nonfinite ? &probe : nullptr);
            }
        }
    }
    if (ep && ep->nonfinite && Simd<T>::any_nan(probe)) *ep->nonfinite = true;
}

}  // namespace

bool gemm_avx512_available() {
    static const bool ok = [] {
        if (const char* e = std::getenv("NEURAXIS_GEMM"))
            if (std::strcmp(e, "openblas") == 0) return false;
        __builtin_cpu_init();
        // this file is compiled with F, DQ, BW and VL: require all four
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    }();
    return ok;
}

void gemm_avx512(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc, const GemmEpilogue* ep) {
    gemm_impl<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
}

void gemm_avx512(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
                 const double* B, int ldb, double beta, double* C, int ldc,
                 const GemmEpilogue* ep) {
    gemm_impl<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
}

}  // namespace neuraxis
