// SimpleRNN, LSTM and GRU over (T, F) samples, Keras's weight layouts and math,
// backpropagation through time. Per block of m rows:
//  - forward: the input projection of every step is one GEMM (Z = X W + b), then
//    per step one recurrent GEMM (rows of the block at that step: strided) and one
//    fused pass over the gates; the activated gates replace Z in place;
//  - backward: per step (in reverse) the gate derivatives into DZ and one GEMM
//    for dh_{t-1}; then dW = X^T DZ, dU = Hprev^T DZ, db = column sums, dX = DZ W^T,
//    each one GEMM over every (row, step), because the state each step read,
//    h_{t-1}, is stored at that step's position (Hprev).
// go_backwards reads step s from x at t = T - 1 - s; every per-step buffer is kept
// in x's time order, so the products above pair steps correctly either way, and
// the output sequence is in processing order (as Keras returns it).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "neuraxis/blas.hpp"
#include "neuraxis/fastmath.hpp"
#include "neuraxis/layer.hpp"
#include "neuraxis/simd.hpp"

namespace neuraxis {

namespace {

enum class Cell { rnn, lstm, gru };

// float32: the vectorizable approximations of fastmath.hpp (~2 ulp); float64: libm
template <class T>
NX_INLINE T act_f(Act k, T v) {
    switch (k) {
        case Act::logistic: return fast::sigmoid(v);
        case Act::tanh: return fast::tanh(v);
        case Act::relu: return v < T(0) ? T(0) : v;  // NaN stays NaN
        default: return v;  // identity
    }
}
// f'(z) written through y = f(z)
template <class T>
NX_INLINE T act_d(Act k, T y) {
    switch (k) {
        case Act::logistic: return y * (T(1) - y);
        case Act::tanh: return T(1) - y * y;
        case Act::relu: return y > T(0) ? T(1) : T(0);
        default: return T(1);
    }
}

// An activation as the cell loops use it: f(z) and f'(z) through y = f(z). The
// common tanh / sigmoid pair gets its own types, so the loops over units have no
// switch in them and vectorize.
template <class T>
struct TanhAct {
    NX_INLINE T f(T v) const { return fast::tanh(v); }
    NX_INLINE T d(T y) const { return T(1) - y * y; }
};
template <class T>
struct SigmoidAct {
    NX_INLINE T f(T v) const { return fast::sigmoid(v); }
    NX_INLINE T d(T y) const { return y * (T(1) - y); }
};
template <class T>
struct AnyAct {
    Act k;
    NX_INLINE T f(T v) const { return act_f(k, v); }
    NX_INLINE T d(T y) const { return act_d(k, y); }
};

// The LSTM cell (tanh / sigmoid) of one step for m contiguous rows, compiled per
// SIMD level (the layer's own code is the portable baseline): the lecture's cell.
template <class T>
NX_INLINE void lstm_fwd_loop(T* __restrict Z, const T* __restrict E, T* __restrict Hn,
                             T* __restrict En, idx m, idx u) {
    for (idx i = 0; i < m; ++i) {
        // one pointer per gate block: GCC does not vectorize z[k * u + j] stores here
        T* __restrict zi = Z + i * 4 * u;
        T* __restrict zf = zi + u;
        T* __restrict zc = zi + 2 * u;
        T* __restrict zo = zi + 3 * u;
        const T* __restrict e = E + i * u;
        T* __restrict hn = Hn + i * u;
        T* __restrict en = En + i * u;
#pragma omp simd
        for (idx j = 0; j < u; ++j) {
            const T ig = fast::sigmoid(zi[j]), fg = fast::sigmoid(zf[j]);
            const T gg = fast::tanh(zc[j]), og = fast::sigmoid(zo[j]);
            zi[j] = ig;
            zf[j] = fg;
            zc[j] = gg;
            zo[j] = og;
            const T c = fg * e[j] + ig * gg;
            en[j] = c;
            hn[j] = og * fast::tanh(c);
        }
    }
}
template <class T>
NX_INLINE void lstm_bwd_loop(const T* __restrict Z, const T* __restrict E, T* __restrict dh,
                             T* __restrict dc, T* __restrict DZ, idx m, idx u) {
    for (idx i = 0; i < m; ++i) {
        const T* __restrict z = Z + i * 4 * u;
        const T* __restrict e = E + i * u;
        T* __restrict d = dh + i * u;
        T* __restrict dcr = dc + i * u;
        T* __restrict dz = DZ + i * 4 * u;
#pragma omp simd
        for (idx j = 0; j < u; ++j) {
            const T ig = z[j], fg = z[u + j], gg = z[2 * u + j], og = z[3 * u + j];
            const T tc = fast::tanh(fg * e[j] + ig * gg);
            const T dhj = d[j];
            const T dcj = dcr[j] + dhj * og * (T(1) - tc * tc);
            dz[j] = dcj * gg * (ig * (T(1) - ig));
            dz[u + j] = dcj * e[j] * (fg * (T(1) - fg));
            dz[2 * u + j] = dcj * ig * (T(1) - gg * gg);
            dz[3 * u + j] = dhj * tc * (og * (T(1) - og));
            dcr[j] = dcj * fg;
            d[j] = T(0);
        }
    }
}
// GRU (reset_after, tanh / sigmoid) and SimpleRNN (tanh) cells, likewise. R: the step's
// recurrent product h_{s-1} U (m, 3u); rb: the recurrent bias row or null.
template <class T>
NX_INLINE void gru_fwd_loop(T* __restrict Z, const T* __restrict Hp, const T* __restrict R,
                            const T* __restrict rb, T* __restrict E, T* __restrict Hn, idx m,
                            idx u) {
    for (idx i = 0; i < m; ++i) {
        T* __restrict z = Z + i * 3 * u;
        const T* __restrict hp = Hp + i * u;
        const T* __restrict rr = R + i * 3 * u;
        T* __restrict rh = E + i * u;
        T* __restrict hn = Hn + i * u;
#pragma omp simd
        for (idx j = 0; j < u; ++j) {
            const T bz = rb ? rb[j] : T(0), br = rb ? rb[u + j] : T(0);
            const T bh = rb ? rb[2 * u + j] : T(0);
            const T zg = fast::sigmoid(z[j] + rr[j] + bz);
            const T rg = fast::sigmoid(z[u + j] + rr[u + j] + br);
            const T ah = rr[2 * u + j] + bh;
            const T hh = fast::tanh(z[2 * u + j] + rg * ah);
            z[j] = zg;
            z[u + j] = rg;
            z[2 * u + j] = hh;
            rh[j] = ah;
            hn[j] = zg * hp[j] + (T(1) - zg) * hh;
        }
    }
}
template <class T>
NX_INLINE void gru_bwd_loop(const T* __restrict Z, const T* __restrict Hp,
                            const T* __restrict E, T* __restrict dh, T* __restrict DZ,
                            T* __restrict DR, idx m, idx u) {
    for (idx i = 0; i < m; ++i) {
        const T* __restrict z = Z + i * 3 * u;
        const T* __restrict hp = Hp + i * u;
        const T* __restrict e = E + i * u;
        T* __restrict d = dh + i * u;
        T* __restrict dz = DZ + i * 3 * u;
        T* __restrict dr = DR + i * 3 * u;
#pragma omp simd
        for (idx j = 0; j < u; ++j) {
            const T zg = z[j], rg = z[u + j], hh = z[2 * u + j], dhj = d[j];
            const T dah = dhj * (T(1) - zg) * (T(1) - hh * hh);
            const T pz = dhj * (hp[j] - hh) * (zg * (T(1) - zg));
            const T pr = dah * e[j] * (rg * (T(1) - rg));
            dz[j] = pz;
            dz[u + j] = pr;
            dz[2 * u + j] = dah;
            dr[j] = pz;
            dr[u + j] = pr;
            dr[2 * u + j] = dah * rg;
            d[j] = dhj * zg;
        }
    }
}
template <class T>
NX_INLINE void rnn_fwd_loop(T* __restrict Z, T* __restrict Hn, idx m, idx u) {
    for (idx i = 0; i < m; ++i) {
        T* __restrict z = Z + i * u;
        T* __restrict hn = Hn + i * u;
#pragma omp simd
        for (idx j = 0; j < u; ++j) hn[j] = z[j] = fast::tanh(z[j]);
    }
}
template <class T>
NX_INLINE void rnn_bwd_loop(const T* __restrict Z, T* __restrict dh, T* __restrict DZ, idx m,
                            idx u) {
    for (idx i = 0; i < m; ++i) {
        const T* __restrict z = Z + i * u;
        T* __restrict d = dh + i * u;
        T* __restrict dz = DZ + i * u;
#pragma omp simd
        for (idx j = 0; j < u; ++j) {
            dz[j] = d[j] * (T(1) - z[j] * z[j]);
            d[j] = T(0);
        }
    }
}
#define NX_CELL_CLONES(T)                                                                     \
    NX_CLONES void gru_fwd_rows(T* Z, const T* Hp, const T* R, const T* rb, T* E, T* Hn,      \
                                idx m, idx u) {                                               \
        gru_fwd_loop(Z, Hp, R, rb, E, Hn, m, u);                                              \
    }                                                                                         \
    NX_CLONES void gru_bwd_rows(const T* Z, const T* Hp, const T* E, T* dh, T* DZ, T* DR,     \
                                idx m, idx u) {                                               \
        gru_bwd_loop(Z, Hp, E, dh, DZ, DR, m, u);                                             \
    }                                                                                         \
    NX_CLONES void rnn_fwd_rows(T* Z, T* Hn, idx m, idx u) { rnn_fwd_loop(Z, Hn, m, u); }     \
    NX_CLONES void rnn_bwd_rows(const T* Z, T* dh, T* DZ, idx m, idx u) {                     \
        rnn_bwd_loop(Z, dh, DZ, m, u);                                                        \
    }
NX_CELL_CLONES(float)
NX_CELL_CLONES(double)
#undef NX_CELL_CLONES

NX_CLONES void lstm_fwd_rows(float* Z, const float* E, float* Hn, float* En, idx m, idx u) {
    lstm_fwd_loop(Z, E, Hn, En, m, u);
}
NX_CLONES void lstm_fwd_rows(double* Z, const double* E, double* Hn, double* En, idx m, idx u) {
    lstm_fwd_loop(Z, E, Hn, En, m, u);
}
NX_CLONES void lstm_bwd_rows(const float* Z, const float* E, float* dh, float* dc, float* DZ,
                             idx m, idx u) {
    lstm_bwd_loop(Z, E, dh, dc, DZ, m, u);
}
NX_CLONES void lstm_bwd_rows(const double* Z, const double* E, double* dh, double* dc,
                             double* DZ, idx m, idx u) {
    lstm_bwd_loop(Z, E, dh, dc, DZ, m, u);
}

Act cell_activation(const Config& c, const std::string& key, const char* fallback) {
    const std::string name = c.text(key, fallback);
    const Activation a = parse_activation(name, 0.0);
    if (a.kind != Act::tanh && a.kind != Act::logistic && a.kind != Act::relu &&
        a.kind != Act::identity)
        c.fail("'" + key + "' of a recurrent layer must be one of tanh, logistic, relu, "
               "identity; got '" + name + "'");
    return a.kind;
}

template <class T>
class Recurrent final : public Layer<T> {
  public:
    Recurrent(const Config& c, const Shape& in, int index) : index_(index) {
        const std::string kind = c.kind();
        cell_ = kind == "lstm" ? Cell::lstm : kind == "gru" ? Cell::gru : Cell::rnn;
        u_ = c.integer("units");
        if (u_ < 1) c.fail("'units' must be a positive integer, got " + std::to_string(u_));
        act_ = cell_activation(c, "activation", "tanh");
        rec_ = cell_ == Cell::rnn ? Act::identity
                                  : cell_activation(c, "recurrent_activation", "logistic");
        bias_ = c.flag("use_bias", true);
        seq_ = c.flag("return_sequences", false);
        back_ = c.flag("go_backwards", false);
        trainable_ = c.flag("trainable", true);
        reset_after_ = cell_ == Cell::gru ? c.flag("reset_after", true) : false;
        drop_ = c.number("dropout", 0.0);
        rdrop_ = c.number("recurrent_dropout", 0.0);
        if (!(drop_ >= 0.0 && drop_ < 1.0) || !(rdrop_ >= 0.0 && rdrop_ < 1.0))
            c.fail("'dropout' and 'recurrent_dropout' must be in [0, 1)");
        use_mask_ = c.flag("use_mask", false);
        if (in.size() != 2)
            c.fail("needs inputs of shape (steps, features), got " + shape_str(in));
        T_ = in[0];
        F_ = in[1];
        G_ = u_ * (cell_ == Cell::lstm ? 4 : cell_ == Cell::gru ? 3 : 1);
        // per step, besides the gates and h_{t-1}: LSTM c_{t-1}; GRU the recurrent
        // candidate term (reset_after: h U_h + b_rh) or r * h_{t-1}
        E_ = cell_ == Cell::rnn ? 0 : u_;
        this->in_ = in;
        this->out_ = seq_ ? Shape{T_, u_} : Shape{u_};
    }

