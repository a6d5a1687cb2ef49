#include "neuraxis/network.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace neuraxis {

namespace {

// Counter-based uniform in [0, 1): the dropout mask of (seed, layer, row, col)
// does not depend on how rows are split over threads.
inline double uniform01(std::uint64_t seed, std::uint64_t layer, std::uint64_t row,
                        std::uint64_t col) {
    std::uint64_t z = seed ^ (layer * 0x9E3779B97F4A7C15ULL) ^ (row * 0xD1B54A32D192ED03ULL) ^
                      (col * 0xAEF17502108EF2D9ULL);
    z += 0x9E3779B97F4A7C15ULL;  // splitmix64 finaliser
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return double(z >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace

double dropout_scale(std::uint64_t seed, std::uint64_t layer, std::uint64_t row, std::uint64_t col,
                     double rate) {
    return uniform01(seed, layer, row, col) < rate ? 0.0 : 1.0 / (1.0 - rate);
}

template <class T>
Network<T>::Network(std::vector<LayerSpec> layers, Loss loss, Reduction reduction)
    : layers_(std::move(layers)), loss_(loss), reduction_(reduction) {
    if (layers_.empty()) throw ValueError("a network needs at least one layer");
    for (std::size_t l = 0; l < layers_.size(); ++l) {
        const LayerSpec& s = layers_[l];
        if (s.in <= 0 || s.out <= 0) throw ValueError("layer sizes must be positive");
        if (s.kind == LayerKind::activation && s.in != s.out)
            throw ValueError("an activation layer keeps its width");
        if (!(s.dropout >= 0.0 && s.dropout < 1.0))
            throw ValueError("dropout rate must be in [0, 1), got " + std::to_string(s.dropout));
        if (l > 0 && s.in != layers_[l - 1].out)
            throw ValueError("layer " + std::to_string(l) + " expects " + std::to_string(s.in) +
                             " inputs but the previous layer has " +
                             std::to_string(layers_[l - 1].out) + " outputs");
        if (s.act.kind == Act::softmax && l + 1 < layers_.size() && s.out < 1)
            throw ValueError("softmax needs at least one unit");
        any_dropout_ |= s.dropout > 0.0;
        if (s.kind == LayerKind::dense) {
            pidx_.push_back(int(psize_.size()));
            psize_.push_back(s.in * s.out);
            is_weight_.push_back(1);
            if (s.bias) {
                bidx_.push_back(int(psize_.size()));
                psize_.push_back(s.out);
                is_weight_.push_back(0);
            } else {
                bidx_.push_back(-1);
            }
        } else {
            pidx_.push_back(-1);
            bidx_.push_back(-1);
        }
    }
    const Act out = layers_.back().act.kind;
    if ((loss_ == Loss::softmax_log_loss || loss_ == Loss::logistic_log_loss ||
         loss_ == Loss::squared_error || loss_ == Loss::poisson) &&
        out != loss_output_activation(loss_))
        throw ValueError("the output activation does not match the loss");
    grads_.resize(psize_.size());
    for (std::size_t p = 0; p < psize_.size(); ++p) grads_[p].resize(psize_[p]);
}

template <class T>
void Network<T>::reserve(idx batch) {
    if (batch <= capacity_) return;
    const std::size_t L = layers_.size();
    pre_.assign(L, {});
    outs_.assign(L, {});
    masks_.assign(L, {});
    deltas_.assign(L, {});
    for (std::size_t l = 0; l < L; ++l) {
        const idx w = layers_[l].out;
        pre_[l].resize(batch * w);
        deltas_[l].resize(batch * w);
        if (layers_[l].dropout > 0.0) {
            outs_[l].resize(batch * w);
            masks_[l].resize(batch * w);
        }
    }
    xbuf_.resize(batch * n_in());
    ybuf_.resize(batch * n_out());
    swbuf_.resize(batch);
    capacity_ = batch;
}

template <class T>
void Network<T>::forward(const std::vector<T*>& params, const T* x, idx m,
                         const std::vector<T*>& pre, const std::vector<T*>& outs,
                         const std::vector<T*>& masks, idx row0, std::uint64_t seed,
                         bool* nonfinite) const {
    const T* a = x;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
        const LayerSpec& s = layers_[l];
        bool* check = (l == 0 && nonfinite) ? nonfinite : nullptr;
        if (s.kind == LayerKind::dense) {
            // GEMM, then bias + activation (+ the NaN/inf check) in one pass.
            // A NaN/inf anywhere in a row of X makes that row of X W + b
            // non-finite: checking here lets predict skip a pass over X.
            const int p = pidx_[l];
            dense_act_forward(a, m, s.in, params[p], bidx_[l] < 0 ? nullptr : params[bidx_[l]],
                              s.out, s.act, pre[l], check);
        } else {
            std::memcpy(pre[l], a, sizeof(T) * m * s.out);
            bias_act_forward(s.act, pre[l], static_cast<const T*>(nullptr), m, s.out, check);
        }
        if (!masks.empty() && s.dropout > 0.0) {
            // inverted dropout: keep with probability 1 - rate, scale by 1 / (1 - rate)
            const T keep_scale = T(1.0 / (1.0 - s.dropout));
            for (idx i = 0; i < m; ++i)
                for (idx j = 0; j < s.out; ++j) {
                    const idx e = i * s.out + j;
                    const T mk =
                        uniform01(seed, l, std::uint64_t(row0 + i), std::uint64_t(j)) < s.dropout
                            ? T(0)
                            : keep_scale;
                    masks[l][e] = mk;
                    outs[l][e] = pre[l][e] * mk;
                }
            a = outs[l];
        } else {
            a = pre[l];
        }
    }
}

template <class T>
double Network<T>::sum_sq_weights(const std::vector<T*>& params) const {
    double sq = 0.0;
    for (std::size_t p = 0; p < psize_.size(); ++p)
        if (is_weight_[p])
            for (idx i = 0; i < psize_[p]; ++i) sq += double(params[p][i]) * double(params[p][i]);
    return sq;
}

// Per-thread gradient buffers (threads 1..nt-1) and pointer scratch (all
// threads), sized once so the training loop itself never allocates.
template <class T>
void Network<T>::ensure_thread_grads(int nt) {
    if (int(scratch_.size()) >= nt) return;
    tgrads_.resize(nt - 1);
    for (auto& g : tgrads_) {
        if (!g.empty()) continue;
        g.resize(grads_.size());
        for (std::size_t p = 0; p < grads_.size(); ++p) g[p].resize(grads_[p].size());
    }
    const std::size_t L = layers_.size();
    scratch_.resize(nt);
    for (auto& sc : scratch_) {
        sc.pre.resize(L);
        sc.outs.resize(L);
        sc.masks.resize(L);
        sc.deltas.resize(L);
        sc.G.resize(grads_.size());
    }
}

template <class T>
int Network<T>::threads_for(idx m) const {
    idx macs_per_row = 0;
    for (const auto& s : layers_) macs_per_row += s.in * s.out;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    nt = int(std::min<idx>(nt, std::max<idx>(1, m / 8)));
    if (double(macs_per_row) * double(m) * 3.0 < 3.0e5) nt = 1;
    return nt;
}

// Forward and backward on rows [r0, r1) of a batch (x, y, sw point at the
// batch's first row); this thread's gradients go to G. Returns sum_i w_i l_i
// over its rows; adds sum_i (w_i) metric_i to met.
template <class T>
double Network<T>::rows_pass(const std::vector<T*>& params, const std::vector<T*>& G, const T* x,
                             const T* y, const T* sw, idx r0, idx r1, double scale, bool use_masks,
                             idx row0, std::uint64_t seed, const std::vector<MetricSpec>* metrics,
                             double* met) {
    const std::size_t L = layers_.size();
    const idx k = n_out(), mr = r1 - r0;
    Scratch& sc = scratch_[omp_get_thread_num()];
    std::vector<T*>&pre = sc.pre, &outs = sc.outs, &deltas = sc.deltas;
    const std::vector<T*>& masks = use_masks ? sc.masks : no_masks_;
    for (std::size_t l = 0; l < L; ++l) {
        const idx w = layers_[l].out;
        pre[l] = pre_[l].data() + r0 * w;
        deltas[l] = deltas_[l].data() + r0 * w;
        const bool drop = use_masks && layers_[l].dropout > 0.0;
        outs[l] = drop ? outs_[l].data() + r0 * w : pre[l];
        if (use_masks) sc.masks[l] = drop ? masks_[l].data() + r0 * w : nullptr;
    }
    const T* xr = x + r0 * n_in();
    const T* yr = y + r0 * k;
    const T* swr = sw ? sw + r0 : nullptr;
    double wl = 0.0;
    if (mr > 0) {
        forward(params, xr, mr, pre, outs, masks, row0 + r0, seed, nullptr);
        const T* P = outs[L - 1];
        double w = double(mr);
        if (swr) {
            w = 0.0;
            for (idx i = 0; i < mr; ++i) w += swr[i];
        }
        wl = w > 0 ? loss_value(loss_, P, yr, swr, mr, k) * w : 0.0;
        if (metrics)
            for (std::size_t j = 0; j < metrics->size(); ++j)
                met[j] += metric_sum((*metrics)[j].metric, P, yr,
                                     (*metrics)[j].weighted ? swr : nullptr, mr, k);
        if (canonical() && layers_.back().dropout == 0.0) {  // dZ = c (P - Y) sw scale
            loss_delta(loss_, P, yr, swr, mr, k, scale, deltas[L - 1]);
        } else {  // dP, through dropout and the output activation
            loss_grad_output(loss_, P, yr, swr, mr, k, scale, deltas[L - 1]);
            if (use_masks && layers_[L - 1].dropout > 0.0)
                for (idx i = 0; i < mr * k; ++i) deltas[L - 1][i] *= masks[L - 1][i];
            act_backward(layers_[L - 1].act, pre[L - 1], deltas[L - 1], mr, k);
        }
    }
    for (std::size_t l = L; l-- > 0;) {
        const LayerSpec& s = layers_[l];
        T* dX = l == 0 ? nullptr : deltas[l - 1];
        if (s.kind == LayerKind::dense) {
            const int p = pidx_[l];
            const T* a_in = l == 0 ? xr : outs[l - 1];
            // dW = X_t^T dZ_t, db = colsum dZ_t, dX = dZ_t W^T (no rows: zero grads)
            dense_backward(a_in, mr, s.in, params[p], s.out, deltas[l], dX, G[p],
                           bidx_[l] < 0 ? nullptr : G[bidx_[l]]);
        } else if (dX && mr > 0) {
            std::memcpy(dX, deltas[l], sizeof(T) * mr * s.out);
        }
        if (dX && mr > 0) {
            const LayerSpec& below = layers_[l - 1];
            if (use_masks && below.dropout > 0.0)
                for (idx i = 0; i < mr * below.out; ++i) dX[i] *= masks[l - 1][i];
            act_backward(below.act, pre[l - 1], dX, mr, below.out);
        }
    }
    return wl;
}

template <class T>
const std::vector<T*>& Network<T>::thread_grads(int t, const std::vector<T*>& grads) {
    std::vector<T*>& G = scratch_[t].G;
    for (std::size_t p = 0; p < grads.size(); ++p)
        G[p] = t == 0 ? grads[p] : tgrads_[t - 1][p].data();
    return G;
}
// Full-batch objective and gradient (lbfgs): rows split over threads, the
// partial gradients added in thread order, then the L2 term.
template <class T>
double Network<T>::backprop(const std::vector<T*>& params, const std::vector<T*>& grads,
                            const T* x, const T* y, const T* sw, idx m, double alpha,
                            double sumsq) {
    double sw_sum = double(m);
    if (sw) {
        sw_sum = 0.0;
        for (idx i = 0; i < m; ++i) sw_sum += sw[i];
    }
    const double scale = reduction_ == Reduction::weights ? 1.0 / sw_sum : 1.0 / double(m);
    int nt = threads_for(m);
    ensure_thread_grads(nt);
    std::vector<double> part_loss(nt, 0.0);
    int started = 1;  // OpenMP may start fewer threads than asked
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T_ = omp_get_num_threads();
        if (t == 0) started = T_;
        part_loss[t] = rows_pass(params, thread_grads(t, grads), x, y, sw, m * t / T_,
                                 m * (t + 1) / T_, scale, false, 0, 0, nullptr, nullptr);
    }
    nt = started;
    const T reg = T(alpha / sw_sum);
    for (std::size_t p = 0; p < grads.size(); ++p) {
        const idx sz = psize_[p];
        T* g = grads[p];
        const T* W = params[p];
        const bool add_reg = is_weight_[p] && alpha != 0.0;
#pragma omp parallel for schedule(static) if (sz * nt > kParallelThreshold)
        for (idx i = 0; i < sz; ++i) {
            T acc = g[i];
            for (int t = 1; t < nt; ++t) acc += tgrads_[t - 1][p][i];
            if (add_reg) acc += reg * W[i];  // dW += alpha/sw_sum * W
            g[i] = acc;
        }
    }
    double loss = 0.0;
    for (int t = 0; t < nt; ++t) loss += part_loss[t];
    loss *= reduction_ == Reduction::weights ? (sw_sum > 0 ? 1.0 / sw_sum : 0.0) : 1.0 / double(m);
    if (alpha != 0.0) loss += 0.5 * alpha * sumsq / sw_sum;
    return loss;
}

template <class T>
BatchTotals Network<T>::train_batches(const std::vector<T*>& params, OptConfig& opt,
                                      OptState<T>& state, const T* X, const T* Y, const T* sw,
                                      idx n, const std::int64_t* perm, idx batch, idx first,
                                      idx count, double alpha,
                                      const std::vector<MetricSpec>& metrics, std::uint64_t seed,
                                      const std::function<bool()>& interrupted) {
    if (params.size() != psize_.size()) throw ValueError("wrong number of parameter arrays");
    if (batch < 1) throw ValueError("batch size must be >= 1");
    const bool adam = opt.kind == "adam", sgd = opt.kind == "sgd", rms = opt.kind == "rmsprop";
    if (!adam && !sgd && !rms)
        throw ValueError("unknown optimizer '" + opt.kind + "'; expected adam, sgd or rmsprop");
    if (state.m.size() != params.size() || (adam && state.v.size() != params.size()) ||
        (rms && !state.v.empty() && state.v.size() != params.size()))
        throw ValueError("optimizer state does not match the parameters");
    if (rms && opt.momentum != 0.0 && state.v.empty())
        throw ValueError("RMSprop with momentum needs a momentum buffer per parameter (v)");
    BatchTotals tot;
    const std::size_t nmet = metrics.size();
    tot.metric_sums.assign(nmet, 0.0);
    if (n == 0) return tot;
    ensure_single_threaded_blas();
    batch = std::min(batch, n);
    reserve(batch);
    std::vector<T*> grads(grads_.size());
    for (std::size_t i = 0; i < grads_.size(); ++i) grads[i] = grads_[i].data();
    const idx d = n_in(), k = n_out();
    const idx n_batches = (n + batch - 1) / batch;
    const idx last = count < 0 ? n_batches : std::min(n_batches, first + count);
    double sumsq = alpha != 0.0 ? sum_sq_weights(params) : 0.0;  // kept current by the steps
    const bool use_masks = any_dropout_;
    const int max_nt = threads_for(batch);
    ensure_thread_grads(max_nt);
    std::vector<double> part_loss(max_nt), part_sq(max_nt);
    std::vector<std::vector<double>> part_met(max_nt, std::vector<double>(nmet));

    for (idx b = std::max<idx>(first, 0); b < last; ++b) {
        const idx start = b * batch, m = std::min(batch, n - start);
        const std::int64_t* pb = perm ? perm + start : nullptr;
        const T *xb = perm ? xbuf_.data() : X + start * d;
        const T *yb = perm ? ybuf_.data() : Y + start * k;
        const T* swb = !sw ? nullptr : (perm ? swbuf_.data() : sw + start);
        double sw_sum = double(m);
        if (sw) {
            sw_sum = 0.0;
            for (idx i = 0; i < m; ++i) sw_sum += sw[pb ? pb[i] : start + i];
        }
        const double scale = reduction_ == Reduction::weights ? 1.0 / sw_sum : 1.0 / double(m);
        // The L2 gradient alpha/sw_sum * W is added inside the step (weights only).
        const double reg = alpha != 0.0 ? alpha / sw_sum : 0.0;
        opt.t += 1;
        double lr_t = opt.learning_rate;
        if (adam)
            lr_t = opt.learning_rate * std::sqrt(1.0 - std::pow(opt.beta_2, double(opt.t))) /
                   (1.0 - std::pow(opt.beta_1, double(opt.t)));
        const int nt = std::min(max_nt, threads_for(m));
        int started = 1;

        // One parallel region per batch: each thread gathers and trains on its
        // rows, then (after the barrier) adds up and applies the gradients for
        // its slice of every parameter, in thread order.
#pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num(), T_ = omp_get_num_threads();
            if (t == 0) started = T_;
            const idx r0 = m * t / T_, r1 = m * (t + 1) / T_;
            if (pb)
                for (idx i = r0; i < r1; ++i) {
                    std::memcpy(xbuf_.data() + i * d, X + pb[i] * d, sizeof(T) * d);
                    std::memcpy(ybuf_.data() + i * k, Y + pb[i] * k, sizeof(T) * k);
                    if (sw) swbuf_[i] = sw[pb[i]];
                }
            std::fill(part_met[t].begin(), part_met[t].end(), 0.0);
            part_loss[t] = rows_pass(params, thread_grads(t, grads), xb, yb, swb, r0, r1, scale,
                                     use_masks, start, seed, &metrics, part_met[t].data());
#pragma omp barrier
            double sq = 0.0;
            for (std::size_t p = 0; p < params.size(); ++p) {
                const idx sz = psize_[p], e0 = sz * t / T_, e1 = sz * (t + 1) / T_;
                T* g = grads[p];
                for (int u = 1; u < T_; ++u) {
                    const T* gu = tgrads_[u - 1][p].data();
                    for (idx i = e0; i < e1; ++i) g[i] += gu[i];
                }
                const bool weight = is_weight_[p] != 0;
                const double r = weight ? reg : 0.0;
                const bool want = alpha != 0.0 && weight;
                const idx len = e1 - e0;
                if (len <= 0) continue;
                if (adam)
                    sq += adam_step(params[p] + e0, state.m[p] + e0, state.v[p] + e0, g + e0, len,
                                    lr_t, opt.beta_1, opt.beta_2, opt.epsilon, r, want);
                else if (sgd)
                    sq += sgd_step(params[p] + e0, state.m[p] + e0, g + e0, len, lr_t,
                                   opt.momentum, opt.nesterov, r, want);
                else
                    sq += rmsprop_step(params[p] + e0, state.m[p] + e0,
                                       state.v.empty() ? nullptr : state.v[p] + e0, g + e0, len,
                                       lr_t, opt.rho, opt.epsilon, opt.momentum, r, want);
            }
            part_sq[t] = sq;
        }

        double wl = 0.0, new_sumsq = 0.0;
        for (int t = 0; t < started; ++t) {
            wl += part_loss[t];
            new_sumsq += part_sq[t];
            for (std::size_t j = 0; j < nmet; ++j) tot.metric_sums[j] += part_met[t][j];
        }
        double batch_loss = wl * (reduction_ == Reduction::weights
                                      ? (sw_sum > 0 ? 1.0 / sw_sum : 0.0)
                                      : 1.0 / double(m));
        if (alpha != 0.0) batch_loss += 0.5 * alpha * sumsq / sw_sum;
        sumsq = new_sumsq;
        tot.loss_sum += batch_loss * double(m);
        tot.rows += m;
        tot.weight_sum += sw_sum;
        if (interrupted && b + 1 < last && interrupted()) {
            tot.interrupted = true;
            break;
        }
    }
    return tot;
}

