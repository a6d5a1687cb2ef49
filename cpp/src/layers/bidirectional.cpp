// Bidirectional(recurrent layer): the layer on the sequence and a copy with
// go_backwards flipped, outputs merged (concat / sum / mul / ave) as Keras: with
// return_sequences the backward layer's output is flipped back to input order first.
// Parameters: the forward layer's, then the backward one's.
#include <cstring>

#include "neuraxis/layer.hpp"

namespace neuraxis {

namespace {

enum class Merge { concat, sum, mul, ave };

template <class T>
class Bidirectional final : public Layer<T> {
  public:
    Bidirectional(const Config& c, const Shape& in, int index) {
        const std::string cell = c.text("layer");
        if (cell != "simple_rnn" && cell != "lstm" && cell != "gru")
            c.fail("'layer' must be simple_rnn, lstm or gru, got '" + cell + "'");
        const std::string mode = c.text("merge_mode", "concat");
        if (mode == "concat") merge_ = Merge::concat;
        else if (mode == "sum") merge_ = Merge::sum;
        else if (mode == "mul") merge_ = Merge::mul;
        else if (mode == "ave") merge_ = Merge::ave;
        else c.fail("'merge_mode' must be concat, sum, mul or ave, got '" + mode + "'");
        const bool back = c.flag("go_backwards", false);
        const std::vector<std::string> drop{"layer", "merge_mode", "go_backwards"};
        // distinct dropout counters for the two directions
        fwd_ = make_recurrent<T>(c.derived(c.where() + " (forward)",
                                           {{"kind", cell}, {"go_backwards", back}}, drop),
                                 in, index);
        bwd_ = make_recurrent<T>(c.derived(c.where() + " (backward)",
                                           {{"kind", cell}, {"go_backwards", !back}}, drop),
                                 in, index + (1 << 20));
        const Shape& o = fwd_->out_shape();
        seq_ = o.size() == 2;
        steps_ = seq_ ? o[0] : 1;
        u_ = o.back();
        this->in_ = in;
        this->out_ = o;
        if (merge_ == Merge::concat) this->out_.back() = 2 * u_;
        nf_ = fwd_->params().size();
    }

    std::vector<ParamSpec> params() const override {
        std::vector<ParamSpec> p = fwd_->params();
        for (const auto& q : bwd_->params()) p.push_back(q);
        return p;
    }
    idx saved_bytes_per_row() const override {
        return fwd_->saved_bytes_per_row() + bwd_->saved_bytes_per_row() + 2 * inner() * idx(sizeof(T));
    }
    idx work_bytes(idx m) const override {
        const idx inner_work = std::max(fwd_->work_bytes(m), bwd_->work_bytes(m));
        return inner_work + m * (2 * inner() + this->in_size()) * idx(sizeof(T));
    }
    double macs_per_row() const override { return fwd_->macs_per_row() + bwd_->macs_per_row(); }

    void forward(const Rows& r, const T* const* W, const T* x, T* y, std::byte* saved) const override {
        const idx m = r.m, n = inner();
        T* own = own_work(r);
        T* yf = saved ? outputs(r, saved) : own;
        T* yb = yf + m * n;
        Rows ri = r;
        fwd_->forward(ri, W, x, yf, saved);
        ri.nonfinite = nullptr;
        bwd_->forward(ri, W + nf_, x, yb,
                      saved ? saved + m * fwd_->saved_bytes_per_row() : nullptr);
        const idx width = this->out_.back();
        for (idx i = 0; i < m; ++i)
            for (idx t = 0; t < steps_; ++t) {
                const T* a = yf + (i * steps_ + t) * u_;
                const T* b = yb + (i * steps_ + (seq_ ? steps_ - 1 - t : t)) * u_;
                T* o = y + (i * steps_ + t) * width;
                switch (merge_) {
                    case Merge::concat:
                        std::memcpy(o, a, sizeof(T) * u_);
                        std::memcpy(o + u_, b, sizeof(T) * u_);
                        break;
                    case Merge::sum: for (idx j = 0; j < u_; ++j) o[j] = a[j] + b[j]; break;
                    case Merge::mul: for (idx j = 0; j < u_; ++j) o[j] = a[j] * b[j]; break;
                    case Merge::ave: for (idx j = 0; j < u_; ++j) o[j] = (a[j] + b[j]) / T(2); break;
                }
            }
    }

    void backward(const Rows& r, const T* const* W, const T* x, const T*, const std::byte* saved,
                  T* dy, T* dx, T* const* dW) const override {
        const idx m = r.m, n = inner();
        const T* yf = outputs(r, const_cast<std::byte*>(saved));
        const T* yb = yf + m * n;
        T* own = own_work(r);
        T* df = own;
        T* db = df + m * n;
        T* dx2 = db + m * n;
        const idx width = this->out_.back();
        for (idx i = 0; i < m; ++i)
            for (idx t = 0; t < steps_; ++t) {
                const idx tb = seq_ ? steps_ - 1 - t : t;
                const T* g = dy + (i * steps_ + t) * width;
                T* a = df + (i * steps_ + t) * u_;
                T* b = db + (i * steps_ + tb) * u_;
                const T* ya = yf + (i * steps_ + t) * u_;
                const T* yb_ = yb + (i * steps_ + tb) * u_;
                for (idx j = 0; j < u_; ++j) {
                    switch (merge_) {
                        case Merge::concat: a[j] = g[j]; b[j] = g[u_ + j]; break;
                        case Merge::sum: a[j] = b[j] = g[j]; break;
                        case Merge::mul: a[j] = g[j] * yb_[j]; b[j] = g[j] * ya[j]; break;
                        case Merge::ave: a[j] = b[j] = g[j] / T(2); break;
                    }
                }
            }
        fwd_->backward(r, W, x, yf, saved, df, dx, dW);
        bwd_->backward(r, W + nf_, x, yb, saved + m * fwd_->saved_bytes_per_row(), db,
                       dx ? dx2 : nullptr, dW + nf_);
        if (dx)
            for (idx e = 0; e < m * this->in_size(); ++e) dx[e] += dx2[e];
    }

  private:
    idx inner() const { return steps_ * u_; }  // one direction's output per row
    // the two outputs kept for backward, after both inner layers' saved state
    T* outputs(const Rows& r, std::byte* saved) const {
        return reinterpret_cast<T*>(
            saved + r.m * (fwd_->saved_bytes_per_row() + bwd_->saved_bytes_per_row()));
    }
    // this layer's scratch, after what the inner layers use
    T* own_work(const Rows& r) const {
        return reinterpret_cast<T*>(
            r.work + std::max(fwd_->work_bytes(r.m), bwd_->work_bytes(r.m)));
    }

    std::unique_ptr<Layer<T>> fwd_, bwd_;
    Merge merge_ = Merge::concat;
    bool seq_ = false;
    idx steps_ = 1, u_ = 0;
    std::size_t nf_ = 0;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_bidirectional(const Config& c, const Shape& in, int index) {
    return std::make_unique<Bidirectional<T>>(c, in, index);
}
template std::unique_ptr<Layer<float>> make_bidirectional(const Config&, const Shape&, int);
template std::unique_ptr<Layer<double>> make_bidirectional(const Config&, const Shape&, int);

}  // namespace neuraxis
