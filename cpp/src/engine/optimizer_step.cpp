// Keras's optimizer step inside a training batch's parallel region: the
// options that need every gradient complete before any weight moves.
//
// Phase 1: thread t adds the threads' partial gradients over its slice of each
// parameter (or computes the slice, for parameters done by slices), adds the
// L1/L2 penalty's gradient (Keras adds the penalty to the loss), and keeps the
// slice's sum of squares. A barrier. Phase 2: every thread adds the sums in
// thread order (so all agree, bit for bit), turns them into clipnorm's or
// global_clipnorm's scale, and updates its slices (keras_update).
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "neuraxis/network.hpp"
#include "neuraxis/optimizers_extra.hpp"

namespace neuraxis {

template <class T>
void Network<T>::keras_step(int t, int T_, const std::vector<T*>& params, const OptConfig& opt,
                            const StepScalars& s, OptState<T>& st, const std::vector<T*>& grads,
                            const Data<T>& b, double* sq, double* pen) {
    const std::size_t P = params.size();
    const bool reg = !opt.reg_l1.empty();
    // Thread t's slice of parameter p: whole units of its gradient granularity
    // when the gradient is computed by slices.
    auto slice = [&](std::size_t p) -> std::pair<idx, idx> {
        const idx sz = psize_[p];
        if (!sliced_[p]) return {sz * t / T_, sz * (t + 1) / T_};
        const idx gran = layers_[player_[p]]->grad_granularity(plocal_[p]), units = sz / gran;
        return {units * t / T_ * gran, units * (t + 1) / T_ * gran};
    };
    double* mine = sq + std::size_t(t) * P;
    double penalty = 0.0;
    for (std::size_t p = 0; p < P; ++p) {
        mine[p] = 0.0;
        if (!pspec_[p].trainable) continue;
        const auto [e0, e1] = slice(p);
        if (e1 <= e0) continue;
        T* g = grads[p];
        if (!sliced_[p]) {
            for (int u = 1; u < T_; ++u) {
                const T* gu = tgrads_[u - 1][p].data();
                for (idx i = e0; i < e1; ++i) g[i] += gu[i];
            }
        } else {
            const int l = player_[p];
            const int below = l ? owner_[l - 1] : -1;
            const T* x = below < 0 ? b.X : acts_[below].data();
            layers_[l]->param_grad(plocal_[p], b.n, x, deltas_[l].data(), e0, e1, g + e0);
        }
        const double l1 = reg ? opt.reg_l1[p] : 0.0, l2 = reg ? opt.reg_l2[p] : 0.0;
        const T* w = params[p];
        double ss = 0.0, pp = 0.0;
        if (l1 != 0.0 || l2 != 0.0) {  // l1 sum|w| + l2 sum w^2; gradient l1 sign(w) + 2 l2 w
            const T L1 = T(l1), L2 = T(2.0 * l2);
            for (idx i = e0; i < e1; ++i) {
                const T wi = w[i];
                pp += l1 * std::abs(double(wi)) + l2 * double(wi) * double(wi);
                g[i] += L1 * T((wi > T(0)) - (wi < T(0))) + L2 * wi;
            }
        }
        for (idx i = e0; i < e1; ++i) ss += double(g[i]) * double(g[i]);
        mine[p] = ss;
        penalty += pp;
    }
    pen[t] = penalty;
    if (T_ > 1) {
#pragma omp barrier
    }
    auto total = [&](std::size_t p) {
        double a = 0.0;
        for (int u = 0; u < T_; ++u) a += sq[std::size_t(u) * P + p];
        return a;
    };
    double global = 1.0;
    if (opt.global_clipnorm > 0) {  // Keras's clip_by_global_norm (NaN for a non-finite norm)
        double a = 0.0;
        for (std::size_t p = 0; p < P; ++p)
            if (pspec_[p].trainable) a += total(p);
        const double norm = std::sqrt(a), c = opt.global_clipnorm;
        global = c * std::min(1.0 / norm, 1.0 / c) + (norm - norm);
    }
    for (std::size_t p = 0; p < P; ++p) {
        if (!pspec_[p].trainable) continue;
        const auto [e0, e1] = slice(p);
        if (e1 <= e0) continue;
        double scale = global;
        if (opt.clipnorm > 0) {  // g clipnorm / max(||g||, clipnorm)
            const double a = total(p), norm = a > 0 ? std::sqrt(a) : a;
            scale = opt.clipnorm / std::max(norm, opt.clipnorm);
        }
        auto at = [&](const std::vector<T*>& v) { return v.empty() ? nullptr : v[p] + e0; };
        const bool decays = opt.no_decay.empty() || !opt.no_decay[p];
        keras_update(opt, s, params[p] + e0, at(st.m), at(st.v), at(st.s), grads[p] + e0,
                     e1 - e0, scale, decays ? opt.weight_decay : 0.0);
    }
}

template void Network<float>::keras_step(int, int, const std::vector<float*>&, const OptConfig&,
                                         const StepScalars&, OptState<float>&,
                                         const std::vector<float*>&, const Data<float>&, double*,
                                         double*);
template void Network<double>::keras_step(int, int, const std::vector<double*>&,
                                          const OptConfig&, const StepScalars&,
                                          OptState<double>&, const std::vector<double*>&,
                                          const Data<double>&, double*, double*);

}  // namespace neuraxis