    std::vector<ParamSpec> params() const override {
        std::vector<ParamSpec> p{{{F_, G_}, true, trainable_}, {{u_, G_}, true, trainable_}};
        if (bias_) {
            if (reset_after_)
                p.push_back({{2, G_}, false, trainable_});
            else
                p.push_back({{G_}, false, trainable_});
        }
        return p;
    }
    idx saved_bytes_per_row() const override { return state_per_row() * idx(sizeof(T)); }
    // forward: (predict: the state), the step's recurrent product R, the last h and c, x
    // time-major; backward: DZ (twice for GRU reset_after), dh, dc, tmp, x / dx time-major
    idx work_bytes(idx m) const override {
        const idx fwd = m * state_per_row() + m * G_ + 2 * m * u_ + m * T_ * F_;
        const idx bwd = m * T_ * G_ * (reset_after_ ? 2 : 1) + 3 * m * u_ + m * T_ * F_;
        // + the dropout masks, + one (m, u) scratch for recurrent dropout: GRU h_{t-1} masked;
        // simple_rnn / lstm under a step mask: the true h of each row's last real step
        return (std::max(fwd, bwd) + m * (F_ + u_) + m * u_) * idx(sizeof(T));
    }
    double macs_per_row() const override { return double(T_) * double(G_) * double(F_ + u_); }
    idx reads_mask() const override { return use_mask_ ? T_ : 0; }

