#include "neuraxis/network.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <omp.h>

namespace neuraxis {

template <class T>
Network<T>::Network(std::vector<LayerSpec> layers, Loss loss)
    : layers_(std::move(layers)), loss_(loss) {
    if (layers_.empty()) throw ValueError("a network needs at least one layer");
    for (std::size_t l = 0; l < layers_.size(); ++l) {
        if (layers_[l].in < 0 || layers_[l].out <= 0)
            throw ValueError("layer sizes must be positive");
        if (l > 0 && layers_[l].in != layers_[l - 1].out)
            throw ValueError("layer " + std::to_string(l) + " expects " +
                             std::to_string(layers_[l].in) + " inputs but the previous layer has " +
                             std::to_string(layers_[l - 1].out) + " outputs");
    }
    if (layers_.back().act.kind != loss_output_activation(loss))
        throw ValueError("the output activation does not match the loss");
    grads_.resize(2 * layers_.size());
    for (std::size_t l = 0; l < layers_.size(); ++l) {
        grads_[2 * l].resize(layers_[l].in * layers_[l].out);
        grads_[2 * l + 1].resize(layers_[l].out);
    }
}

template <class T>
void Network<T>::reserve(idx batch) {
    if (batch <= capacity_) return;
    const std::size_t L = layers_.size();
    acts_.assign(L, {});
    deltas_.assign(L, {});
    for (std::size_t l = 0; l < L; ++l) {
        acts_[l].resize(batch * layers_[l].out);
        deltas_[l].resize(batch * layers_[l].out);
    }
    xbuf_.resize(batch * n_in());
    ybuf_.resize(batch * n_out());
    swbuf_.resize(batch);
    capacity_ = batch;
}

template <class T>
void Network<T>::forward(const std::vector<T*>& params, const T* x, idx m, std::vector<T*>& acts,
                         bool* nonfinite) const {
    const T* a = x;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
        const LayerSpec& s = layers_[l];
        dense_forward(a, m, s.in, params[2 * l], params[2 * l + 1], s.out, acts[l]);
        if (l == 0 && nonfinite && !*nonfinite) {
            // A NaN/inf anywhere in a row of X makes that row of X W + b non-finite;
            // scanning this (n, out) block instead of X is what lets predict skip
            // a separate pass over the input.
            const T* z = acts[0];
            const idx sz = m * s.out;
            bool bad = false;
            for (idx i = 0; i < sz; ++i) bad |= !std::isfinite(z[i]);
            *nonfinite = bad;
        }
        act_forward(s.act, acts[l], m, s.out);
        a = acts[l];
    }
}

template <class T>
double Network<T>::sum_sq_weights(const std::vector<T*>& params) const {
    double sq = 0.0;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
        const T* W = params[2 * l];
        const idx sz = layers_[l].in * layers_[l].out;
        for (idx i = 0; i < sz; ++i) sq += double(W[i]) * double(W[i]);
    }
    return sq;
}