template <class T>
BatchTotals Network<T>::evaluate(const std::vector<T*>& params, const T* X, const T* Y,
                                 const T* sw, idx n, idx batch,
                                 const std::vector<MetricSpec>& metrics) const {
    if (params.size() != psize_.size()) throw ValueError("wrong number of parameter arrays");
    BatchTotals tot;
    tot.metric_sums.assign(metrics.size(), 0.0);
    if (n == 0) return tot;
    batch = std::max<idx>(1, std::min(batch, n));
    std::vector<T> P(batch * n_out());
    const idx d = n_in(), k = n_out();
    for (idx start = 0; start < n; start += batch) {
        const idx m = std::min(batch, n - start);
        predict(params, X + start * d, m, P.data());
        const T* yb = Y + start * k;
        const T* swb = sw ? sw + start : nullptr;
        double w = double(m);
        if (swb) {
            w = 0.0;
            for (idx i = 0; i < m; ++i) w += swb[i];
        }
        const double lsum = loss_value(loss_, P.data(), yb, swb, m, k) * w;
        const double bl = reduction_ == Reduction::weights ? (w > 0 ? lsum / w : 0.0)
                                                           : lsum / double(m);
        tot.loss_sum += bl * double(m);
        tot.rows += m;
        tot.weight_sum += w;
        for (std::size_t j = 0; j < metrics.size(); ++j)
            tot.metric_sums[j] += metric_sum(metrics[j].metric, P.data(), yb,
                                             metrics[j].weighted ? swb : nullptr, m, k);
    }
    return tot;
}