    void forward(const Rows& r, const T* const* W, const T* x, T* y, std::byte* saved) const override {
        const idx m = r.m;
        if (r.nonfinite && !all_finite(x, m * T_ * F_)) *r.nonfinite = true;
        // time-major within the block: each step's rows are one contiguous (m, .) block
        T* st = saved ? reinterpret_cast<T*>(saved) : reinterpret_cast<T*>(r.work);
        T* Z = st;                    // (T, m, G): gates, activated in place
        T* H = Z + m * T_ * G_;       // (T, m, u): h_{s-1} at step s's position
        T* E = H + m * T_ * u_;       // (T, m, u): c_{s-1}, or the GRU candidate term
        T* R = reinterpret_cast<T*>(r.work) + (saved ? 0 : m * state_per_row());  // (m, G)
        T* L = R + m * G_;            // (m, 2u): the last step's h and c
        T* Xt = L + 2 * m * u_;       // (T, m, F): x time-major
        const T* U = W[1];
        const T* b = bias_ ? W[2] : nullptr;
        const auto [mx, mh] = dropout_masks(r, mask_area(r));
        reorder_steps(x, m, Xt, mx, true);
        // Z = X W (+ the input bias), one product over every (step, row)
        gemm1(false, false, int(m * T_), int(G_), int(F_), T(1), Xt, int(F_), W[0], int(G_), T(0),
              Z, int(G_));
        if (b)
            for (idx row = 0; row < m * T_; ++row) {
                T* z = Z + row * G_;
#pragma omp simd
                for (idx j = 0; j < G_; ++j) z[j] += b[j];
            }
        for (idx s = 0; s < T_; ++s) {
            const idx t = back_ ? T_ - 1 - s : s;
            T* Zt = Z + t * m * G_;
            T* Ht = H + t * m * u_;
            T* Et = E + t * m * u_;
            if (s == 0) {
                std::fill(Ht, Ht + m * u_, T(0));
                if (E_) std::fill(Et, Et + m * u_, T(0));
            }
            // the recurrent product of h_{s-1} (zero at s = 0)
            if (cell_ == Cell::gru && reset_after_) {
                // recurrent dropout: the products read h_{s-1} masked, the update h_{s-1} itself
                const T* hin = mh ? masked(Ht, mh, m, gru_scratch(r)) : Ht;
                if (s > 0)
                    gemm1(false, false, int(m), int(G_), int(u_), T(1), hin, int(u_), U, int(G_),
                          T(0), R, int(G_));
                else
                    std::fill(R, R + m * G_, T(0));
            } else {  // GRU reset_before: z and r parts now, the candidate's after r
                const idx cols = cell_ == Cell::gru ? 2 * u_ : G_;
                // recurrent dropout: GRU keeps h_{s-1} in H (the update reads it) and
                // multiplies a copy (also r * h_{s-1} reads it); simple_rnn / lstm: H is masked
                const T* hin = cell_ == Cell::gru && mh ? masked(Ht, mh, m, gru_scratch(r)) : Ht;
                if (s > 0)
                    gemm1(false, false, int(m), int(cols), int(u_), T(1), hin, int(u_), U,
                          int(G_), T(1), Zt, int(G_));
            }
            const idx tn = s + 1 < T_ ? (back_ ? t - 1 : t + 1) : -1;  // where h_s is read next
            T* Hn = tn >= 0 ? H + tn * m * u_ : L;  // the last step's h and c: scratch
            T* En = tn >= 0 ? E + tn * m * u_ : L + m * u_;
            auto out_of = [&](idx i) -> T* {
                return seq_ ? y + i * T_ * u_ + s * u_ : (s + 1 == T_ ? y + i * u_ : nullptr);
            };
            const std::uint8_t* mk = use_mask_ ? r.mask : nullptr;
            // simple_rnn / lstm with recurrent dropout and a step mask: H holds h masked, so
            // the true h a masked step repeats is kept here, row by row
            T* Hk = mh && mk && cell_ != Cell::gru ? gru_scratch(r) : nullptr;
            if (Hk && s == 0) std::fill(Hk, Hk + m * u_, T(0));
            // a masked step keeps the state (and repeats the last output), as Keras; with H
            // masked, h_{s-1} masked is also h_s masked (one mask for every step)
            auto keep_state = [&](idx i) {
                if (!mk || mk[i * T_ + t]) return;
                std::memcpy(Hn + i * u_, Ht + i * u_, sizeof(T) * u_);
                if (cell_ == Cell::lstm) std::memcpy(En + i * u_, Et + i * u_, sizeof(T) * u_);
                if (T* o = out_of(i)) std::memcpy(o, (Hk ? Hk : Hn) + i * u_, sizeof(T) * u_);
            };
            const bool fast_cell = standard_acts() && !mk &&
                                   (cell_ != Cell::gru || reset_after_);
            if (fast_cell) {
                if (cell_ == Cell::lstm)
                    lstm_fwd_rows(Zt, Et, Hn, En, m, u_);
                else if (cell_ == Cell::gru)
                    gru_fwd_rows(Zt, Ht, R, b ? b + G_ : nullptr, Et, Hn, m, u_);
                else
                    rnn_fwd_rows(Zt, Hn, m, u_);
                for (idx i = 0; i < m; ++i)
                    if (T* o = out_of(i)) std::memcpy(o, Hn + i * u_, sizeof(T) * u_);
            } else {
                // GRU reset_before reads h_{s-1} masked for r * h_{s-1}, if any
                const T* hr = cell_ == Cell::gru && !reset_after_ && mh ? gru_scratch(r) : Ht;
                with_acts([&](auto fa, auto fr) {
                    for (idx i = 0; i < m; ++i) {
                        step_forward(fa, fr, Zt + i * G_, hr + i * u_, Et + i * u_, R + i * G_,
                                     b, Hn + i * u_, En + i * u_, out_of(i));
                        if (!(cell_ == Cell::gru && !reset_after_)) keep_state(i);
                        if (Hk && mk[i * T_ + t]) {  // a real step: keep h_s, store it masked
                            std::memcpy(Hk + i * u_, Hn + i * u_, sizeof(T) * u_);
                            for (idx j = 0; j < u_; ++j) Hn[i * u_ + j] *= mh[i * u_ + j];
                        }
                    }
                });
            }
            // recurrent dropout (simple_rnn, lstm): H keeps h_s masked
            if (mh && !Hk && cell_ != Cell::gru)
                for (idx i = 0; i < m; ++i)
                    for (idx j = 0; j < u_; ++j) Hn[i * u_ + j] *= mh[i * u_ + j];
            if (cell_ == Cell::gru && !reset_after_) {
                // candidate: x_h + (r * h_{s-1}) U_h, then the cell (hn / out) for every row
                if (s > 0)
                    gemm1(false, false, int(m), int(u_), int(u_), T(1), Et, int(u_), U + 2 * u_,
                          int(G_), T(1), Zt + 2 * u_, int(G_));
                with_acts([&](auto fa, auto) {
                    for (idx i = 0; i < m; ++i) {
                        gru_finish(fa, Zt + i * G_, Ht + i * u_, Hn + i * u_, out_of(i));
                        keep_state(i);
                    }
                });
            }
        }
    }