template <class T>
double Network<T>::backprop(const std::vector<T*>& params, const std::vector<T*>& grads,
                            const T* x, const T* y, const T* sw, idx m, double alpha,
                            double sumsq, bool fold_reg, double* sw_sum_out) {
    const std::size_t L = layers_.size();
    const idx k = n_out();
    double sw_sum = double(m);
    if (sw) {
        sw_sum = 0.0;
        for (idx i = 0; i < m; ++i) sw_sum += sw[i];
    }
    if (sw_sum_out) *sw_sum_out = sw_sum;

    // Data parallel over the batch: each thread runs forward and backward on
    // its own block of rows with single-threaded BLAS, into its own gradient
    // buffers; the partial gradients are then added in thread order. One
    // fork/join per batch instead of one per product, and a fixed reduction
    // order, so the same thread count gives bit-identical results.
    idx macs_per_row = 0;
    for (const auto& s : layers_) macs_per_row += s.in * s.out;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    nt = int(std::min<idx>(nt, std::max<idx>(1, m / 8)));
    if (double(macs_per_row) * double(m) * 3.0 < 3.0e5) nt = 1;
    ensure_thread_grads(nt);
    std::vector<double> part_loss(nt, 0.0), part_w(nt, 0.0);

#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num();
        const int T_ = omp_get_num_threads();
        const idx r0 = m * t / T_, r1 = m * (t + 1) / T_, mr = r1 - r0;
        std::vector<T*> acts(L), deltas(L);
        for (std::size_t l = 0; l < L; ++l) {
            acts[l] = acts_[l].data() + r0 * layers_[l].out;
            deltas[l] = deltas_[l].data() + r0 * layers_[l].out;
        }
        const T* xr = x + r0 * n_in();
        const T* yr = y + r0 * k;
        const T* swr = sw ? sw + r0 : nullptr;
        if (mr > 0) {
            forward(params, xr, mr, acts);
            double w = double(mr);
            if (swr) {
                w = 0.0;
                for (idx i = 0; i < mr; ++i) w += swr[i];
            }
            part_w[t] = w;
            part_loss[t] = w > 0 ? loss_value(loss_, acts[L - 1], yr, swr, mr, k) * w : 0.0;
            // dZ_L = (P - Y) * sw / sw_sum; then back through the stack.
            loss_delta(loss_, acts[L - 1], yr, swr, mr, k, 1.0 / sw_sum, deltas[L - 1]);
        }
        for (std::size_t l = L; l-- > 0;) {
            const LayerSpec& s = layers_[l];
            T* dW = t == 0 ? grads[2 * l] : tgrads_[t - 1][2 * l].data();
            T* db = t == 0 ? grads[2 * l + 1] : tgrads_[t - 1][2 * l + 1].data();
            const T* a_in = l == 0 ? xr : acts[l - 1];
            T* dX = l == 0 ? nullptr : deltas[l - 1];
            // dW = X_t^T dZ_t, db = colsum dZ_t, dX = dZ_t W^T (zero rows give zero grads)
            dense_backward(a_in, mr, s.in, params[2 * l], s.out, deltas[l], dX, dW, db, T(0));
            if (dX && mr > 0) act_backward(layers_[l - 1].act, acts[l - 1], dX, mr, s.in);
        }
    }

    // Add the per-thread partial gradients, in thread order.
    const T reg = T(alpha / sw_sum);
    for (std::size_t p = 0; p < grads.size(); ++p) {
        const LayerSpec& s = layers_[p / 2];
        const bool weight = p % 2 == 0;
        const idx sz = weight ? s.in * s.out : s.out;
        T* g = grads[p];
        const T* W = params[p];
        const bool add_reg = weight && alpha != 0.0 && !fold_reg;
#pragma omp parallel for schedule(static) if (sz * nt > kParallelThreshold)
        for (idx i = 0; i < sz; ++i) {
            T acc = g[i];
            for (int t = 1; t < nt; ++t) acc += tgrads_[t - 1][p][i];
            if (add_reg) acc += reg * W[i];  // dW += alpha/sw_sum * W (lbfgs path)
            g[i] = acc;
        }
    }
    double loss = 0.0, wsum = 0.0;
    for (int t = 0; t < nt; ++t) loss += part_loss[t], wsum += part_w[t];
    loss = wsum > 0 ? loss / wsum : 0.0;
    // objective = weighted mean loss + alpha / (2 sw_sum) * sum ||W||^2
    if (alpha != 0.0) loss += 0.5 * alpha * sumsq / sw_sum;
    return loss;
}

template <class T>
void Network<T>::ensure_thread_grads(int nt) {
    if (int(tgrads_.size()) >= nt - 1) return;
    tgrads_.resize(nt - 1);
    for (auto& g : tgrads_) {
        if (!g.empty()) continue;
        g.resize(grads_.size());
        for (std::size_t p = 0; p < grads_.size(); ++p) g[p].resize(grads_[p].size());
    }
}

