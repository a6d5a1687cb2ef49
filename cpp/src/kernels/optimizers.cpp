// Optimizer steps, updating parameters in place with scikit-learn's formulas.
// The L2 term is folded in here (g + reg * p) so the training loop does not
// make extra passes over the weights; `sumsq` returns ||p_new||^2 for the
// next batch's penalty. Per-thread partial sums are added in a fixed order.
#include <omp.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include <cmath>
#include <type_traits>
#include <vector>

#include "neuraxis/kernels.hpp"
#include "neuraxis/simd.hpp"
#include "neuraxis/threads.hpp"

namespace neuraxis {

namespace {

// Runs body(i0, i1) over [0, n) in contiguous per-thread blocks and returns
// the sum of the per-block results, added in block order (deterministic).
template <class Body>
double blocked(idx n, Body body) {
    const int nt = threads_for(kElementCost, n);
    if (nt == 1) return body(idx(0), n);
    std::vector<double> part(nt, 0.0);
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const idx i0 = n * t / T, i1 = n * (t + 1) / T;
        part[t] = body(i0, i1);
    }
    double s = 0.0;
    for (double p : part) s += p;
    return s;
}

}  // namespace


// v = momentum * v - lr * g;  p += nesterov ? momentum * v - lr * g : v   (g += reg * p)
template <class T>
static inline __attribute__((always_inline)) double sgd_loop(T* p, T* vel, const T* g, idx i0,
                                                             idx i1, T mu, T eta, T R,
                                                             bool nesterov, bool want) {
    double sq = 0.0;
    if (!want) {
#pragma omp simd
        for (idx i = i0; i < i1; ++i) {
            const T gi = g[i] + R * p[i];
            const T v = mu * vel[i] - eta * gi;
            vel[i] = v;
            p[i] += nesterov ? mu * v - eta * gi : v;
        }
        return sq;
    }
#pragma omp simd reduction(+ : sq)
    for (idx i = i0; i < i1; ++i) {
        const T gi = g[i] + R * p[i];
        const T v = mu * vel[i] - eta * gi;
        vel[i] = v;
        const T pi = p[i] + (nesterov ? mu * v - eta * gi : v);
        p[i] = pi;
        sq += double(pi) * double(pi);
    }
    return sq;
}

// m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr_t * m / (sqrt(v) + eps)   (g += reg * p)
template <class T>
static inline __attribute__((always_inline)) double adam_loop(T* p, T* m, T* v, const T* g,
                                                              idx i0, idx i1, T B1, T C1, T B2,
                                                              T C2, T LR, T E, T R, bool want) {
    double sq = 0.0;
    if (!want) {
#pragma omp simd
        for (idx i = i0; i < i1; ++i) {
            const T gi = g[i] + R * p[i];
            const T mi = B1 * m[i] + C1 * gi;
            const T vi = B2 * v[i] + C2 * (gi * gi);
            m[i] = mi;
            v[i] = vi;
            p[i] += -LR * mi / (std::sqrt(vi) + E);
        }
        return sq;
    }
#pragma omp simd reduction(+ : sq)
    for (idx i = i0; i < i1; ++i) {
        const T gi = g[i] + R * p[i];
        const T mi = B1 * m[i] + C1 * gi;
        const T vi = B2 * v[i] + C2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        const T pi = p[i] + -LR * mi / (std::sqrt(vi) + E);
        p[i] = pi;
        sq += double(pi) * double(pi);
    }
    return sq;
}

#define NX_SGD(T)                                                                              \
    NX_CLONES double sgd_block(T* p, T* vel, const T* g, idx i0, idx i1, T mu, T eta, T R,     \
                               bool nesterov, bool want) {                                     \
        return sgd_loop<T>(p, vel, g, i0, i1, mu, eta, R, nesterov, want);                     \
    }
#define NX_ADAM(T)                                                                             \
    NX_CLONES double adam_block(T* p, T* m, T* v, const T* g, idx i0, idx i1, T B1, T C1,      \
                                T B2, T C2, T LR, T E, T R, bool want) {                       \
        return adam_loop<T>(p, m, v, g, i0, i1, B1, C1, B2, C2, LR, E, R, want);               \
    }