    void backward(const Rows& r, const T* const* W, const T* x, const T*, const std::byte* saved,
                  T* dy, T* dx, T* const* dW) const override {
        const idx m = r.m;
        const T* Z = reinterpret_cast<const T*>(saved);
        const T* H = Z + m * T_ * G_;
        const T* E = H + m * T_ * u_;
        T* DZ = reinterpret_cast<T*>(r.work);          // (T, m, G): dL/d(x-side pre-activations)
        T* DR = reset_after_ ? DZ + m * T_ * G_ : DZ;  // GRU reset_after: the recurrent side's
        T* dh = DZ + m * T_ * G_ * (reset_after_ ? 2 : 1);  // (m, u): running dL/dh
        T* dc = dh + m * u_;                           // (m, u): running dL/dc (LSTM)
        T* tmp = dc + m * u_;                          // (m, u)
        T* Xt = tmp + m * u_;                          // (T, m, F)
        const T* U = W[1];
        const auto [mx, mh] = dropout_masks(r, mask_area(r));
        std::fill(dh, dh + 2 * m * u_, T(0));
        const bool gru_rdrop = cell_ == Cell::gru && mh;  // dU step by step, through masked h
        if (gru_rdrop && dW[1]) std::fill(dW[1], dW[1] + u_ * G_, T(0));
        for (idx s = T_ - 1; s >= 0; --s) {
            const idx t = back_ ? T_ - 1 - s : s;
            const idx o = t * m;  // this step's first row
            const std::uint8_t* mk = use_mask_ ? r.mask : nullptr;
            if (standard_acts() && !mk && (cell_ != Cell::gru || reset_after_)) {
                for (idx i = 0; i < m; ++i) {
                    const T* g = seq_ ? dy + i * T_ * u_ + s * u_
                                      : (s + 1 == T_ ? dy + i * u_ : nullptr);
                    if (g)
                        for (idx j = 0; j < u_; ++j) dh[i * u_ + j] += g[j];
                }
                if (cell_ == Cell::lstm)
                    lstm_bwd_rows(Z + o * G_, E + o * u_, dh, dc, DZ + o * G_, m, u_);
                else if (cell_ == Cell::gru)
                    gru_bwd_rows(Z + o * G_, H + o * u_, E + o * u_, dh, DZ + o * G_,
                                 DR + o * G_, m, u_);
                else
                    rnn_bwd_rows(Z + o * G_, dh, DZ + o * G_, m, u_);
            } else
            with_acts([&](auto fa, auto fr) {
                for (idx i = 0; i < m; ++i) {
                    T* d = dh + i * u_;
                    const T* g = seq_ ? dy + i * T_ * u_ + s * u_
                                      : (s + 1 == T_ ? dy + i * u_ : nullptr);
                    if (g)
                        for (idx j = 0; j < u_; ++j) d[j] += g[j];
                    if (mk && !mk[i * T_ + t]) {  // the state passed through: so do dh, dc
                        std::fill(DZ + (o + i) * G_, DZ + (o + i + 1) * G_, T(0));
                        std::fill(DR + (o + i) * G_, DR + (o + i + 1) * G_, T(0));
                        continue;
                    }
                    step_backward(fa, fr, Z + (o + i) * G_, H + (o + i) * u_, E + (o + i) * u_, d,
                                  dc + i * u_, DZ + (o + i) * G_, DR + (o + i) * G_, tmp + i * u_,
                                  W, mh ? mh + i * u_ : nullptr);
                }
            });
            if (s == 0) break;
            if (gru_rdrop) {  // dU += (h_{s-1} m)^T DR_s;  dh_{s-1} += (DR_s U^T) m
                // (reset_before: the z and r columns; the candidate's went through
                // r * (h m) in step_backward, and its dU is E^T DZ below)
                const idx cols = reset_after_ ? G_ : 2 * u_;
                if (dW[1])
                    gemm1(true, false, int(u_), int(cols), int(m), T(1),
                          masked(H + o * u_, mh, m, gru_scratch(r)), int(u_), DR + o * G_,
                          int(G_), T(1), dW[1], int(G_));
                gemm1(false, true, int(m), int(u_), int(cols), T(1), DR + o * G_, int(G_), U,
                      int(G_), T(0), tmp, int(u_));
                for (idx e = 0; e < m * u_; ++e) dh[e] += tmp[e] * mh[e];
                continue;
            }
            // dh_{s-1} = (the direct part left in dh) + DR_s U^T (GRU reset_before: the z and
            // r parts; the candidate's went through r * h in step_backward)
            const idx cols = cell_ == Cell::gru && !reset_after_ ? 2 * u_ : G_;
            gemm1(false, true, int(m), int(u_), int(cols), T(1), DR + o * G_, int(G_), U, int(G_),
                  T(1), dh, int(u_));
            // through the masked h_{s-1} (simple_rnn / lstm: dh held only this part); a
            // masked step's row passed dh through, unmasked
            if (mh && !mk)
                for (idx e = 0; e < m * u_; ++e) dh[e] *= mh[e];
            else if (mh)
                for (idx i = 0; i < m; ++i)
                    if (mk[i * T_ + t])
                        for (idx j = 0; j < u_; ++j) dh[i * u_ + j] *= mh[i * u_ + j];
        }
        const int mT = int(m * T_);
        if (dW[0]) {
            reorder_steps(x, m, Xt, mx, true);
            gemm1(true, false, int(F_), int(G_), mT, T(1), Xt, int(F_), DZ, int(G_), T(0), dW[0],
                  int(G_));
        }
        if (dW[1] && !(gru_rdrop && reset_after_)) {
            if (cell_ == Cell::gru && !reset_after_) {
                if (!gru_rdrop)  // else summed step by step above
                    gemm1(true, false, int(u_), int(2 * u_), mT, T(1), H, int(u_), DZ, int(G_),
                          T(0), dW[1], int(G_));
                gemm1(true, false, int(u_), int(u_), mT, T(1), E, int(u_), DZ + 2 * u_, int(G_),
                      T(0), dW[1] + 2 * u_, int(G_));
            } else {
                gemm1(true, false, int(u_), int(G_), mT, T(1), H, int(u_), DR, int(G_), T(0),
                      dW[1], int(G_));
            }
        }
        if (bias_ && dW[2]) {
            column_sums(DZ, m * T_, G_, 0, G_, dW[2]);
            if (reset_after_) column_sums(DR, m * T_, G_, 0, G_, dW[2] + G_);
        }
        if (dx) {  // dX = DZ W^T, time-major, then back to (m, T, F)
            gemm1(false, true, mT, int(F_), int(G_), T(1), DZ, int(G_), W[0], int(G_), T(0), Xt,
                  int(F_));
            reorder_steps(Xt, m, dx, mx, false);
        }
    }