template <class T>
double Network<T>::fit_epoch(const std::vector<T*>& params, OptConfig& opt, OptState<T>& state,
                             const T* X, const T* Y, const T* sw, idx n, const std::int64_t* perm,
                             idx batch, double alpha, const std::function<bool()>& interrupted,
                             bool* stopped) {
    if (params.size() != 2 * layers_.size()) throw ValueError("wrong number of parameter arrays");
    if (batch < 1) throw ValueError("batch size must be >= 1");
    const bool adam = opt.kind == "adam";
    if (!adam && opt.kind != "sgd") throw ValueError("unknown optimizer '" + opt.kind + "'");
    if (state.m.size() != params.size() || (adam && state.v.size() != params.size()))
        throw ValueError("optimizer state does not match the parameters");
    batch = std::min(batch, std::max<idx>(n, 1));
    reserve(batch);
    std::vector<T*> grads(grads_.size());
    for (std::size_t i = 0; i < grads_.size(); ++i) grads[i] = grads_[i].data();
    const idx d = n_in(), k = n_out();
    double accumulated = 0.0;
    if (stopped) *stopped = false;
    double sumsq = alpha != 0.0 ? sum_sq_weights(params) : 0.0;  // kept current by the steps

    for (idx start = 0; start < n; start += batch) {
        const idx m = std::min(batch, n - start);
        const T *xb = X + start * d, *yb = Y + start * k, *swb = sw ? sw + start : nullptr;
        if (perm) {  // gather this batch's rows
            const std::int64_t* p = perm + start;
#pragma omp parallel for schedule(static) if (m * d > kParallelThreshold)
            for (idx i = 0; i < m; ++i) {
                std::memcpy(xbuf_.data() + i * d, X + p[i] * d, sizeof(T) * d);
                std::memcpy(ybuf_.data() + i * k, Y + p[i] * k, sizeof(T) * k);
                if (sw) swbuf_[i] = sw[p[i]];
            }
            xb = xbuf_.data(), yb = ybuf_.data(), swb = sw ? swbuf_.data() : nullptr;
        }
        double sw_sum = 0.0;
        const double batch_loss =
            backprop(params, grads, xb, yb, swb, m, alpha, sumsq, /*fold_reg=*/true, &sw_sum);
        accumulated += batch_loss * double(m);

        // The L2 gradient alpha/sw_sum * W is added inside the step (weights only).
        const double reg = alpha != 0.0 ? alpha / sw_sum : 0.0;
        const bool want = alpha != 0.0;
        double new_sumsq = 0.0;
        double lr_t = opt.learning_rate;
        if (adam) {
            opt.t += 1;
            lr_t = opt.learning_rate * std::sqrt(1.0 - std::pow(opt.beta_2, double(opt.t))) /
                   (1.0 - std::pow(opt.beta_1, double(opt.t)));
        }
        for (std::size_t i = 0; i < params.size(); ++i) {
            const bool weight = i % 2 == 0;
            const LayerSpec& s = layers_[i / 2];
            const idx sz = weight ? s.in * s.out : s.out;
            const double r = weight ? reg : 0.0;
            if (adam)
                new_sumsq += adam_step(params[i], state.m[i], state.v[i], grads[i], sz, lr_t,
                                       opt.beta_1, opt.beta_2, opt.epsilon, r, want && weight);
            else
                new_sumsq += sgd_step(params[i], state.m[i], grads[i], sz, lr_t, opt.momentum,
                                      opt.nesterov, r, want && weight);
        }
        sumsq = new_sumsq;
        if (interrupted && start + m < n && interrupted()) {
            if (stopped) *stopped = true;
            return n > 0 ? accumulated / double(start + m) : 0.0;
        }
    }
    return n > 0 ? accumulated / double(n) : 0.0;
}

template <class T>
double Network<T>::loss_grad(const std::vector<T*>& params, const std::vector<T*>& grads,
                             const T* X, const T* Y, const T* sw, idx n, double alpha) {
    if (params.size() != 2 * layers_.size() || grads.size() != params.size())
        throw ValueError("wrong number of parameter or gradient arrays");
    reserve(std::max<idx>(n, 1));
    const double sumsq = alpha != 0.0 ? sum_sq_weights(params) : 0.0;
    return backprop(params, grads, X, Y, sw, n, alpha, sumsq, /*fold_reg=*/false, nullptr);
}

template <class T>
bool Network<T>::predict(const std::vector<T*>& params, const T* X, idx n, T* out) const {
    if (params.size() != 2 * layers_.size()) throw ValueError("wrong number of parameter arrays");
    const std::size_t L = layers_.size();
    const idx chunk = std::min<idx>(std::max<idx>(n, 1), 2048);
    std::vector<std::vector<T>> bufs(L);
    std::vector<T*> acts(L);
    for (std::size_t l = 0; l + 1 < L; ++l) {
        bufs[l].resize(chunk * layers_[l].out);
        acts[l] = bufs[l].data();
    }
    const idx d = n_in(), k = n_out();
    bool nonfinite = false;
    for (idx start = 0; start < n; start += chunk) {
        const idx m = std::min(chunk, n - start);
        acts[L - 1] = out + start * k;  // the last layer writes straight into `out`
        forward(params, X + start * d, m, acts, &nonfinite);
    }
    return nonfinite;
}

template class Network<float>;
template class Network<double>;

}  // namespace neuraxis