template <class T>
double Network<T>::loss_grad(const std::vector<T*>& params, const std::vector<T*>& grads,
                             const T* X, const T* Y, const T* sw, idx n, double alpha) {
    if (params.size() != psize_.size() || grads.size() != params.size())
        throw ValueError("wrong number of parameter or gradient arrays");
    reserve(std::max<idx>(n, 1));
    ensure_single_threaded_blas();
    const double sumsq = alpha != 0.0 ? sum_sq_weights(params) : 0.0;
    return backprop(params, grads, X, Y, sw, n, alpha, sumsq);
}

template <class T>
bool Network<T>::predict(const std::vector<T*>& params, const T* X, idx n, T* out) const {
    if (params.size() != psize_.size()) throw ValueError("wrong number of parameter arrays");
    const std::size_t L = layers_.size();
    const idx d = n_in(), k = n_out();
    if (n > 1) ensure_single_threaded_blas();
    // Rows split over threads; each runs its rows through every layer in
    // chunks, with its own buffers (so concurrent predict calls are safe).
    auto rows = [&](int t, int T_) {
        const idx r0 = n * t / T_, r1 = n * (t + 1) / T_;
        const idx chunk = std::min<idx>(std::max<idx>(r1 - r0, 1), 512);
        std::vector<std::vector<T>> bufs(L);
        std::vector<T*> acts(L);
        for (std::size_t l = 0; l + 1 < L; ++l) {
            bufs[l].resize(chunk * layers_[l].out);
            acts[l] = bufs[l].data();
        }
        bool nonfinite = false;
        for (idx start = r0; start < r1; start += chunk) {
            const idx m = std::min(chunk, r1 - start);
            acts[L - 1] = out + start * k;  // the last layer writes straight into `out`
            forward(params, X + start * d, m, acts, acts, {}, 0, 0, &nonfinite);
        }
        return int(nonfinite);
    };
    const int nt = threads_for(n);
    if (nt == 1) return rows(0, 1) != 0;
    int bad = 0;
#pragma omp parallel num_threads(nt) reduction(| : bad)
    bad |= rows(omp_get_thread_num(), omp_get_num_threads());
    return bad != 0;
}

template class Network<float>;
template class Network<double>;

}  // namespace neuraxis
