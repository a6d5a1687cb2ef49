// Losses with scikit-learn's definitions, and the fused output delta.
#include <algorithm>
#include <cmath>
#include <limits>

#include "neuraxis/kernels.hpp"
#include "neuraxis/threads.hpp"

namespace neuraxis {

Act loss_output_activation(Loss l) {
    switch (l) {
        case Loss::softmax_log_loss:
        case Loss::categorical_crossentropy: return Act::softmax;
        case Loss::logistic_log_loss:
        case Loss::binary_crossentropy: return Act::logistic;
        case Loss::poisson: return Act::exp;
        default: return Act::identity;
    }
}


namespace {
inline double xlogy(double x, double y) { return x == 0.0 ? 0.0 : x * std::log(y); }
constexpr double kKerasEps = 1e-7;  // keras.backend.epsilon()
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
            case Loss::categorical_crossentropy:
                for (idx j = 0; j < k; ++j)
                    r -= xlogy(y[j], std::clamp(double(p[j]), kKerasEps, 1.0 - kKerasEps));
                break;
            case Loss::binary_crossentropy:
                for (idx j = 0; j < k; ++j) {
                    double pj = std::clamp(double(p[j]), kKerasEps, 1.0 - kKerasEps);
                    r -= double(y[j]) * std::log(pj) + (1.0 - y[j]) * std::log(1.0 - pj);
                }
                r /= double(k);
                break;
            case Loss::mse:
                for (idx j = 0; j < k; ++j) {
                    double e = double(p[j]) - double(y[j]);
                    r += e * e;
                }
                r /= double(k);
                break;
            case Loss::mae:
                for (idx j = 0; j < k; ++j) r += std::abs(double(p[j]) - double(y[j]));
                r /= double(k);
                break;
        }
        const double w = sw ? double(sw[i]) : 1.0;
        total += w * r;
        wsum += w;
    }
    return wsum != 0 ? total / wsum : 0.0;  // weights of any sign (scikit-learn accepts them)
}

// dZ = c * (P - Y) * sw_i * scale  (c: 1, or 1/k / 2/k for Keras's means over outputs)
template <class T>
void loss_delta(Loss l, const T* P, const T* Y, const T* sw, idx n, idx k, double scale, T* dZ) {
    double c = 1.0;
    if (l == Loss::binary_crossentropy || l == Loss::mae) c = 1.0 / double(k);
    if (l == Loss::mse) c = 2.0 / double(k);
    const bool sign = l == Loss::mae;
    parallel_for(n, kElementCost * k, [&](idx i0, idx i1) {
        for (idx i = i0; i < i1; ++i) {
            const T s = T((sw ? double(sw[i]) : 1.0) * scale * c);
            const T* p = P + i * k;
            const T* y = Y + i * k;
            T* d = dZ + i * k;
            if (sign)
                for (idx j = 0; j < k; ++j) d[j] = p[j] > y[j] ? s : (p[j] < y[j] ? -s : T(0));
            else if (s == T(1))
                for (idx j = 0; j < k; ++j) d[j] = p[j] - y[j];
            else
                for (idx j = 0; j < k; ++j) d[j] = (p[j] - y[j]) * s;
        }
    });
}

// dL/dP of the per-row loss, times sw_i * scale. Clipped probabilities get no
// gradient, as in Keras (the clip is outside the differentiable range).
template <class T>
void loss_grad_output(Loss l, const T* P, const T* Y, const T* sw, idx n, idx k, double scale,
                      T* dP) {
    const double eps = (l == Loss::softmax_log_loss || l == Loss::logistic_log_loss)
                           ? double(std::numeric_limits<T>::epsilon())
                           : kKerasEps;
    for (idx i = 0; i < n; ++i) {
        const double s = (sw ? double(sw[i]) : 1.0) * scale;
        const T* p = P + i * k;
        const T* y = Y + i * k;
        T* d = dP + i * k;
        for (idx j = 0; j < k; ++j) {
            const double pj = p[j], yj = y[j];
            const bool inside = pj > eps && pj < 1.0 - eps;
            double g = 0.0;
            switch (l) {
                case Loss::softmax_log_loss:
                case Loss::categorical_crossentropy: g = inside ? -yj / pj : 0.0; break;
                case Loss::logistic_log_loss: g = inside ? (pj - yj) / (pj * (1 - pj)) : 0.0; break;
                case Loss::binary_crossentropy:
                    g = inside ? (pj - yj) / (pj * (1 - pj)) / double(k) : 0.0;
                    break;
                case Loss::squared_error: g = (pj - yj); break;
                case Loss::poisson: g = 1.0 - yj / pj; break;
                case Loss::mse: g = 2.0 * (pj - yj) / double(k); break;
                case Loss::mae: g = (pj > yj ? 1.0 : (pj < yj ? -1.0 : 0.0)) / double(k); break;
            }
            d[j] = T(g * s);
        }
    }
}

template <class T>
double metric_sum(Metric m, const T* P, const T* Y, const T* sw, idx n, idx k) {
    double total = 0.0;
    for (idx i = 0; i < n; ++i) {
        const T* p = P + i * k;
        const T* y = Y + i * k;
        double r = 0.0;
        switch (m) {
            case Metric::categorical_accuracy:
                r = (std::max_element(p, p + k) - p) == (std::max_element(y, y + k) - y);
                break;
            case Metric::binary_accuracy:
                for (idx j = 0; j < k; ++j) r += (p[j] > T(0.5) ? T(1) : T(0)) == y[j];
                r /= double(k);
                break;
            case Metric::mse:
                for (idx j = 0; j < k; ++j) r += (double(p[j]) - y[j]) * (double(p[j]) - y[j]);
                r /= double(k);
                break;
            case Metric::mae:
                for (idx j = 0; j < k; ++j) r += std::abs(double(p[j]) - y[j]);
                r /= double(k);
                break;
            default: break;  // parameterized and streaming metrics: metrics_extra.cpp
        }
        total += (sw ? double(sw[i]) : 1.0) * r;
    }
    return total;
}

template double loss_value<float>(Loss, const float*, const float*, const float*, idx, idx);
template double loss_value<double>(Loss, const double*, const double*, const double*, idx, idx);
template void loss_delta<float>(Loss, const float*, const float*, const float*, idx, idx, double,
                                float*);
template void loss_delta<double>(Loss, const double*, const double*, const double*, idx, idx,
                                 double, double*);

}  // namespace neuraxis

namespace neuraxis {
template void loss_grad_output<float>(Loss, const float*, const float*, const float*, idx, idx,
                                      double, float*);
template void loss_grad_output<double>(Loss, const double*, const double*, const double*, idx, idx,
                                       double, double*);
template double metric_sum<float>(Metric, const float*, const float*, const float*, idx, idx);
template double metric_sum<double>(Metric, const double*, const double*, const double*, idx, idx);
}  // namespace neuraxis
