// Network: chains the layers' shapes, lays out their parameters, owns every
// buffer (sized once per batch size), and runs one forward loop and one
// reverse backward loop per block of rows. Training runs ONE parallel region
// per batch: each thread gathers its rows, runs forward + backward into its
// own gradient arrays, then after a barrier adds up the partial gradients
// (fixed thread order) and applies the optimizer to its slice of each
// parameter.
#include "neuraxis/network.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "neuraxis/optimizers_extra.hpp"
#include "neuraxis/threads.hpp"

namespace neuraxis {

namespace {
// sum_i w_i over n rows (n when there are no weights).
template <class T>
double weight_sum(const T* sw, idx n) {
    if (!sw) return double(n);
    double w = 0.0;
    for (idx i = 0; i < n; ++i) w += sw[i];
    return w;
}
}  // namespace

template <class T>
Network<T>::Network(Shape input, const std::vector<Config>& configs, Loss loss,
                    Reduction reduction)
    : input_(std::move(input)), loss_(loss), reduction_(reduction) {
    if (input_.empty()) throw ValueError("the input shape needs at least one axis");
    for (idx d : input_)
        if (d < 1) throw ValueError("input shape " + shape_str(input_) + " must be positive");
    if (configs.empty()) throw ValueError("a network needs at least one layer");
    Shape shape = input_;
    for (std::size_t l = 0; l < configs.size(); ++l) {
        layers_.push_back(make_layer<T>(configs[l], shape, int(l)));
        shape = layers_.back()->out_shape();
    }
    // Only reshaping layers: the output needs a buffer of its own.
    const auto all_alias = [&] {
        for (auto& la : layers_)
            if (!la->aliases_input()) return false;
        return true;
    };
    if (all_alias())
        layers_.push_back(make_layer<T>(
            Config("output", {{"kind", std::string("activation")},
                              {"activation", std::string("identity")}}),
            shape, int(layers_.size())));

    const int L = int(layers_.size());
    lowest_trained_ = L;
    first_compute_ = -1;
    for (int l = 0; l < L; ++l) {
        const Layer<T>& la = *layers_[l];
        owner_.push_back(la.aliases_input() ? (l ? owner_[l - 1] : -1) : l);
        if (first_compute_ < 0 && !la.aliases_input()) first_compute_ = l;
        pfirst_.push_back(int(pspec_.size()));
        const std::vector<ParamSpec> ps = la.params();
        for (std::size_t j = 0; j < ps.size(); ++j) {
            const ParamSpec& p = ps[j];
            pspec_.push_back(p);
            psize_.push_back(numel(p.shape));
            player_.push_back(l);
            plocal_.push_back(int(j));
            sliced_.push_back(p.trainable && la.grads_by_slice());
            if (p.trainable) lowest_trained_ = std::min(lowest_trained_, l);
        }
        cost_per_row_ += la.macs_per_row();
        coupled_ = coupled_ || la.batch_doubles() > 0;
        if (la.reads_mask() && la.reads_mask() != mask_T_)
            throw ValueError("layer " + std::to_string(l) + " reads a step mask of " +
                             std::to_string(la.reads_mask()) + " steps, but " +
                             (mask_T_ ? "the mask before it has " + std::to_string(mask_T_)
                                      : std::string("no layer before it makes one")));
        if (la.mask_steps()) mask_T_ = la.mask_steps();
    }
    pfirst_.push_back(int(pspec_.size()));

    {
        const Layer<T>& first = *layers_[first_compute_];
        const int p0 = pfirst_[first_compute_];
        if (first.forward_by_slice() && p0 < pfirst_[first_compute_ + 1] && sliced_[p0])
            sliced_first_ = first_compute_;
    }
    // A layer right after a computing one may take over its activation's derivative.
    dz_from_next_.assign(L, 0);
    for (int l = 1; l < L; ++l) {
        const Layer<T>& below = *layers_[l - 1];
        const Activation* a = below.output_activation();
        if (below.aliases_input() || !a || a->kind == Act::identity || a->kind == Act::softmax ||
            a->kind == Act::step)
            continue;
        if (layers_[l]->absorb_input_activation(*a)) dz_from_next_[l - 1] = 1;
    }
    const int out = owner_[L - 1];
    const Activation* act = layers_[out]->output_activation();
    const Act want = loss_output_activation(loss_);
    if (act && act->kind == want) fused_layer_ = out;  // dZ = c (P - Y) sw scale
    if ((loss_ == Loss::softmax_log_loss || loss_ == Loss::logistic_log_loss ||
         loss_ == Loss::squared_error || loss_ == Loss::poisson) &&
        fused_layer_ < 0)
        throw ValueError("the output activation does not match the loss");
    grads_.resize(psize_.size());
    for (std::size_t p = 0; p < psize_.size(); ++p) grads_[p].resize(psize_[p]);
    group_ = output_shape().back();
    const idx positions = n_out() / group_;
    // categorical cross-entropy sums over the classes (the last axis): per position,
    // then the mean over positions. The other losses average every output already.
    if (loss_ == Loss::categorical_crossentropy && positions > 1)
        loss_norm_ = 1.0 / double(positions);
}

// sum_i w_i * metric_i over n rows; a metric over classes (accuracy) is taken per
// position of the last axis and averaged over the row's positions.
template <class T>
double Network<T>::metric_value(const MetricSpec& m, const T* P, const T* Y, const T* sw,
                                idx n) const {
    const idx k = n_out(), positions = k / group_;
    const T* w = m.weighted ? sw : nullptr;
    if ((m.metric != Metric::categorical_accuracy &&
         m.metric != Metric::top_k_categorical_accuracy) || positions == 1)
        return metric_sum(m, P, Y, w, n, k);
    if (!w) return metric_sum(m, P, Y, static_cast<const T*>(nullptr), n * positions,
                              group_) / double(positions);
    double s = 0.0;
    for (idx i = 0; i < n; ++i)
        s += double(w[i]) * metric_sum(m, P + i * k, Y + i * k,
                                       static_cast<const T*>(nullptr), positions, group_);
    return s / double(positions);
}

template <class T>
void Network<T>::set_loss_mask(bool on) {
    if (on && (mask_T_ == 0 || n_out() / group_ != mask_T_))
        throw ValueError("a masked loss needs one output position per step of the mask (" +
                         std::to_string(mask_T_) + " steps, output " + shape_str(output_shape()) +
                         ")");
    if (on != loss_mask_) capacity_ = 0;  // reserve() sizes the position weights
    loss_mask_ = on;
}

template <class T>
std::pair<double, double> Network<T>::position_weights(const std::uint8_t* mask, const T* sw,
                                                       idx n, T* pm, T* pw) const {
    double cm = 0.0, cw = 0.0;
    for (idx i = 0; i < n; ++i)
        for (idx t = 0; t < mask_T_; ++t) {
            const idx j = i * mask_T_ + t;
            pm[j] = mask[j] ? T(1) : T(0);
            cm += double(pm[j]);
            if (sw) {
                pw[j] = sw[i] * pm[j];
                cw += double(pw[j]);
            }
        }
    return {cm, sw ? cw : cm};
}

template <class T>
double Network<T>::masked_loss_sum(const T* P, const T* Y, const T* pw, idx n) const {
    const idx np = n * mask_T_;
    return loss_value(loss_, P, Y, pw, np, group_) * weight_sum(pw, np);
}

// Keras's Mean over the real positions: each position weighs (sw_i) m_it / positions,
// so a row's share adds up to its mean over positions, as without a mask.
template <class T>
void Network<T>::masked_metrics(const std::vector<MetricSpec>& metrics, const T* P, const T* Y,
                                const T* pm, const T* pw, idx n, double* met) const {
    for (const MetricSpec& m : metrics)
        if (!m.streaming())
            met[m.offset] += metric_sum(m, P, Y, m.weighted ? pw : pm, n * mask_T_, group_) /
                             double(mask_T_);
}

// Every metric's sums over n rows into met: a per-row metric's one slot, or a streaming
// one's counts (which see every position: Keras's confusion metrics ignore the mask).
template <class T>
void Network<T>::add_metrics(const std::vector<MetricSpec>& metrics, const T* P, const T* Y,
                             const T* sw, idx n, bool masked, double* met) const {
    for (const MetricSpec& m : metrics) {
        if (m.streaming())
            stream_add(m, P, Y, m.weighted ? sw : static_cast<const T*>(nullptr), n, group_,
                       n_out() / group_, met + m.offset);
        else if (!masked)
            met[m.offset] += metric_value(m, P, Y, sw, n);
    }
}

// The threading rule's input: rows of `passes` x the forward cost each
// (training runs forward + backward, ~3 forward passes).
template <class T>
int Network<T>::threads_for_rows(idx rows, double passes) const {
    return threads_for(passes * cost_per_row_, rows, 8);
}

template <class T>
void Network<T>::reserve(idx batch) {
    if (batch <= capacity_) return;
    const std::size_t L = layers_.size();
    acts_.assign(L, {});
    deltas_.assign(L, {});
    saved_.assign(L, {});
    work_bytes_ = 0;
    for (std::size_t l = 0; l < L; ++l) {
        const Layer<T>& la = *layers_[l];
        work_bytes_ = std::max(work_bytes_, la.work_bytes(batch));
        if (la.aliases_input()) continue;
        acts_[l].resize(batch * la.out_size());
        if (int(l) >= lowest_trained_) deltas_[l].resize(batch * la.out_size());
        saved_[l].resize(batch * la.saved_bytes_per_row());
    }
    for (auto& w : work_) w.assign(work_bytes_, std::byte{0});
    if (sliced_first_ >= 0)
        for (auto& b : part_) b.resize(batch * layers_[sliced_first_]->out_size());
    maskbuf_.resize(batch * mask_T_);
    if (loss_mask_) {
        pmbuf_.resize(batch * mask_T_);
        pwbuf_.resize(batch * mask_T_);
    }
    xbuf_.resize(batch * n_in());
    ybuf_.resize(batch * n_out());
    swbuf_.resize(batch);
    lbuf_.resize(batch);
    capacity_ = batch;
}

// Per-thread gradient arrays (threads 1..nt-1), scratch and pointer lists
// (all threads), sized once so the training loop never allocates.
template <class T>
void Network<T>::ensure_threads(int nt) {
    if (int(scratch_.size()) >= nt) return;
    tgrads_.resize(nt - 1);
    for (auto& g : tgrads_) {
        if (!g.empty()) continue;
        g.resize(grads_.size());
        for (std::size_t p = 0; p < grads_.size(); ++p)
            if (pspec_[p].trainable) g[p].resize(grads_[p].size());
    }
    work_.resize(nt);
    for (auto& w : work_) w.resize(work_bytes_);
    idx tile = kTileElems;
    for (std::size_t p = 0; p < psize_.size(); ++p)
        if (sliced_[p])
            tile = std::max(tile, layers_[player_[p]]->grad_granularity(plocal_[p]));
    tile_.resize(nt);
    for (auto& b : tile_) b.resize(tile);
    part_.resize(nt);
    if (sliced_first_ >= 0)
        for (auto& b : part_) b.resize(capacity_ * layers_[sliced_first_]->out_size());
    const std::size_t L = layers_.size();
    scratch_.resize(nt);
    vcount_.resize(nt);
    for (auto& sc : scratch_) {
        sc.outs.resize(L);
        sc.deltas.resize(L);
        sc.saved.resize(L);
        sc.G.resize(grads_.size());
        sc.parts.resize(nt);
        sc.sync.resize(L);
    }
    bstate_.resize(L);
    bparts_.resize(L);
    for (std::size_t l = 0; l < L; ++l) {
        const idx nd = layers_[l]->batch_doubles();
        if (nd == 0) continue;
        bstate_[l].resize(nt);
        bparts_[l].resize(nt);
        for (int t = 0; t < nt; ++t) {
            bstate_[l][t].resize(nd);
            bparts_[l][t] = bstate_[l][t].data();
        }
    }
}

template <class T>
void Network<T>::set_thread_sync(int t, int nt) {
    std::vector<Sync>& sync = scratch_[t].sync;
    for (std::size_t l = 0; l < sync.size(); ++l)
        sync[l] = Sync{t, nt, bparts_[l].empty() ? nullptr : bparts_[l].data()};
}

// A barrier of the innermost parallel region (orphaned: the layer calling it
// runs inside the batch's region).
void Sync::barrier() const {
    if (nt > 1) {
#pragma omp barrier
    }
}

// Thread t's gradient arrays: null for frozen parameters, and in training for
// those whose gradients are computed by slices after the rows are done.
template <class T>
void Network<T>::set_thread_grads(int t, const std::vector<T*>& grads, bool training) {
    std::vector<T*>& G = scratch_[t].G;
    for (std::size_t p = 0; p < grads.size(); ++p)
        G[p] = !pspec_[p].trainable || (training && sliced_[p]) ? nullptr
               : t == 0                                         ? grads[p]
                                                                : tgrads_[t - 1][p].data();
}

namespace {
template <class T>
double step(const OptConfig& opt, OptState<T>& st, std::size_t p, T* w, const T* g, idx e0,
            idx len, double lr_t, double reg, bool want) {
    if (opt.kind == "adam")
        return adam_step(w + e0, st.m[p] + e0, st.v[p] + e0, g, len, lr_t, opt.beta_1, opt.beta_2,
                         opt.epsilon, reg, want);
    if (opt.kind == "sgd")
        return sgd_step(w + e0, st.m[p] + e0, g, len, lr_t, opt.momentum, opt.nesterov, reg, want);
    return rmsprop_step(w + e0, st.m[p] + e0, st.v.empty() ? nullptr : st.v[p] + e0, g, len, lr_t,
                        opt.rho, opt.epsilon, opt.momentum, reg, want);
}
}  // namespace

// Thread t's share of parameter p: by slices, the gradient of a tile over all
// rows then the optimizer on it while it is in cache; else the partial
// gradients of every thread added in thread order, then the optimizer.
template <class T>
double Network<T>::step_param(int t, int T_, std::size_t p, const std::vector<T*>& params,
                              OptConfig& opt, OptState<T>& state, const std::vector<T*>& grads,
                              const Data<T>& b, double lr_t, double reg, bool want) {
    const idx sz = psize_[p];
    if (!sliced_[p]) {
        const idx e0 = sz * t / T_, e1 = sz * (t + 1) / T_;
        if (e1 <= e0) return 0.0;
        T* g = grads[p];
        for (int u = 1; u < T_; ++u) {
            const T* gu = tgrads_[u - 1][p].data();
            for (idx i = e0; i < e1; ++i) g[i] += gu[i];
        }
        return step(opt, state, p, params[p], g + e0, e0, e1 - e0, lr_t, reg, want);
    }
    const int l = player_[p];
    const Layer<T>& la = *layers_[l];
    const idx gran = la.grad_granularity(plocal_[p]), units = sz / gran;
    const idx u0 = units * t / T_, u1 = units * (t + 1) / T_;
    const idx per_tile = std::max<idx>(1, idx(tile_[t].size()) / gran);
    const int below = l ? owner_[l - 1] : -1;
    const T* x = below < 0 ? b.X : acts_[below].data();
    const T* dz = deltas_[l].data();
    double sq = 0.0;
    for (idx a = u0; a < u1; a += per_tile) {
        const idx e0 = a * gran, e1 = std::min(u1, a + per_tile) * gran;
        la.param_grad(plocal_[p], b.n, x, dz, e0, e1, tile_[t].data());
        sq += step(opt, state, p, params[p], tile_[t].data(), e0, e1 - e0, lr_t, reg, want);
    }
    return sq;
}

// One forward loop: layer l reads outs[l-1] (x for the first) and writes outs[l];
// a layer that aliases its input has outs[l] == outs[l-1] and does nothing.
template <class T>
void Network<T>::forward(const std::vector<T*>& params, const Rows& r, const T* x,
                         const std::vector<T*>& outs, const std::vector<std::byte*>& saved,
                         bool* nonfinite, const std::vector<Sync>* sync,
                         std::size_t from) const {
    Rows rl = r;
    for (std::size_t l = from; l < layers_.size(); ++l) {
        const Layer<T>& la = *layers_[l];
        if (la.aliases_input()) continue;
        rl.nonfinite = int(l) == first_compute_ ? nonfinite : nullptr;
        rl.sync = sync && (*sync)[l].parts ? &(*sync)[l] : nullptr;
        la.forward(rl, params.data() + pfirst_[l], l ? outs[l - 1] : x, outs[l], saved[l]);
    }
}

template <class T>
double Network<T>::rows_pass(int t, const std::vector<T*>& params, const Data<T>& b, idx r0,
                             idx r1, double scale, bool training, idx row0, std::uint64_t seed,
                             const std::vector<MetricSpec>* metrics, double* met,
                             std::size_t from) {
    const int L = int(layers_.size());
    const idx k = n_out(), mr = r1 - r0;
    Scratch& sc = scratch_[t];
    // A masked output's loss divides by the batch's real positions: every thread
    // counts its rows', then all meet at a barrier (training only: one batch, one region).
    const bool masked = loss_mask_ && training;
    const auto batch_positions = [&](std::pair<double, double> mine) {
        vcount_[t] = mine;
#pragma omp barrier
        double all = 0.0;
        for (int u = 0; u < omp_get_num_threads(); ++u) all += vcount_[u].first;
        return all;
    };
    if (mr <= 0) {  // no rows: zero gradients (never with coupled layers: nt <= rows)
        for (std::size_t p = 0; p < sc.G.size(); ++p)
            if (sc.G[p]) std::fill(sc.G[p], sc.G[p] + psize_[p], T(0));
        if (masked) batch_positions({0.0, 0.0});
        return 0.0;
    }
    const T* x = b.X + r0 * n_in();
    for (int l = 0; l < L; ++l) {
        const int o = owner_[l];
        const idx w = layers_[l]->out_size();
        sc.outs[l] = o < 0 ? const_cast<T*>(x) : acts_[o].data() + r0 * w;
        sc.deltas[l] = (o < 0 || deltas_[o].empty()) ? nullptr : deltas_[o].data() + r0 * w;
        sc.saved[l] = saved_[l].empty() ? nullptr
                                        : saved_[l].data() + r0 * layers_[l]->saved_bytes_per_row();
    }
    Rows r;
    r.m = mr;
    r.row0 = row0 + r0;
    r.seed = seed;
    r.training = training;
    r.lengths = b.lengths ? b.lengths + r0 : nullptr;
    r.mask = mask_T_ ? maskbuf_.data() + r0 * mask_T_ : nullptr;
    r.work = work_[t].data();
    forward(params, r, x, sc.outs, sc.saved, nullptr, &sc.sync, from);

    const T* P = sc.outs[L - 1];
    const T* y = b.Y + r0 * k;
    const T* sw = b.sw ? b.sw + r0 : nullptr;
    double wl = 0.0;
    // Per row, or (masked output) per position with weights pw, group_ outputs each.
    const T* lw = sw;
    idx ln = mr, lk = k;
    double lscale = scale * loss_norm_;
    if (masked) {
        T* pm = pmbuf_.data() + r0 * mask_T_;
        T* pw = sw ? pwbuf_.data() + r0 * mask_T_ : pm;
        const double valid = batch_positions(position_weights(r.mask, sw, mr, pm, pw));
        // wl / batch rows = the batch's loss, sum w_it loss_it / valid (0 when none is real)
        lscale = valid > 0 ? 1.0 / valid : 0.0;
        wl = masked_loss_sum(P, y, pw, mr) * lscale * double(b.n);
        if (metrics) masked_metrics(*metrics, P, y, pm, pw, mr, met);
        if (metrics) add_metrics(*metrics, P, y, sw, mr, true, met);
        lw = pw;
        ln = mr * mask_T_;
        lk = group_;
    } else {
        const double w = weight_sum(sw, mr);
        wl = w != 0 ? loss_value(loss_, P, y, sw, mr, k) * w * loss_norm_ : 0.0;
        if (metrics) add_metrics(*metrics, P, y, sw, mr, false, met);
    }
    if (lowest_trained_ >= L) return wl;  // nothing to train

    // The loss's gradient: dL/dz of the fused layer, or dL/dP for the general chain.
    T* dP = sc.deltas[L - 1];
    if (fused_layer_ >= 0)
        loss_delta(loss_, P, y, lw, ln, lk, lscale, dP);
    else
        loss_grad_output(loss_, P, y, lw, ln, lk, lscale, dP);
    for (int l = L - 1; l >= lowest_trained_; --l) {
        const Layer<T>& la = *layers_[l];
        if (la.aliases_input()) continue;  // its delta is its input's
        Rows rb = r;
        rb.dz = l == fused_layer_ || dz_from_next_[l];
        rb.sync = sc.sync[l].parts ? &sc.sync[l] : nullptr;
        T* dx = l > lowest_trained_ ? sc.deltas[l - 1] : nullptr;
        la.backward(rb, params.data() + pfirst_[l], l ? sc.outs[l - 1] : x, sc.outs[l],
                    sc.saved[l], sc.deltas[l], dx, sc.G.data() + pfirst_[l]);
    }
    return wl;
}

template <class T>
double Network<T>::sum_sq_weights(const std::vector<T*>& params, bool frozen_only) const {
    double sq = 0.0;
    for (std::size_t p = 0; p < psize_.size(); ++p)
        if (pspec_[p].decay && (!frozen_only || !pspec_[p].trainable))
            for (idx i = 0; i < psize_[p]; ++i) sq += double(params[p][i]) * double(params[p][i]);
    return sq;
}

// Full-batch objective and gradient (lbfgs): rows split over threads, the
// partial gradients added in thread order, then the L2 term.
template <class T>
double Network<T>::backprop(const std::vector<T*>& params, const std::vector<T*>& grads,
                            const Data<T>& d, double alpha, double sumsq) {
    const idx m = d.n;
    const double sw_sum = weight_sum(d.sw, m);
    const double scale = reduction_ == Reduction::weights ? 1.0 / sw_sum : 1.0 / double(m);
    int nt = threads_for_rows(m, 3.0);
    ensure_threads(nt);
    std::vector<double> part_loss(nt, 0.0);
    int started = 1;  // OpenMP may start fewer threads than asked
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T_ = omp_get_num_threads();
        if (t == 0) started = T_;
        set_thread_grads(t, grads, false);
        set_thread_sync(t, T_);
        part_loss[t] = rows_pass(t, params, d, m * t / T_, m * (t + 1) / T_, scale, false, 0, 0,
                                 nullptr, nullptr);
    }
    nt = started;
    const T reg = T(alpha / sw_sum);
    for (std::size_t p = 0; p < grads.size(); ++p) {
        const idx sz = psize_[p];
        T* g = grads[p];
        if (!pspec_[p].trainable) {
            std::fill(g, g + sz, T(0));
            continue;
        }
        const T* W = params[p];
        const bool add_reg = pspec_[p].decay && alpha != 0.0;
        parallel_for(sz, kElementCost * nt, [&](idx i0, idx i1) {
            for (idx i = i0; i < i1; ++i) {
                T acc = g[i];
                for (int t = 1; t < nt; ++t) acc += tgrads_[t - 1][p][i];
                if (add_reg) acc += reg * W[i];  // dW += alpha/sw_sum * W
                g[i] = acc;
            }
        });
    }
    double loss = 0.0;
    for (int t = 0; t < nt; ++t) loss += part_loss[t];
    loss *= reduction_ == Reduction::weights ? (sw_sum != 0 ? 1.0 / sw_sum : 0.0) : 1.0 / double(m);
    if (alpha != 0.0) loss += 0.5 * alpha * sumsq / sw_sum;
    return loss;
}