  private:
    idx state_per_row() const { return T_ * (G_ + u_ + E_); }

    // m rows of T steps of F values between row-major x[i][t] and time-major xt[t][i]
    // (to_time: x -> xt, else xt -> x), times mx[i] (the input dropout mask) when given
    void reorder_steps(const T* from, idx m, T* to, const T* mx, bool to_time) const {
        for (idx t = 0; t < T_; ++t)
            for (idx i = 0; i < m; ++i) {
                const idx rm = (i * T_ + t) * F_, tm = (t * m + i) * F_;
                const T* in = from + (to_time ? rm : tm);
                T* o = to + (to_time ? tm : rm);
                if (mx)
                    for (idx f = 0; f < F_; ++f) o[f] = in[f] * mx[i * F_ + f];
                else
                    std::memcpy(o, in, sizeof(T) * F_);
            }
    }

    // Keras's RNN dropout: one mask per sequence (row) for every step, on the inputs
    // (m, F) and on h_{t-1} (m, u); counter-based, so backward recomputes the same.
    // Returns the two masks (null when off) in `masks` (m * (F + u) values).
    std::pair<const T*, const T*> dropout_masks(const Rows& r, T* masks) const {
        const bool dx = r.training && drop_ > 0.0, dh = r.training && rdrop_ > 0.0;
        T* mx = masks;
        T* mh = masks + r.m * F_;
        const std::uint64_t key = std::uint64_t(index_) | (std::uint64_t(1) << 40);
        for (idx i = 0; i < r.m; ++i) {
            const std::uint64_t row = std::uint64_t(r.row0 + i);
            if (dx)
                for (idx f = 0; f < F_; ++f)
                    mx[i * F_ + f] = T(dropout_scale(r.seed, key, row, std::uint64_t(f), drop_));
            if (dh)
                for (idx j = 0; j < u_; ++j)
                    mh[i * u_ + j] = T(dropout_scale(r.seed, key + 1, row,
                                                     std::uint64_t(F_ + j), rdrop_));
        }
        return {dx ? mx : nullptr, dh ? mh : nullptr};
    }
    // out = h * mask row by row (m rows of u)
    const T* masked(const T* h, const T* mask, idx m, T* out) const {
        for (idx e = 0; e < m * u_; ++e) out[e] = h[e] * mask[e];
        return out;
    }
    T* gru_scratch(const Rows& r) const { return mask_area(r) + r.m * (F_ + u_); }
    T* mask_area(const Rows& r) const {
        const idx m = r.m;
        const idx fwd = m * state_per_row() + m * G_ + 2 * m * u_ + m * T_ * F_;
        const idx bwd = m * T_ * G_ * (reset_after_ ? 2 : 1) + 3 * m * u_ + m * T_ * F_;
        return reinterpret_cast<T*>(r.work) + std::max(fwd, bwd);
    }