NX_SGD(float)
NX_SGD(double)
NX_ADAM(float)
NX_ADAM(double)

#if defined(__x86_64__) && defined(__GNUC__)
// float32 Adam on AVX-512 without the divider. The exact loop is bound by one
// sqrt and one division per element (~20 cycles per 16 floats, the FP divider
// being the bottleneck); here sqrt(v) = v * rsqrt(v) and 1 / (sqrt(v) + eps)
// come from the 14-bit estimates refined by one Newton step each, so the
// update term is within ~2 ulp of the exact one (m and v are exact). Lanes
// with v = 0 or v, the denominator or the result out of the normal range take
// the exact formula.
template <bool kReg, bool kCheckDenominator>
__attribute__((target("avx512f"), always_inline)) inline void adam_avx512_loop(
    float* p, float* m, float* v, const float* g, idx i0, idx i1, float B1, float C1, float B2,
    float C2, float LR, float E, float R) {
    const __m512 b1 = _mm512_set1_ps(B1), c1 = _mm512_set1_ps(C1), b2 = _mm512_set1_ps(B2),
                 c2 = _mm512_set1_ps(C2), nlr = _mm512_set1_ps(-LR), e = _mm512_set1_ps(E),
                 r = _mm512_set1_ps(R), half = _mm512_set1_ps(0.5f),
                 three_halves = _mm512_set1_ps(1.5f), two = _mm512_set1_ps(2.0f),
                 tiny = _mm512_set1_ps(1e-30f), huge = _mm512_set1_ps(1e30f);
    idx i = i0;
    for (; i + 16 <= i1; i += 16) {
        const __m512 pi = _mm512_loadu_ps(p + i);
        __m512 gi = _mm512_loadu_ps(g + i);
        if (kReg) gi = _mm512_add_ps(gi, _mm512_mul_ps(r, pi));
        const __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)),
                                        _mm512_mul_ps(c1, gi));
        const __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)),
                                        _mm512_mul_ps(c2, _mm512_mul_ps(gi, gi)));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        __m512 y = _mm512_rsqrt14_ps(vi);  // y ~ 1/sqrt(v); y *= 1.5 - 0.5 v y^2
        y = _mm512_mul_ps(y, _mm512_sub_ps(three_halves,
                                           _mm512_mul_ps(_mm512_mul_ps(half, vi),
                                                         _mm512_mul_ps(y, y))));
        const __m512 d = _mm512_add_ps(_mm512_mul_ps(vi, y), e);  // sqrt(v) + eps
        __m512 q = _mm512_rcp14_ps(d);  // q ~ 1/d; q *= 2 - d q
        q = _mm512_mul_ps(q, _mm512_sub_ps(two, _mm512_mul_ps(d, q)));
        // With eps >= 1e-30 the denominator is in range whenever v is.
        __mmask16 ok = _mm512_cmp_ps_mask(vi, tiny, _CMP_GT_OQ) &
                       _mm512_cmp_ps_mask(vi, huge, _CMP_LT_OQ);
        if (kCheckDenominator)
            ok &= _mm512_cmp_ps_mask(d, tiny, _CMP_GT_OQ) & _mm512_cmp_ps_mask(d, huge, _CMP_LT_OQ);
        __m512 step = _mm512_mul_ps(_mm512_mul_ps(nlr, mi), q);
        if (ok != 0xFFFF)  // the exact formula where the estimates are not safe
            step = _mm512_mask_div_ps(step, ~ok, _mm512_mul_ps(nlr, mi),
                                      _mm512_add_ps(_mm512_sqrt_ps(vi), e));
        _mm512_storeu_ps(p + i, _mm512_add_ps(pi, step));
    }
    adam_loop<float>(p, m, v, g, i, i1, B1, C1, B2, C2, LR, E, R, false);  // the tail, exact
}