template <class T>
BatchTotals Network<T>::train_batches(const std::vector<T*>& params, OptConfig& opt,
                                      OptState<T>& state, const Data<T>& d,
                                      const std::int64_t* perm, idx batch, idx first, idx count,
                                      double alpha, const std::vector<MetricSpec>& metrics,
                                      std::uint64_t seed,
                                      const std::function<bool()>& interrupted) {
    if (params.size() != psize_.size()) throw ValueError("wrong number of parameter arrays");
    if (batch < 1) throw ValueError("batch size must be >= 1");
    check_optimizer(opt.kind);
    const bool adam = opt.kind == "adam", rms = opt.kind == "rmsprop";
    if (state.m.size() != params.size() || (adam && state.v.size() != params.size()) ||
        (rms && !state.v.empty() && state.v.size() != params.size()))
        throw ValueError("optimizer state does not match the parameters");
    if (rms && opt.momentum != 0.0 && state.v.empty())
        throw ValueError("RMSprop with momentum needs a momentum buffer per parameter (v)");
    const bool keras = needs_keras_step(opt);
    if (keras) check_keras_state(opt, state.m.size(), state.v.size(), state.s.size(),
                                 params.size());
    BatchTotals tot;
    const std::size_t nmet = metric_slots(metrics);
    tot.metric_sums.assign(nmet, 0.0);
    const idx n = d.n;
    if (n == 0) return tot;
    ensure_single_threaded_blas();
    batch = std::min(batch, n);
    reserve(batch);
    std::vector<T*> grads(grads_.size());
    for (std::size_t i = 0; i < grads_.size(); ++i) grads[i] = grads_[i].data();
    const idx din = n_in(), k = n_out();
    const idx n_batches = (n + batch - 1) / batch;
    const idx last = count < 0 ? n_batches : std::min(n_batches, first + count);
    // The L2 penalty's ||W||^2: the steps keep the trained part current.
    const double frozen_sq = alpha != 0.0 ? sum_sq_weights(params, true) : 0.0;
    double sumsq = alpha != 0.0 ? sum_sq_weights(params, false) : 0.0;
    const int max_nt = threads_for_rows(batch, 3.0);
    ensure_threads(max_nt);
    std::vector<double> part_loss(max_nt), part_sq(max_nt);
    std::vector<std::vector<double>> part_met(max_nt, std::vector<double>(nmet));
    std::vector<double> ksq(keras ? max_nt * params.size() : 0), kpen(keras ? max_nt : 0);

    for (idx b = std::max<idx>(first, 0); b < last; ++b) {
        const idx start = b * batch, m = std::min(batch, n - start);
        const std::int64_t* pb = perm ? perm + start : nullptr;
        Data<T> bd;  // this batch's rows, gathered by perm or in place
        bd.n = m;
        bd.X = pb ? xbuf_.data() : d.X + start * din;
        bd.Y = pb ? ybuf_.data() : d.Y + start * k;
        bd.sw = !d.sw ? nullptr : (pb ? swbuf_.data() : d.sw + start);
        bd.lengths = !d.lengths ? nullptr : (pb ? lbuf_.data() : d.lengths + start);
        double sw_sum = double(m);
        if (d.sw) {
            sw_sum = 0.0;
            for (idx i = 0; i < m; ++i) sw_sum += d.sw[pb ? pb[i] : start + i];
        }
        const double scale = reduction_ == Reduction::weights ? 1.0 / sw_sum : 1.0 / double(m);
        // The L2 gradient alpha/sw_sum * W is added inside the step (kernels only).
        const double reg = alpha != 0.0 ? alpha / sw_sum : 0.0;
        const double lr = scheduled_lr(opt, opt.t);  // Keras: at iterations before the step
        opt.last_lr = lr;
        opt.t += 1;
        double lr_t = lr;
        if (adam)
            lr_t = lr * std::sqrt(1.0 - std::pow(opt.beta_2, double(opt.t))) /
                   (1.0 - std::pow(opt.beta_1, double(opt.t)));
        StepScalars ks;
        if (keras) ks = step_scalars(opt, lr);
        const int nt = std::min(max_nt, threads_for_rows(m, 3.0));
        int started = 1;

#pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num(), T_ = omp_get_num_threads();
            if (t == 0) started = T_;
            const idx r0 = m * t / T_, r1 = m * (t + 1) / T_;
            // The first layer by feature slices (see Layer::forward_by_slice): this
            // thread gathers its slice of every row's features, multiplies it by its
            // rows of W, and after a barrier sums the parts for its own rows.
            // Worth it for a few rows per thread (the Keras lecture MLP, 16: ~4% faster);
            // with many (scikit-learn's batches of 200: 100) the product dominates and
            // the one over all features is ~5% faster (both measured on this machine).
            const bool by_slice = sliced_first_ >= 0 && T_ > 1 && m <= kSlicedFirstRows * T_;
            const idx c0 = din * t / T_, c1 = din * (t + 1) / T_;
            if (pb)
                for (idx i = 0; i < m; ++i) {
                    if (by_slice)
                        std::memcpy(xbuf_.data() + i * din + c0, d.X + pb[i] * din + c0,
                                    sizeof(T) * (c1 - c0));
                    if (i < r0 || i >= r1) continue;
                    if (!by_slice)
                        std::memcpy(xbuf_.data() + i * din, d.X + pb[i] * din, sizeof(T) * din);
                    std::memcpy(ybuf_.data() + i * k, d.Y + pb[i] * k, sizeof(T) * k);
                    if (d.sw) swbuf_[i] = d.sw[pb[i]];
                    if (d.lengths) lbuf_[i] = d.lengths[pb[i]];
                }
            std::size_t from = 0;
            if (by_slice) {
                const int l0 = sliced_first_;
                const Layer<T>& first = *layers_[l0];
                const T* const* W0 = params.data() + pfirst_[l0];
                first.forward_part(m, W0, bd.X, din, c0, c1, part_[t].data());
#pragma omp barrier
                const idx w = first.out_size();
                std::vector<const T*>& parts = scratch_[t].parts;
                for (int u = 0; u < T_; ++u) parts[u] = part_[u].data() + r0 * w;
                Rows rr;
                rr.m = r1 - r0;
                if (rr.m > 0)
                    first.forward_finish(rr, W0, parts.data(), T_,
                                         acts_[l0].data() + r0 * w);
                from = std::size_t(l0) + 1;
            }
            std::fill(part_met[t].begin(), part_met[t].end(), 0.0);
            set_thread_grads(t, grads, true);
            set_thread_sync(t, T_);
            part_loss[t] = rows_pass(t, params, bd, r0, r1, scale, true, start, seed, &metrics,
                                     part_met[t].data(), from);
#pragma omp barrier
            double sq = 0.0;
            if (keras)
                keras_step(t, T_, params, opt, ks, state, grads, bd, ksq.data(), kpen.data());
            else
            for (std::size_t p = 0; p < params.size(); ++p) {
                if (!pspec_[p].trainable) continue;  // frozen: weights and state untouched
                const bool decay = pspec_[p].decay;
                sq += step_param(t, T_, p, params, opt, state, grads, bd, lr_t,
                                 decay ? reg : 0.0, alpha != 0.0 && decay);
            }
            part_sq[t] = sq;
        }

        if (coupled_)  // the batch statistics move the moving ones, once per batch
            for (std::size_t l = 0; l < layers_.size(); ++l)
                if (!bparts_[l].empty())
                    layers_[l]->end_batch(params.data() + pfirst_[l], bparts_[l].data(), started);
        double wl = 0.0, new_sumsq = frozen_sq;
        for (int t = 0; t < started; ++t) {
            wl += part_loss[t];
            new_sumsq += part_sq[t];
            for (std::size_t j = 0; j < nmet; ++j) tot.metric_sums[j] += part_met[t][j];
            if (loss_mask_) {
                tot.metric_rows += vcount_[t].first / double(mask_T_);
                tot.metric_weight += vcount_[t].second / double(mask_T_);
            }
        }
        if (!loss_mask_) {
            tot.metric_rows += double(m);
            tot.metric_weight += sw_sum;
        }
        double batch_loss = wl * (reduction_ == Reduction::weights
                                      ? (sw_sum != 0 ? 1.0 / sw_sum : 0.0)
                                      : 1.0 / double(m));
        if (alpha != 0.0) batch_loss += 0.5 * alpha * sumsq / sw_sum;
        if (keras)  // Keras adds the layers' penalties to the batch's loss
            for (int t = 0; t < started; ++t) batch_loss += kpen[t];
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
BatchTotals Network<T>::evaluate(const std::vector<T*>& params, const Data<T>& d, idx batch,
                                 const std::vector<MetricSpec>& metrics) const {
    if (params.size() != psize_.size()) throw ValueError("wrong number of parameter arrays");
    BatchTotals tot;
    tot.metric_sums.assign(metric_slots(metrics), 0.0);
    const idx n = d.n;
    if (n == 0) return tot;
    batch = std::max<idx>(1, std::min(batch, n));
    std::vector<T> P(batch * n_out());
    const idx din = n_in(), k = n_out();
    const idx np = loss_mask_ ? batch * mask_T_ : 0;
    std::vector<std::uint8_t> M(np);
    std::vector<T> pm(np), pw(d.sw ? np : 0);
    for (idx start = 0; start < n; start += batch) {
        const idx m = std::min(batch, n - start);
        predict(params, d.X + start * din, d.lengths ? d.lengths + start : nullptr, m, P.data(),
                false, 0, loss_mask_ ? M.data() : nullptr);
        const T* yb = d.Y + start * k;
        const T* swb = d.sw ? d.sw + start : nullptr;
        const double w = weight_sum(swb, m);
        tot.rows += m;
        tot.weight_sum += w;
        if (loss_mask_) {
            T* pwb = swb ? pw.data() : pm.data();
            const auto [valid, wvalid] = position_weights(M.data(), swb, m, pm.data(), pwb);
            tot.loss_sum += valid > 0 ? masked_loss_sum(P.data(), yb, pwb, m) / valid * double(m)
                                      : 0.0;
            masked_metrics(metrics, P.data(), yb, pm.data(), pwb, m, tot.metric_sums.data());
            add_metrics(metrics, P.data(), yb, swb, m, true, tot.metric_sums.data());
            tot.metric_rows += valid / double(mask_T_);
            tot.metric_weight += wvalid / double(mask_T_);
            continue;
        }
        const double lsum = loss_value(loss_, P.data(), yb, swb, m, k) * w * loss_norm_;
        const double bl = reduction_ == Reduction::weights ? (w != 0 ? lsum / w : 0.0)
                                                           : lsum / double(m);
        tot.loss_sum += bl * double(m);
        tot.metric_rows += double(m);
        tot.metric_weight += w;
        add_metrics(metrics, P.data(), yb, swb, m, false, tot.metric_sums.data());
    }
    return tot;
}

template <class T>
double Network<T>::loss_grad(const std::vector<T*>& params, const std::vector<T*>& grads,
                             const Data<T>& d, double alpha) {
    if (params.size() != psize_.size() || grads.size() != params.size())
        throw ValueError("wrong number of parameter or gradient arrays");
    reserve(std::max<idx>(d.n, 1));
    ensure_single_threaded_blas();
    const double sumsq = alpha != 0.0 ? sum_sq_weights(params, false) : 0.0;
    return backprop(params, grads, d, alpha, sumsq);
}

template <class T>
bool Network<T>::predict(const std::vector<T*>& params, const T* X, const std::int32_t* lengths,
                         idx n, T* out, bool training, std::uint64_t seed,
                         std::uint8_t* mask_out) const {
    if (params.size() != psize_.size()) throw ValueError("wrong number of parameter arrays");
    const std::size_t L = layers_.size();
    const idx din = n_in(), k = n_out();
    const int last = owner_[L - 1];  // writes straight into `out`
    if (n > 1) ensure_single_threaded_blas();
    // training=True on a batch-normalizing network: batch statistics, in one
    // block (the moving statistics are not moved: predict changes nothing).
    const bool batch_coupled = training && coupled_;
    const int nt = batch_coupled ? 1 : threads_for_rows(n, 1.0);
    // The network's buffers when no other predict holds them (and the chunks are
    // bounded: a batch-coupled call's one chunk is all n rows).
    std::unique_lock<std::mutex> lock(predict_mu_, std::defer_lock);
    if (!batch_coupled) lock.try_lock();
    std::vector<PredictScratch> own;
    std::vector<PredictScratch>& scratch = lock.owns_lock() ? predict_scratch_ : own;
    if (int(scratch.size()) < nt) scratch.resize(nt);
    // Rows split over threads; each runs its rows through every layer in
    // chunks, with its own buffers (so concurrent predict calls are safe).
    auto rows = [&](int t, int T_) {
        const idx r0 = n * t / T_, r1 = n * (t + 1) / T_;
        // Chunks of up to 512 rows whose largest layer output stays within ~16 MB (a
        // CNN's row is hundreds of KB; fewer rows per chunk would pack a large
        // Dense kernel once more per chunk).
        idx row_bytes = 1;
        for (const auto& la : layers_) row_bytes = std::max(row_bytes, la->out_size() * idx(sizeof(T)));
        // Coupled layers in training mode (batch statistics) see all n rows at once.
        const idx chunk = batch_coupled ? std::max<idx>(n, 1)
                                        : std::clamp<idx>(std::min<idx>((idx(16) << 20) / row_bytes,
                                                                        512),
                                                          1, std::max<idx>(r1 - r0, 1));
        PredictScratch& ps = scratch[t];  // grown, never shrunk: no zero-fill when reused
        std::vector<std::vector<T>>& bufs = ps.bufs;
        bufs.resize(L);
        std::vector<T*> outs(L);
        std::vector<std::byte*> saved(L);
        idx wb = 0;
        for (std::size_t l = 0; l < L; ++l) {
            const Layer<T>& la = *layers_[l];
            wb = std::max(wb, la.work_bytes(chunk));
            if (la.aliases_input()) continue;
            const std::size_t need = std::size_t(chunk * la.out_size());
            if (int(l) != last && bufs[l].size() < need) bufs[l].resize(need);
        }
        if (ps.work.size() < std::size_t(wb)) ps.work.resize(wb);
        if (ps.mask.size() < std::size_t(chunk * mask_T_)) ps.mask.resize(chunk * mask_T_);
        std::vector<std::byte>& work = ps.work;
        std::vector<std::vector<double>> state(L);
        std::vector<double*> state_ptr(L);
        std::vector<Sync> sync(L);
        for (std::size_t l = 0; l < L && batch_coupled; ++l) {
            state[l].resize(layers_[l]->batch_doubles());
            state_ptr[l] = state[l].data();
            if (!state[l].empty()) sync[l] = Sync{0, 1, &state_ptr[l]};
        }
        bool nonfinite = false;
        for (idx start = r0; start < r1; start += chunk) {
            const idx m = std::min(chunk, r1 - start);
            const T* x = X + start * din;
            for (std::size_t l = 0; l < L; ++l) {
                const int o = owner_[l];
                outs[l] = o < 0 ? const_cast<T*>(x) : o == last ? out + start * k : bufs[o].data();
            }
            Rows r;
            r.m = m;
            r.row0 = start;
            r.seed = seed;
            r.training = training;
            r.lengths = lengths ? lengths + start : nullptr;
            r.mask = !mask_T_ ? nullptr : mask_out ? mask_out + start * mask_T_ : ps.mask.data();
            r.work = work.data();
            forward(params, r, x, outs, saved, &nonfinite, batch_coupled ? &sync : nullptr);
        }
        return int(nonfinite);
    };
    if (nt == 1) return rows(0, 1) != 0;
    int bad = 0;
#pragma omp parallel num_threads(nt) reduction(| : bad)
    bad |= rows(omp_get_thread_num(), omp_get_num_threads());
    return bad != 0;
}

template class Network<float>;
template class Network<double>;

}  // namespace neuraxis
