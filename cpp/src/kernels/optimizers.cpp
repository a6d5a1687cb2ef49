// Optimizer steps, updating parameters in place with scikit-learn's formulas.
#include <cmath>

#include "neuraxis/kernels.hpp"

namespace neuraxis {

// v = momentum * v - lr * g;  p += nesterov ? momentum * v - lr * g : v
template <class T>
void sgd_step(T* p, T* vel, const T* g, idx n, double lr, double momentum, bool nesterov) {
    const T mu = T(momentum), eta = T(lr);
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
    for (idx i = 0; i < n; ++i) {
        T v = mu * vel[i] - eta * g[i];
        vel[i] = v;
        p[i] += nesterov ? mu * v - eta * g[i] : v;
    }
}

// m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr_t * m / (sqrt(v) + eps)
template <class T>
void adam_step(T* p, T* m, T* v, const T* g, idx n, double lr_t, double b1, double b2,
               double eps) {
    const T B1 = T(b1), C1 = T(1 - b1), B2 = T(b2), C2 = T(1 - b2), LR = T(lr_t), E = T(eps);
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
    for (idx i = 0; i < n; ++i) {
        T gi = g[i];
        T mi = B1 * m[i] + C1 * gi;
        T vi = B2 * v[i] + C2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] += -LR * mi / (std::sqrt(vi) + E);
    }
}

template void sgd_step<float>(float*, float*, const float*, idx, double, double, bool);
template void sgd_step<double>(double*, double*, const double*, idx, double, double, bool);
template void adam_step<float>(float*, float*, float*, const float*, idx, double, double, double,
                               double);
template void adam_step<double>(double*, double*, double*, const double*, idx, double, double,
                                double, double);

}  // namespace neuraxis