    bool standard_acts() const {
        return act_ == Act::tanh && (cell_ == Cell::rnn || rec_ == Act::logistic);
    }
    // body(fa, fr) with the cell's activation and recurrent activation as functors
    template <class Body>
    NX_INLINE void with_acts(Body&& body) const {
        if (standard_acts())
            body(TanhAct<T>{}, SigmoidAct<T>{});
        else
            body(AnyAct<T>{act_}, AnyAct<T>{rec_});
    }

    // One row, one step: z (G) holds x W + b (+ h U for rnn / lstm / gru reset_before's z, r);
    // activates the gates in place; h_s to hn (next step's h_{s-1}; scratch when last) and
    // to out (when the output wants it); LSTM: c_s to en.
    template <class FA, class FR>
    NX_INLINE void step_forward(FA fa, FR fr, T* __restrict z, const T* __restrict hp,
                                T* __restrict e, const T* __restrict rrow, const T* b,
                                T* __restrict hn, T* __restrict en, T* __restrict out) const {
        const idx u = u_;
        if (cell_ == Cell::rnn) {
#pragma omp simd
            for (idx j = 0; j < u; ++j) {
                const T h = fa.f(z[j]);
                z[j] = h;
                hn[j] = h;
            }
        } else if (cell_ == Cell::lstm) {
            T* __restrict zi = z;
            T* __restrict zf = z + u;
            T* __restrict zc = z + 2 * u;
            T* __restrict zo = z + 3 * u;
#pragma omp simd
            for (idx j = 0; j < u; ++j) {
                const T ig = fr.f(zi[j]), fg = fr.f(zf[j]);
                const T gg = fa.f(zc[j]), og = fr.f(zo[j]);
                zi[j] = ig;
                zf[j] = fg;
                zc[j] = gg;
                zo[j] = og;
                const T c = fg * e[j] + ig * gg;
                en[j] = c;
                hn[j] = og * fa.f(c);
            }
        } else if (reset_after_) {
            T* __restrict zz = z;
            T* __restrict zr = z + u;
            T* __restrict zh = z + 2 * u;
            T* __restrict rh = e;  // this step's E slot: h_{s-1} U_h + b_rh
            const T* rb = b ? b + G_ : nullptr;  // the recurrent bias row
            if (rb) {
#pragma omp simd
                for (idx j = 0; j < u; ++j) rh[j] = rrow[2 * u + j] + rb[2 * u + j];
            } else {
#pragma omp simd
                for (idx j = 0; j < u; ++j) rh[j] = rrow[2 * u + j];
            }
#pragma omp simd
            for (idx j = 0; j < u; ++j) {
                const T az = rrow[j] + (rb ? rb[j] : T(0));
                const T ar = rrow[u + j] + (rb ? rb[u + j] : T(0));
                const T zg = fr.f(zz[j] + az), rg = fr.f(zr[j] + ar);
                const T hh = fa.f(zh[j] + rg * rh[j]);
                zz[j] = zg;
                zr[j] = rg;
                zh[j] = hh;
                hn[j] = zg * hp[j] + (T(1) - zg) * hh;
            }
        } else {  // reset_after=False: z, r now; the candidate needs (r * h_{s-1}) U_h first
            T* __restrict zz = z;
            T* __restrict zr = z + u;
#pragma omp simd
            for (idx j = 0; j < u; ++j) {
                const T zg = fr.f(zz[j]), rg = fr.f(zr[j]);
                zz[j] = zg;
                zr[j] = rg;
                e[j] = rg * hp[j];
            }
            return;  // gru_finish writes h
        }
        if (out) std::memcpy(out, hn, sizeof(T) * u);
    }

