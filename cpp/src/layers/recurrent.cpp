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
#include "neuraxis/layer.hpp"
#include "neuraxis/simd.hpp"

namespace neuraxis {

namespace {

enum class Cell { rnn, lstm, gru };

template <class T>
NX_INLINE T act_f(Act k, T v) {
    switch (k) {
        case Act::logistic: return v >= T(0) ? T(1) / (T(1) + std::exp(-v))
                                             : std::exp(v) / (T(1) + std::exp(v));
        case Act::tanh: return std::tanh(v);
        case Act::relu: return v > T(0) ? v : T(0);
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
    Recurrent(const Config& c, const Shape& in) {
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
    // predict: the saved state; training's backward: DZ (twice for GRU reset_after), dh, dc, the
    // per-step recurrent product
    idx work_bytes(idx m) const override {
        const idx dz = m * T_ * G_ * (reset_after_ ? 2 : 1);
        return (m * state_per_row() + dz + 3 * m * u_ + m * G_) * idx(sizeof(T));
    }
    double macs_per_row() const override { return double(T_) * double(G_) * double(F_ + u_); }

    void forward(const Rows& r, const T* const* W, const T* x, T* y, std::byte* saved) const override {
        const idx m = r.m;
        if (r.nonfinite && !all_finite(x, m * T_ * F_)) *r.nonfinite = true;
        T* st = saved ? reinterpret_cast<T*>(saved) : reinterpret_cast<T*>(r.work);
        T* Z = st;                    // (m, T, G): gates, activated in place
        T* H = Z + m * T_ * G_;       // (m, T, u): h_{s-1} at step s's position
        T* E = H + m * T_ * u_;       // (m, T, u): c_{s-1}, or the GRU candidate term
        T* R = reinterpret_cast<T*>(r.work) + (saved ? 0 : m * state_per_row());  // (m, G)
        const T* Wk = W[0];
        const T* U = W[1];
        const T* b = bias_ ? W[2] : nullptr;
        // Z = X W (+ the input bias)
        gemm1(false, false, int(m * T_), int(G_), int(F_), T(1), x, int(F_), Wk, int(G_), T(0), Z,
              int(G_));
        if (b)
            for (idx row = 0; row < m * T_; ++row) {
                T* z = Z + row * G_;
                for (idx j = 0; j < G_; ++j) z[j] += b[j];
            }
        const idx ldz = T_ * G_, ldh = T_ * u_;
        for (idx s = 0; s < T_; ++s) {
            const idx t = back_ ? T_ - 1 - s : s;
            T* Zt = Z + t * G_;
            T* Ht = H + t * u_;
            T* Et = E + t * u_;
            if (s == 0) {
                for (idx i = 0; i < m; ++i) {
                    std::fill(Ht + i * ldh, Ht + i * ldh + u_, T(0));
                    if (E_) std::fill(Et + i * ldh, Et + i * ldh + u_, T(0));
                }
            }
            // the recurrent product of h_{s-1} (zero at s = 0)
            if (cell_ == Cell::gru) {
                if (reset_after_) {
                    if (s > 0)
                        gemm1(false, false, int(m), int(G_), int(u_), T(1), Ht, int(ldh), U,
                              int(G_), T(0), R, int(G_));
                    else
                        std::fill(R, R + m * G_, T(0));
                } else if (s > 0) {  // z and r parts now, the candidate's after r
                    gemm1(false, false, int(m), int(2 * u_), int(u_), T(1), Ht, int(ldh), U,
                          int(G_), T(1), Zt, int(ldz));
                }
            } else if (s > 0) {
                gemm1(false, false, int(m), int(G_), int(u_), T(1), Ht, int(ldh), U, int(G_), T(1),
                      Zt, int(ldz));
            }
            const idx tn = s + 1 < T_ ? (back_ ? t - 1 : t + 1) : -1;  // where h_s is read next
            for (idx i = 0; i < m; ++i) {
                T* z = Zt + i * ldz;
                const T* hp = Ht + i * ldh;
                T* e = Et + i * ldh;
                T* hn = tn >= 0 ? H + i * ldh + tn * u_ : nullptr;
                T* en = tn >= 0 ? E + i * ldh + tn * u_ : nullptr;
                T* out = seq_ ? y + i * T_ * u_ + s * u_ : (s + 1 == T_ ? y + i * u_ : nullptr);
                step_forward(z, hp, e, R + i * G_, b, hn, en, out);
            }
            if (cell_ == Cell::gru && !reset_after_) {
                // candidate: x_h + (r * h_{s-1}) U_h, then the cell (hn / out) for every row
                if (s > 0)
                    gemm1(false, false, int(m), int(u_), int(u_), T(1), Et, int(ldh), U + 2 * u_,
                          int(G_), T(1), Zt + 2 * u_, int(ldz));
                for (idx i = 0; i < m; ++i) {
                    T* hn = tn >= 0 ? H + i * ldh + tn * u_ : nullptr;
                    T* out = seq_ ? y + i * T_ * u_ + s * u_ : (s + 1 == T_ ? y + i * u_ : nullptr);
                    gru_finish(Zt + i * ldz, Ht + i * ldh, hn, out);
                }
            }
        }
    }

    void backward(const Rows& r, const T* const* W, const T* x, const T*, const std::byte* saved,
                  T* dy, T* dx, T* const* dW) const override {
        const idx m = r.m;
        const T* Z = reinterpret_cast<const T*>(saved);
        const T* H = Z + m * T_ * G_;
        const T* E = H + m * T_ * u_;
        T* DZ = reinterpret_cast<T*>(r.work);          // (m, T, G): dL/d(x-side pre-activations)
        T* DR = reset_after_ ? DZ + m * T_ * G_ : DZ;  // GRU reset_after: the recurrent side's
        T* dh = DZ + m * T_ * G_ * (reset_after_ ? 2 : 1);  // (m, u): running dL/dh
        T* dc = dh + m * u_;                           // (m, u): running dL/dc (LSTM)
        T* tmp = dc + m * u_;                          // (m, u)
        const T* U = W[1];
        const idx ldz = T_ * G_, ldh = T_ * u_;
        std::fill(dh, dh + 2 * m * u_, T(0));
        for (idx s = T_ - 1; s >= 0; --s) {
            const idx t = back_ ? T_ - 1 - s : s;
            for (idx i = 0; i < m; ++i) {
                T* d = dh + i * u_;
                const T* g = seq_ ? dy + i * T_ * u_ + s * u_ : (s + 1 == T_ ? dy + i * u_ : nullptr);
                if (g)
                    for (idx j = 0; j < u_; ++j) d[j] += g[j];
                step_backward(Z + i * ldz + t * G_, H + i * ldh + t * u_, E + i * ldh + t * u_, d,
                              dc + i * u_, DZ + i * ldz + t * G_, DR + i * ldz + t * G_,
                              tmp + i * u_, W);
            }
            if (s == 0) break;
            // dh_{s-1} = (the direct part left in dh) + DR_s U^T
            if (cell_ == Cell::gru && !reset_after_) {
                // z, r parts through U_zr; the candidate's went through (r * h) in step_backward
                gemm1(false, true, int(m), int(u_), int(2 * u_), T(1), DZ + t * G_, int(ldz), U,
                      int(G_), T(1), dh, int(u_));
            } else {
                gemm1(false, true, int(m), int(u_), int(G_), T(1), DR + t * G_, int(ldz), U,
                      int(G_), T(1), dh, int(u_));
            }
        }
        const int mT = int(m * T_);
        if (dW[0])
            gemm1(true, false, int(F_), int(G_), mT, T(1), x, int(F_), DZ, int(G_), T(0), dW[0],
                  int(G_));
        if (dW[1]) {
            if (cell_ == Cell::gru && !reset_after_) {
                gemm1(true, false, int(u_), int(2 * u_), mT, T(1), H, int(u_), DZ, int(G_), T(0),
                      dW[1], int(G_));
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
        if (dx)
            gemm1(false, true, mT, int(F_), int(G_), T(1), DZ, int(G_), W[0], int(G_), T(0), dx,
                  int(F_));
    }

  private:
    idx state_per_row() const { return T_ * (G_ + u_ + E_); }

    // One row, one step: z (G) holds x W + b (+ h U for rnn/lstm/gru reset_before's z, r);
    // activates the gates in place, writes h_s to hn (next step's h_{s-1}) and out.
    NX_INLINE void step_forward(T* z, const T* hp, T* e, const T* rrow, const T* b, T* hn,
                                T* en, T* out) const {
        const idx u = u_;
        if (cell_ == Cell::rnn) {
            for (idx j = 0; j < u; ++j) {
                const T h = act_f(act_, z[j]);
                z[j] = h;
                if (hn) hn[j] = h;
                if (out) out[j] = h;
            }
            return;
        }
        if (cell_ == Cell::lstm) {
            T* zi = z;
            T* zf = z + u;
            T* zc = z + 2 * u;
            T* zo = z + 3 * u;
            for (idx j = 0; j < u; ++j) {
                const T ig = act_f(rec_, zi[j]), fg = act_f(rec_, zf[j]);
                const T gg = act_f(act_, zc[j]), og = act_f(rec_, zo[j]);
                zi[j] = ig;
                zf[j] = fg;
                zc[j] = gg;
                zo[j] = og;
                const T c = fg * e[j] + ig * gg;
                const T h = og * act_f(act_, c);
                if (en) en[j] = c;
                if (hn) hn[j] = h;
                if (out) out[j] = h;
            }
            return;
        }
        // GRU
        T* zz = z;
        T* zr = z + u;
        T* zh = z + 2 * u;
        T* rh = e;  // this step's E slot
        if (reset_after_) {
            const T* rb = b ? b + G_ : nullptr;  // the recurrent bias row
            for (idx j = 0; j < u; ++j) {
                const T az = rrow[j] + (rb ? rb[j] : T(0));
                const T ar = rrow[u + j] + (rb ? rb[u + j] : T(0));
                const T ah = rrow[2 * u + j] + (rb ? rb[2 * u + j] : T(0));
                const T zg = act_f(rec_, zz[j] + az), rg = act_f(rec_, zr[j] + ar);
                const T hh = act_f(act_, zh[j] + rg * ah);
                zz[j] = zg;
                zr[j] = rg;
                zh[j] = hh;
                rh[j] = ah;
                const T h = zg * hp[j] + (T(1) - zg) * hh;
                if (hn) hn[j] = h;
                if (out) out[j] = h;
            }
            return;
        }
        // reset_after=False: z, r now; the candidate needs (r * h_{s-1}) U_h first
        for (idx j = 0; j < u; ++j) {
            const T zg = act_f(rec_, zz[j]), rg = act_f(rec_, zr[j]);
            zz[j] = zg;
            zr[j] = rg;
            rh[j] = rg * hp[j];
        }
    }

    // GRU reset_after=False, after the candidate product: hh and h
    NX_INLINE void gru_finish(T* z, const T* hp, T* hn, T* out) const {
        const idx u = u_;
        for (idx j = 0; j < u; ++j) {
            const T zg = z[j];
            const T hh = act_f(act_, z[2 * u + j]);
            z[2 * u + j] = hh;
            const T h = zg * hp[j] + (T(1) - zg) * hh;
            if (hn) hn[j] = h;
            if (out) out[j] = h;
        }
    }

    // One row, one step backward. d: dL/dh_s in, dL/dh_{s-1}'s direct part out.
    NX_INLINE void step_backward(const T* z, const T* hp, const T* e, T* d, T* dcr, T* dz, T* dr,
                                 T* tmp, const T* const* W) const {
        const idx u = u_;
        if (cell_ == Cell::rnn) {
            for (idx j = 0; j < u; ++j) {
                dz[j] = d[j] * act_d(act_, z[j]);
                d[j] = T(0);
            }
            return;
        }
        if (cell_ == Cell::lstm) {
            const T* ig = z;
            const T* fg = z + u;
            const T* gg = z + 2 * u;
            const T* og = z + 3 * u;
            for (idx j = 0; j < u; ++j) {
                const T c = fg[j] * e[j] + ig[j] * gg[j];
                const T tc = act_f(act_, c);
                const T dh = d[j];
                const T dc = dcr[j] + dh * og[j] * act_d(act_, tc);
                dz[j] = dc * gg[j] * act_d(rec_, ig[j]);
                dz[u + j] = dc * e[j] * act_d(rec_, fg[j]);
                dz[2 * u + j] = dc * ig[j] * act_d(act_, gg[j]);
                dz[3 * u + j] = dh * tc * act_d(rec_, og[j]);
                dcr[j] = dc * fg[j];
                d[j] = T(0);
            }
            return;
        }
        const T* zg = z;
        const T* rg = z + u;
        const T* hh = z + 2 * u;
        if (reset_after_) {
            for (idx j = 0; j < u; ++j) {
                const T dh = d[j];
                const T dzg = dh * (hp[j] - hh[j]);
                const T dah = dh * (T(1) - zg[j]) * act_d(act_, hh[j]);
                const T drg = dah * e[j];
                const T pz = dzg * act_d(rec_, zg[j]), pr = drg * act_d(rec_, rg[j]);
                dz[j] = pz;
                dz[u + j] = pr;
                dz[2 * u + j] = dah;
                dr[j] = pz;
                dr[u + j] = pr;
                dr[2 * u + j] = dah * rg[j];
                d[j] = dh * zg[j];
            }
            return;
        }
        // reset_after=False: d(r h) = dah U_h^T goes through r to h_{s-1} and to r
        for (idx j = 0; j < u; ++j) {
            const T dh = d[j];
            dz[2 * u + j] = dh * (T(1) - zg[j]) * act_d(act_, hh[j]);
        }
        const T* Uh = W[1] + 2 * u;
        for (idx j = 0; j < u; ++j) {  // tmp = dah U_h^T (one row)
            T s = T(0);
            for (idx k = 0; k < u; ++k) s += dz[2 * u + k] * Uh[j * G_ + k];
            tmp[j] = s;
        }
        for (idx j = 0; j < u; ++j) {
            const T dh = d[j];
            const T dzg = dh * (hp[j] - hh[j]);
            dz[j] = dzg * act_d(rec_, zg[j]);
            dz[u + j] = tmp[j] * hp[j] * act_d(rec_, rg[j]);
            d[j] = dh * zg[j] + tmp[j] * rg[j];
        }
        (void)dr;
    }

    Cell cell_ = Cell::rnn;
    idx u_ = 0, T_ = 0, F_ = 0, G_ = 0, E_ = 0;
    Act act_ = Act::tanh, rec_ = Act::logistic;
    bool bias_ = true, seq_ = false, back_ = false, trainable_ = true, reset_after_ = false;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_recurrent(const Config& c, const Shape& in) {
    return std::make_unique<Recurrent<T>>(c, in);
}
template std::unique_ptr<Layer<float>> make_recurrent(const Config&, const Shape&);
template std::unique_ptr<Layer<double>> make_recurrent(const Config&, const Shape&);

}  // namespace neuraxis