__attribute__((target("avx512f"))) void adam_block_avx512(float* p, float* m, float* v,
                                                          const float* g, idx i0, idx i1,
                                                          float B1, float C1, float B2, float C2,
                                                          float LR, float E, float R) {
    const bool check = !(E >= 1e-30f && E < 1e29f);
    if (R != 0.0f)
        check ? adam_avx512_loop<true, true>(p, m, v, g, i0, i1, B1, C1, B2, C2, LR, E, R)
              : adam_avx512_loop<true, false>(p, m, v, g, i0, i1, B1, C1, B2, C2, LR, E, R);
    else
        check ? adam_avx512_loop<false, true>(p, m, v, g, i0, i1, B1, C1, B2, C2, LR, E, R)
              : adam_avx512_loop<false, false>(p, m, v, g, i0, i1, B1, C1, B2, C2, LR, E, R);
}
bool have_avx512() {
    static const bool yes = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") != 0;
    }();
    return yes;
}
#else
bool have_avx512() { return false; }
void adam_block_avx512(float*, float*, float*, const float*, idx, idx, float, float, float, float,
                       float, float, float) {}
#endif

template <class T>
double sgd_step(T* p, T* vel, const T* g, idx n, double lr, double momentum, bool nesterov,
                double reg, bool want_sumsq) {
    const T mu = T(momentum), eta = T(lr), R = T(reg);
    return blocked(n, [=](idx i0, idx i1) {
        return sgd_block(p, vel, g, i0, i1, mu, eta, R, nesterov, want_sumsq);
    });
}

template <class T>
double adam_step(T* p, T* m, T* v, const T* g, idx n, double lr_t, double b1, double b2,
                 double eps, double reg, bool want_sumsq) {
    const T B1 = T(b1), C1 = T(1 - b1), B2 = T(b2), C2 = T(1 - b2), LR = T(lr_t), E = T(eps),
            R = T(reg);
    return blocked(n, [=](idx i0, idx i1) {
        if constexpr (std::is_same_v<T, float>) {
            if (!want_sumsq && have_avx512()) {  // (the sum of squares: scikit-learn's alpha)
                adam_block_avx512(p, m, v, g, i0, i1, B1, C1, B2, C2, LR, E, R);
                return 0.0;
            }
        }
        return adam_block(p, m, v, g, i0, i1, B1, C1, B2, C2, LR, E, R, want_sumsq);
    });
}

// ms = rho ms + (1-rho) g^2;  step = lr g / sqrt(ms + eps);  p -= step (or via momentum)
template <class T>
double rmsprop_step(T* p, T* ms, T* mom, const T* g, idx n, double lr, double rho, double eps,
                  double momentum, double reg, bool want_sumsq) {
    const T RHO = T(rho), C = T(1 - rho), LR = T(lr), E = T(eps), MU = T(momentum), R = T(reg);
    return blocked(n, [=](idx i0, idx i1) {
        double sq = 0.0;
        for (idx i = i0; i < i1; ++i) {
            const T gi = g[i] + R * p[i];
            const T v = RHO * ms[i] + C * gi * gi;
            ms[i] = v;
            const T step = LR * gi / std::sqrt(v + E);
            if (mom) {
                mom[i] = MU * mom[i] + step;
                p[i] -= mom[i];
            } else {
                p[i] -= step;
            }
            if (want_sumsq) sq += double(p[i]) * double(p[i]);
        }
        return sq;
    });
}

template double rmsprop_step<float>(float*, float*, float*, const float*, idx, double, double, double,
                                  double, double, bool);
template double rmsprop_step<double>(double*, double*, double*, const double*, idx, double, double,
                                   double, double, double, bool);
template double sgd_step<float>(float*, float*, const float*, idx, double, double, bool, double,
                                bool);
template double sgd_step<double>(double*, double*, const double*, idx, double, double, bool, double,
                                 bool);
template double adam_step<float>(float*, float*, float*, const float*, idx, double, double, double,
                                 double, double, bool);
template double adam_step<double>(double*, double*, double*, const double*, idx, double, double,
                                  double, double, double, bool);

}  // namespace neuraxis
