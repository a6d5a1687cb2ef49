// Optimizer steps, updating parameters in place with scikit-learn's formulas.
// The L2 term is folded in here (g + reg * p) so the training loop does not
// make extra passes over the weights; `sumsq` returns ||p_new||^2 for the
// next batch's penalty. Per-thread partial sums are added in a fixed order.
#include <omp.h>

#include <cmath>
#include <vector>

#include "neuraxis/kernels.hpp"
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

// Runtime SIMD dispatch for the hot loops (the default build stays portable).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NX_CLONES __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define NX_CLONES
#endif

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