    // GRU reset_after=False, after the candidate product: hh and h
    template <class FA>
    NX_INLINE void gru_finish(FA fa, T* __restrict z, const T* __restrict hp, T* __restrict hn,
                              T* __restrict out) const {
        const idx u = u_;
#pragma omp simd
        for (idx j = 0; j < u; ++j) {
            const T zg = z[j];
            const T hh = fa.f(z[2 * u + j]);
            z[2 * u + j] = hh;
            hn[j] = zg * hp[j] + (T(1) - zg) * hh;
        }
        if (out) std::memcpy(out, hn, sizeof(T) * u);
    }

    // One row, one step backward. d: dL/dh_s in, dL/dh_{s-1}'s direct part out. mr: the
    // row's recurrent dropout mask or null (GRU reset_before: r * (h_{s-1} mr) U_h).
    template <class FA, class FR>
    NX_INLINE void step_backward(FA fa, FR fr, const T* __restrict z, const T* __restrict hp,
                                 const T* __restrict e, T* __restrict d, T* __restrict dcr,
                                 T* __restrict dz, T* dr, T* __restrict tmp,
                                 const T* const* W, const T* mr) const {
        const idx u = u_;
        if (cell_ == Cell::rnn) {
#pragma omp simd
            for (idx j = 0; j < u; ++j) {
                dz[j] = d[j] * fa.d(z[j]);
                d[j] = T(0);
            }
            return;
        }
        if (cell_ == Cell::lstm) {
            const T* __restrict ig = z;
            const T* __restrict fg = z + u;
            const T* __restrict gg = z + 2 * u;
            const T* __restrict og = z + 3 * u;
#pragma omp simd
            for (idx j = 0; j < u; ++j) {
                const T c = fg[j] * e[j] + ig[j] * gg[j];
                const T tc = fa.f(c);
                const T dh = d[j];
                const T dc = dcr[j] + dh * og[j] * fa.d(tc);
                dz[j] = dc * gg[j] * fr.d(ig[j]);
                dz[u + j] = dc * e[j] * fr.d(fg[j]);
                dz[2 * u + j] = dc * ig[j] * fa.d(gg[j]);
                dz[3 * u + j] = dh * tc * fr.d(og[j]);
                dcr[j] = dc * fg[j];
                d[j] = T(0);
            }
            return;
        }
        const T* __restrict zg = z;
        const T* __restrict rg = z + u;
        const T* __restrict hh = z + 2 * u;
        if (reset_after_) {
            T* __restrict drr = dr;
#pragma omp simd
            for (idx j = 0; j < u; ++j) {
                const T dh = d[j];
                const T dzg = dh * (hp[j] - hh[j]);
                const T dah = dh * (T(1) - zg[j]) * fa.d(hh[j]);
                const T drg = dah * e[j];
                const T pz = dzg * fr.d(zg[j]), pr = drg * fr.d(rg[j]);
                dz[j] = pz;
                dz[u + j] = pr;
                dz[2 * u + j] = dah;
                drr[j] = pz;
                drr[u + j] = pr;
                drr[2 * u + j] = dah * rg[j];
                d[j] = dh * zg[j];
            }
            return;
        }
        // reset_after=False: d(r h) = dah U_h^T goes through r to h_{s-1} and to r
#pragma omp simd
        for (idx j = 0; j < u; ++j) dz[2 * u + j] = d[j] * (T(1) - zg[j]) * fa.d(hh[j]);
        const T* Uh = W[1] + 2 * u;
        for (idx j = 0; j < u; ++j) {  // tmp = dah U_h^T (one row)
            T acc = T(0);
            for (idx k = 0; k < u; ++k) acc += dz[2 * u + k] * Uh[j * G_ + k];
            tmp[j] = acc;
        }
        if (mr) {
#pragma omp simd
            for (idx j = 0; j < u; ++j) {
                const T dh = d[j];
                dz[j] = dh * (hp[j] - hh[j]) * fr.d(zg[j]);
                dz[u + j] = tmp[j] * hp[j] * mr[j] * fr.d(rg[j]);
                d[j] = dh * zg[j] + tmp[j] * rg[j] * mr[j];
            }
            return;
        }
#pragma omp simd
        for (idx j = 0; j < u; ++j) {
            const T dh = d[j];
            dz[j] = dh * (hp[j] - hh[j]) * fr.d(zg[j]);
            dz[u + j] = tmp[j] * hp[j] * fr.d(rg[j]);
            d[j] = dh * zg[j] + tmp[j] * rg[j];
        }
    }

    Cell cell_ = Cell::rnn;
    idx u_ = 0, T_ = 0, F_ = 0, G_ = 0, E_ = 0;
    Act act_ = Act::tanh, rec_ = Act::logistic;
    bool bias_ = true, seq_ = false, back_ = false, trainable_ = true, reset_after_ = false;
    bool use_mask_ = false;             // skip the steps the step mask marks (Keras masking)
    int index_ = 0;                     // keys this layer's dropout counters
    double drop_ = 0.0, rdrop_ = 0.0;   // input / recurrent dropout rates
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_recurrent(const Config& c, const Shape& in, int index) {
    return std::make_unique<Recurrent<T>>(c, in, index);
}
template std::unique_ptr<Layer<float>> make_recurrent(const Config&, const Shape&, int);
template std::unique_ptr<Layer<double>> make_recurrent(const Config&, const Shape&, int);

}  // namespace neuraxis
