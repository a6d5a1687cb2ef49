// Elementwise activations: one scalar function per activation plus one
// generic row loop. Derivatives are written through the output y = f(z).
#include <algorithm>
#include <cmath>

#include "neuraxis/kernels.hpp"
#include "neuraxis/threads.hpp"

namespace neuraxis {

namespace {

template <class T>
inline T sigmoid(T z) {  // stable on both tails, like scipy.special.expit
    if (z >= 0) return T(1) / (T(1) + std::exp(-z));
    T e = std::exp(z);
    return e / (T(1) + e);
}

// Apply `f(value)` to every element of an (n, k) block, threaded when large.
template <class T, class F>
void each(T* x, idx total, F f) {
#pragma omp parallel for schedule(static) num_threads(threads_for(kElementCost, total))
    for (idx i = 0; i < total; ++i) x[i] = f(x[i]);
}

// d[i] = d[i] * g(y[i])
template <class T, class G>
void each_grad(const T* y, T* d, idx total, G g) {
#pragma omp parallel for schedule(static) num_threads(threads_for(kElementCost, total))
    for (idx i = 0; i < total; ++i) d[i] *= g(y[i]);
}

}  // namespace

template <class T>
void act_forward(Activation a, T* z, idx n, idx k) {
    const idx total = n * k;
    const T al = T(a.alpha);
    switch (a.kind) {
        case Act::identity: return;
        case Act::logistic: return each(z, total, [](T v) { return sigmoid(v); });
        case Act::tanh: return each(z, total, [](T v) { return std::tanh(v); });
        case Act::relu: return each(z, total, [](T v) { return v > T(0) ? v : T(0); });
        case Act::leaky_relu: return each(z, total, [al](T v) { return v > T(0) ? v : al * v; });
        case Act::elu:
            return each(z, total, [al](T v) { return v > T(0) ? v : al * std::expm1(v); });
        case Act::softplus:  // log(1 + e^v) = max(v, 0) + log1p(e^-|v|)
            return each(z, total,
                        [](T v) { return std::max(v, T(0)) + std::log1p(std::exp(-std::abs(v))); });
        case Act::step: return each(z, total, [](T v) { return v > T(0) ? T(1) : T(0); });
        case Act::exp: return each(z, total, [](T v) { return std::exp(v); });
        case Act::softmax: {
#pragma omp parallel for schedule(static) num_threads(threads_for(kElementCost * k, n))
            for (idx i = 0; i < n; ++i) {
                T* r = z + i * k;
                T mx = *std::max_element(r, r + k);
                T s = 0;
                for (idx j = 0; j < k; ++j) s += (r[j] = std::exp(r[j] - mx));
                for (idx j = 0; j < k; ++j) r[j] /= s;
            }
            return;
        }
    }
}

template <class T>
void act_backward(Activation a, const T* y, T* d, idx n, idx k) {
    const idx total = n * k;
    const T al = T(a.alpha);
    switch (a.kind) {
        case Act::identity: return;
        case Act::logistic: return each_grad(y, d, total, [](T v) { return v * (T(1) - v); });
        case Act::tanh: return each_grad(y, d, total, [](T v) { return T(1) - v * v; });
        case Act::relu: return each_grad(y, d, total, [](T v) { return v > T(0) ? T(1) : T(0); });
        case Act::leaky_relu:
            return each_grad(y, d, total, [al](T v) { return v > T(0) ? T(1) : al; });
        case Act::elu:  // z <= 0: f' = alpha e^z = y + alpha
            return each_grad(y, d, total, [al](T v) { return v > T(0) ? T(1) : v + al; });
        case Act::softplus:  // f' = sigmoid(z) = 1 - e^-y
            return each_grad(y, d, total, [](T v) { return -std::expm1(-v); });
        case Act::exp: return each_grad(y, d, total, [](T v) { return v; });
        case Act::step:
            throw ValueError(
                "the binary step activation has no useful gradient (zero almost everywhere); "
                "it can be used for prediction but not for training");
        case Act::softmax: {
            // dz_j = y_j * (d_j - sum_i d_i y_i)
#pragma omp parallel for schedule(static) num_threads(threads_for(kElementCost * k, n))
            for (idx i = 0; i < n; ++i) {
                const T* yr = y + i * k;
                T* dr = d + i * k;
                T dot = 0;
                for (idx j = 0; j < k; ++j) dot += dr[j] * yr[j];
                for (idx j = 0; j < k; ++j) dr[j] = yr[j] * (dr[j] - dot);
            }
            return;
        }
    }
}

// z = f(z + b) row by row in one pass (b may be null); optionally reports
// whether any z + b was NaN/inf (checked before the activation can hide it).
template <class T>
void bias_act_forward(Activation a, T* z, const T* b, idx n, idx k, bool* nonfinite) {
    bool bad = false;
    const bool check = nonfinite != nullptr;
    auto run = [&](auto f) {
#pragma omp parallel for schedule(static) reduction(|| : bad) num_threads(threads_for(kElementCost * k, n))
        for (idx i = 0; i < n; ++i) {
            T* r = z + i * k;
            if (b) {
#pragma omp simd
                for (idx j = 0; j < k; ++j) r[j] += b[j];
            }
            if (check) {  // any inf/NaN makes the sum NaN (inf * 0 = NaN)
                T probe = T(0);
#pragma omp simd reduction(+ : probe)
                for (idx j = 0; j < k; ++j) probe += r[j] * T(0);
                bad = bad || !(probe == T(0));
            }
#pragma omp simd
            for (idx j = 0; j < k; ++j) r[j] = f(r[j]);
        }
    };
    const T al = T(a.alpha);
    switch (a.kind) {
        case Act::identity: run([](T v) { return v; }); break;
        case Act::relu: run([](T v) { return v > T(0) ? v : T(0); }); break;
        case Act::leaky_relu: run([al](T v) { return v > T(0) ? v : al * v; }); break;
        case Act::logistic: run([](T v) { return sigmoid(v); }); break;
        case Act::tanh: run([](T v) { return std::tanh(v); }); break;
        default:  // the rest (softmax is per row) in two passes
            run([](T v) { return v; });
            act_forward(a, z, n, k);
    }
    if (nonfinite) *nonfinite = *nonfinite || bad;
}

template void bias_act_forward<float>(Activation, float*, const float*, idx, idx, bool*);
template void bias_act_forward<double>(Activation, double*, const double*, idx, idx, bool*);
template void act_forward<float>(Activation, float*, idx, idx);
template void act_forward<double>(Activation, double*, idx, idx);
template void act_backward<float>(Activation, const float*, float*, idx, idx);
template void act_backward<double>(Activation, const double*, double*, idx, idx);

}  // namespace neuraxis
