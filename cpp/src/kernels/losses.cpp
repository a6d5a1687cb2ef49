// Losses with scikit-learn's definitions, and the fused output delta.
#include <algorithm>
#include <cmath>
#include <limits>

#include "neuraxis/kernels.hpp"

namespace neuraxis {

Loss parse_loss(const std::string& name) {
    if (name == "softmax_log_loss") return Loss::softmax_log_loss;
    if (name == "logistic_log_loss") return Loss::logistic_log_loss;
    if (name == "squared_error") return Loss::squared_error;
    if (name == "poisson") return Loss::poisson;
    throw ValueError("unknown loss '" + name +
                     "'; expected softmax_log_loss, logistic_log_loss, squared_error or poisson");
}

Act loss_output_activation(Loss l) {
    switch (l) {
        case Loss::softmax_log_loss: return Act::softmax;
        case Loss::logistic_log_loss: return Act::logistic;
        case Loss::squared_error: return Act::identity;
        case Loss::poisson: return Act::exp;
    }
    return Act::identity;
}

namespace {
inline double xlogy(double x, double y) { return x == 0.0 ? 0.0 : x * std::log(y); }
}  // namespace

// Per row: softmax  -sum_j y_j log p_j           (p clipped to [eps, 1-eps])
//          logistic -sum_j y_j log p_j + (1-y_j) log(1-p_j)
//                   (one output: the same as two-class softmax)
//          squared   0.5 * mean_j (y_j - p_j)^2
//          poisson   sum_j y_j log(y_j/p_j) - y_j + p_j
// then the weighted mean over rows.
template <class T>
double loss_value(Loss l, const T* P, const T* Y, const T* sw, idx n, idx k) {
    const double eps = std::numeric_limits<T>::epsilon();
    double total = 0.0, wsum = 0.0;
    for (idx i = 0; i < n; ++i) {
        const T* p = P + i * k;
        const T* y = Y + i * k;
        double r = 0.0;
        switch (l) {
            case Loss::softmax_log_loss:
                for (idx j = 0; j < k; ++j)
                    r -= xlogy(y[j], std::clamp(double(p[j]), eps, 1.0 - eps));
                break;
            case Loss::logistic_log_loss:
                for (idx j = 0; j < k; ++j) {
                    double pj = std::clamp(double(p[j]), eps, 1.0 - eps);
                    r -= xlogy(y[j], pj) + xlogy(1.0 - y[j], 1.0 - pj);
                }
                break;
            case Loss::squared_error:
                for (idx j = 0; j < k; ++j) {
                    double e = double(y[j]) - double(p[j]);
                    r += e * e;
                }
                r = 0.5 * r / double(k);
                break;
            case Loss::poisson:
                for (idx j = 0; j < k; ++j)
                    r += xlogy(y[j], double(y[j]) / double(p[j])) - y[j] + p[j];
                break;
        }
        const double w = sw ? double(sw[i]) : 1.0;
        total += w * r;
        wsum += w;
    }
    return wsum > 0 ? total / wsum : 0.0;
}

// dZ = (P - Y) * sw_i * scale
template <class T>
void loss_delta(Loss, const T* P, const T* Y, const T* sw, idx n, idx k, double scale, T* dZ) {
#pragma omp parallel for schedule(static) if (n * k > kParallelThreshold)
    for (idx i = 0; i < n; ++i) {
        const T s = T(sw ? double(sw[i]) * scale : scale);
        const T* p = P + i * k;
        const T* y = Y + i * k;
        T* d = dZ + i * k;
        if (s == T(1))
            for (idx j = 0; j < k; ++j) d[j] = p[j] - y[j];
        else
            for (idx j = 0; j < k; ++j) d[j] = (p[j] - y[j]) * s;
    }
}

template double loss_value<float>(Loss, const float*, const float*, const float*, idx, idx);
template double loss_value<double>(Loss, const double*, const double*, const double*, idx, idx);
template void loss_delta<float>(Loss, const float*, const float*, const float*, idx, idx, double,
                                float*);
template void loss_delta<double>(Loss, const double*, const double*, const double*, idx, idx,
                                 double, double*);

}  // namespace neuraxis
