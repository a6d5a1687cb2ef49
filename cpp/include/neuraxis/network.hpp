// The engine: an ordered stack of layers, a fused output loss, preallocated
// training buffers and the train / evaluate / predict loops. Both fronts
// (scikit-learn's MLP and Keras's Sequential) build one of these.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "neuraxis/kernels.hpp"

namespace neuraxis {

enum class LayerKind { dense, activation };

// The dropout keep-scale of element (row, col) of layer `layer` under `seed`:
// 0 with probability `rate`, else 1 / (1 - rate). Counter based, so a mask
// does not depend on how rows are split over threads.
double dropout_scale(std::uint64_t seed, std::uint64_t layer, std::uint64_t row, std::uint64_t col,
                     double rate);

struct LayerSpec {
    LayerKind kind = LayerKind::dense;
    idx in = 0, out = 0;   // dense: fan-in, fan-out; activation: in == out
    Activation act;        // applied after the affine map (dense) or alone
    double dropout = 0.0;  // inverted dropout on this layer's output, training only
    bool bias = true;      // dense: has a bias vector
};

// How a batch's summed loss is normalised: by the sum of sample weights
// (scikit-learn) or by the number of rows (Keras's sum_over_batch_size).
enum class Reduction { weights, batch_size };

// Optimizer configuration plus the step counter it advances.
struct OptConfig {
    std::string kind = "adam";  // "adam" | "sgd" | "rmsprop"
    double learning_rate = 1e-3;
    double beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-8;
    double momentum = 0.9;
    bool nesterov = true;
    double rho = 0.9;
    std::int64_t t = 0;  // steps taken
};

template <class T>
struct OptState {
    // adam: m, v; sgd: velocity in m; rmsprop: mean squares in m, momentum in v (optional)
    std::vector<T*> m, v;
};

// What a run of batches (or an evaluation) adds up.
struct BatchTotals {
    double loss_sum = 0.0;  // sum over batches of batch objective * batch rows
    idx rows = 0;
    std::vector<double> metric_sums;  // sum_i w_i * metric_i
    double weight_sum = 0.0;          // sum_i w_i
    bool interrupted = false;
};

template <class T>
class Network {
  public:
    Network(std::vector<LayerSpec> layers, Loss loss, Reduction reduction = Reduction::weights);

    idx n_in() const { return layers_.front().in; }
    idx n_out() const { return layers_.back().out; }
    // Sizes of the parameter arrays, in order: W then b (if any) of each dense layer.
    const std::vector<idx>& param_sizes() const { return psize_; }

    // Batches [first, first + count) of an epoch whose rows are visited in
    // `perm` order (natural order when null); count < 0 means to the end.
    // `interrupted` is polled between batches.
    BatchTotals train_batches(const std::vector<T*>& params, OptConfig& opt, OptState<T>& state,
                              const T* X, const T* Y, const T* sw, idx n, const std::int64_t* perm,
                              idx batch, idx first, idx count, double alpha,
                              const std::vector<MetricSpec>& metrics, std::uint64_t seed,
                              const std::function<bool()>& interrupted);

    // Loss and metrics without training (no dropout), in batches.
    BatchTotals evaluate(const std::vector<T*>& params, const T* X, const T* Y, const T* sw, idx n,
                         idx batch, const std::vector<MetricSpec>& metrics) const;

    // Full-batch objective and its gradient (grads laid out like params).
    double loss_grad(const std::vector<T*>& params, const std::vector<T*>& grads, const T* X,
                     const T* Y, const T* sw, idx n, double alpha);

    // Output-layer activations for n rows; thread safe (own buffers per call).
    // Returns true when the first layer's pre-activation held a NaN or inf
    // (always the case when X does), so the caller can validate X only then.
    bool predict(const std::vector<T*>& params, const T* X, idx n, T* out) const;

  private:
    // Forward on m rows; outs[l] receives layer l's output (after dropout
    // when masks are given). pre[l] keeps the activation output before dropout.
    void forward(const std::vector<T*>& params, const T* x, idx m, const std::vector<T*>& pre,
                 const std::vector<T*>& outs, const std::vector<T*>& masks, idx row0,
                 std::uint64_t seed, bool* nonfinite) const;
    // Full-batch objective and gradient (lbfgs path), L2 term included.
    double backprop(const std::vector<T*>& params, const std::vector<T*>& grads, const T* x,
                    const T* y, const T* sw, idx m, double alpha, double sumsq);
    // Forward + backward of one thread's rows; returns its sum of w_i * loss_i.
    double rows_pass(const std::vector<T*>& params, const std::vector<T*>& G, const T* x,
                     const T* y, const T* sw, idx r0, idx r1, double scale, bool use_masks,
                     idx row0, std::uint64_t seed, const std::vector<MetricSpec>* metrics,
                     double* met);
    const std::vector<T*>& thread_grads(int t, const std::vector<T*>& grads);
    int threads_for(idx rows) const;
    double sum_sq_weights(const std::vector<T*>& params) const;
    void reserve(idx batch);
    void ensure_thread_grads(int nt);
    bool canonical() const { return layers_.back().act.kind == loss_output_activation(loss_); }

    std::vector<LayerSpec> layers_;
    Loss loss_;
    Reduction reduction_;
    std::vector<int> pidx_;   // per layer: index of its W in params, or -1
    std::vector<int> bidx_;   // per layer: index of its bias in params, or -1
    std::vector<char> is_weight_;  // per param: a kernel (L2-penalised) rather than a bias
    std::vector<idx> psize_;  // per param: element count
    bool any_dropout_ = false;
    idx capacity_ = 0;
    std::vector<std::vector<T>> pre_, outs_, masks_, deltas_, grads_;
    std::vector<std::vector<std::vector<T>>> tgrads_;  // per extra thread, like grads_
    struct Scratch {  // per thread: layer pointers for its rows, its gradient arrays
        std::vector<T*> pre, outs, masks, deltas, G;
    };
    std::vector<Scratch> scratch_;
    const std::vector<T*> no_masks_;  // forward's "no dropout" argument
    std::vector<T> xbuf_, ybuf_, swbuf_;
};

}  // namespace neuraxis
