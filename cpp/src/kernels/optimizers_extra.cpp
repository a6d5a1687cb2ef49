// Keras's learning-rate schedules and optimizer updates (see optimizers_extra.hpp).
// The formulas and their order are those of keras/src/optimizers/schedules and
// keras/src/backend/torch/optimizers (Keras 3.15): the torch backend is the
// reference the tests run against, so e.g. weight decay multiplies the weights
// by (1 - wd lr) before the update, as its _apply_weight_decay does.
#include "neuraxis/optimizers_extra.hpp"

#include <algorithm>
#include <cmath>

namespace neuraxis {

namespace {
const double kPi = 3.14159265358979323846;

// CosineDecay's decay from `from` over `steps`.
double cosine(double s, double steps, double from, double alpha) {
    const double c = 0.5 * (1.0 + std::cos(kPi * (s / steps)));
    return from * ((1.0 - alpha) * c + alpha);
}
}  // namespace

double scheduled_lr(const OptConfig& o, std::int64_t step) {
    const std::string& k = o.schedule;
    if (k.empty()) return o.learning_rate;
    const std::vector<double>& a = o.schedule_args;
    const double s = double(step);
    auto need = [&](std::size_t n) {
        if (a.size() != n) throw ValueError("schedule '" + k + "' needs " + std::to_string(n) +
                                            " arguments");
    };
    if (k == "exponential" || k == "inverse_time") {  // init, decay_steps, decay_rate, staircase
        need(4);
        double p = s / a[1];
        if (a[3] != 0.0) p = std::floor(p);
        return k == "exponential" ? a[0] * std::pow(a[2], p) : a[0] / (1.0 + a[2] * p);
    }
    if (k == "piecewise") {  // Keras sums indicator * value over the intervals
        const std::vector<double>& b = o.schedule_boundaries;
        const std::vector<double>& v = o.schedule_values;
        if (b.empty() || v.size() != b.size() + 1)
            throw ValueError("piecewise schedule needs len(values) == len(boundaries) + 1");
        double r = 0.0;
        if (s <= b.front()) r += v.front();
        if (s > b.back()) r += v.back();
        for (std::size_t i = 0; i + 1 < b.size(); ++i)
            if (s > b[i] && s <= b[i + 1]) r += v[i + 1];
        return r;
    }
    if (k == "polynomial") {  // init, decay_steps, end, power, cycle
        need(5);
        double steps = a[1], t = s;
        if (a[4] != 0.0)
            steps *= t == 0.0 ? 1.0 : std::ceil(t / a[1]);
        else
            t = std::min(t, steps);
        return (a[0] - a[2]) * std::pow(1.0 - t / steps, a[3]) + a[2];
    }
    if (k == "cosine") {  // init, decay_steps, alpha, warmup_target (NaN: none), warmup_steps
        need(5);
        if (std::isnan(a[3])) return cosine(std::min(s, a[1]), a[1], a[0], a[2]);
        const double t = std::min(s, a[1] + a[4]);
        if (t < a[4]) return (a[3] - a[0]) * (t / a[4]) + a[0];
        return cosine(t - a[4], a[1], a[3], a[2]);
    }
    throw ValueError("unknown learning-rate schedule '" + k + "'");
}

bool needs_keras_step(const OptConfig& o) {
    const std::string& k = o.kind;
    return !(k == "sgd" || k == "adam" || k == "rmsprop") || o.amsgrad || o.centered ||
           o.clipnorm > 0 || o.clipvalue > 0 || o.global_clipnorm > 0 || o.weight_decay != 0 ||
           !o.reg_l1.empty();
}

void check_keras_state(const OptConfig& o, std::size_t m, std::size_t v, std::size_t s,
                       std::size_t params) {
    const std::string& k = o.kind;
    const bool need_v = k == "adam" || k == "adadelta" || k == "adamax" || k == "nadam" ||
                        (k == "rmsprop" && o.momentum > 0);
    const bool need_s = (k == "adam" && o.amsgrad) || (k == "rmsprop" && o.centered);
    if (m != params || (need_v && v != params) || (need_s && s != params))
        throw ValueError("optimizer state does not match the parameters: '" + k + "' needs " +
                         std::to_string(1 + need_v + need_s) + " slot arrays per parameter (" +
                         std::to_string(params) + " parameters; got " + std::to_string(m) +
                         ", " + std::to_string(v) + ", " + std::to_string(s) + ")");
    if (!o.reg_l1.empty() && (o.reg_l1.size() != params || o.reg_l2.size() != params))
        throw ValueError("reg_l1 and reg_l2 need one value per parameter");
    if (!o.no_decay.empty() && o.no_decay.size() != params)
        throw ValueError("no_decay needs one flag per parameter");
}

StepScalars step_scalars(OptConfig& o, double lr) {
    StepScalars s;
    s.lr = lr;
    const double t = double(o.t);
    s.b1p = 1.0 - std::pow(o.beta_1, t);
    s.b2p = 1.0 - std::pow(o.beta_2, t);
    s.alpha = lr * std::sqrt(s.b2p) / s.b1p;
    if (o.kind == "nadam") {  // the momentum schedule mu_t = b1 (1 - 0.5 * 0.96^t)
        s.u_t = o.beta_1 * (1.0 - 0.5 * std::pow(0.96, t));
        s.u_t1 = o.beta_1 * (1.0 - 0.5 * std::pow(0.96, t + 1.0));
        s.up_t = o.u_product * s.u_t;
        s.up_t1 = s.up_t * s.u_t1;
        o.u_product = s.up_t;
    }
    return s;
}

template <class T>
void keras_update(const OptConfig& o, const StepScalars& s, T* p, T* s0, T* s1, T* s2,
                  const T* g, idx n, double gscale, double wd) {
    const T sc = T(gscale), cv = T(o.clipvalue), lr = T(s.lr), eps = T(o.epsilon);
    const bool scaled = gscale != 1.0, clipv = o.clipvalue > 0;
    auto grad = [&](idx i) {
        T gi = g[i];
        if (scaled) gi *= sc;
        if (clipv) gi = std::min(std::max(gi, -cv), cv);
        return gi;
    };
    if (wd != 0) {
        const T keep = T(1.0 - wd * s.lr);
        for (idx i = 0; i < n; ++i) p[i] *= keep;
    }
    const std::string& k = o.kind;
    const T b1 = T(o.beta_1), c1 = T(1 - o.beta_1), b2 = T(o.beta_2), c2 = T(1 - o.beta_2);
    if (k == "sgd") {
        const T mu = T(o.momentum);
        for (idx i = 0; i < n; ++i) {
            const T gi = grad(i);
            if (o.momentum == 0.0) {
                p[i] -= lr * gi;
                continue;
            }
            const T b = s0[i] * mu - lr * gi;
            s0[i] = b;
            p[i] += o.nesterov ? -lr * gi + mu * b : b;
        }
    } else if (k == "adam") {  // AdamW too: the same update after the decay
        const T al = T(s.alpha);
        for (idx i = 0; i < n; ++i) {
            const T gi = grad(i);
            s0[i] = s0[i] * b1 + gi * c1;
            s1[i] = s1[i] * b2 + gi * gi * c2;
            T vi = s1[i];
            if (o.amsgrad) vi = s2[i] = std::max(s2[i], vi);
            p[i] -= s0[i] * al / (std::sqrt(vi) + eps);
        }
    } else if (k == "rmsprop") {  // s0: mean squares, s1: momentum, s2: mean gradient
        const T rho = T(o.rho), cr = T(1 - o.rho), mu = T(o.momentum);
        for (idx i = 0; i < n; ++i) {
            const T gi = grad(i);
            s0[i] = s0[i] * rho + gi * gi * cr;
            T den = s0[i] + eps;
            if (o.centered) {
                s2[i] = s2[i] * rho + gi * cr;
                den -= s2[i] * s2[i];
            }
            const T inc = gi * lr / std::sqrt(den);
            if (o.momentum > 0) {
                s1[i] = s1[i] * mu + inc;
                p[i] -= s1[i];
            } else {
                p[i] -= inc;
            }
        }
    } else if (k == "adagrad") {
        for (idx i = 0; i < n; ++i) {
            const T gi = grad(i);
            s0[i] += gi * gi;
            p[i] -= gi * lr / std::sqrt(s0[i] + eps);
        }
    } else if (k == "adadelta") {  // s0: accumulated gradients, s1: accumulated deltas
        const T rho = T(o.rho), cr = T(1 - o.rho);
        for (idx i = 0; i < n; ++i) {
            const T gi = grad(i);
            s0[i] = s0[i] * rho + gi * gi * cr;
            const T d = -(std::sqrt(s1[i] + eps) * gi / std::sqrt(s0[i] + eps));
            s1[i] = s1[i] * rho + d * d * cr;
            p[i] += d * lr;
        }
    } else if (k == "adamax") {  // s0: m, s1: u (exponentially weighted infinity norm)
        const T b1p = T(s.b1p);
        for (idx i = 0; i < n; ++i) {
            const T gi = grad(i);
            s0[i] = s0[i] * b1 + gi * c1;
            s1[i] = std::max(s1[i] * b2, std::abs(gi));
            p[i] -= s0[i] * lr / ((s1[i] + eps) * b1p);
        }
    } else if (k == "nadam") {
        // The scalar divisions folded into factors (one division per element, as Adam's;
        // ~2.5x faster, within an ulp of dividing each time)
        const T fm = T(s.u_t1 / (1 - s.up_t1)), fg = T((1 - s.u_t) / (1 - s.up_t)),
                fv = T(1 / s.b2p);
        for (idx i = 0; i < n; ++i) {
            const T gi = grad(i);
            s0[i] = s0[i] * b1 + gi * c1;
            s1[i] = s1[i] * b2 + gi * gi * c2;
            const T mh = s0[i] * fm + gi * fg;
            p[i] -= mh * lr / (std::sqrt(s1[i] * fv) + eps);
        }
    } else {
        throw ValueError("unknown optimizer '" + k + "'");
    }
}

template void keras_update<float>(const OptConfig&, const StepScalars&, float*, float*, float*,
                                  float*, const float*, idx, double, double);
template void keras_update<double>(const OptConfig&, const StepScalars&, double*, double*,
                                   double*, double*, const double*, idx, double, double);

}  // namespace neuraxis
