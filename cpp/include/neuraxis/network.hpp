// The engine: an ordered stack of layers, a fused output loss, preallocated
// training buffers and the train / evaluate / predict loops.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "neuraxis/kernels.hpp"

namespace neuraxis {

struct LayerSpec {
    idx in = 0, out = 0;  // dense: fan-in, fan-out
    Activation act;       // applied after the affine map
};

// Optimizer configuration plus the step counter it advances.
struct OptConfig {
    std::string kind = "adam";  // "adam" | "sgd"
    double learning_rate = 1e-3;
    double beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-8;
    double momentum = 0.9;
    bool nesterov = true;
    std::int64_t t = 0;  // adam: number of steps taken
};

template <class T>
struct OptState {
    // adam: m and v per parameter; sgd: velocity per parameter (in `m`).
    std::vector<T*> m, v;
};

template <class T>
class Network {
  public:
    // `layers` are dense layers; the last one's activation must be the loss's.
    Network(std::vector<LayerSpec> layers, Loss loss);

    idx n_in() const { return layers_.front().in; }
    idx n_out() const { return layers_.back().out; }
    std::size_t n_layers() const { return layers_.size(); }
    const std::vector<LayerSpec>& layers() const { return layers_; }
    Loss loss() const { return loss_; }

    // One epoch of mini-batch training. `params` is [W0, b0, W1, b1, ...];
    // rows are visited in `perm` order (all rows in order when null). Returns
    // the size-weighted mean of the batch objectives. `interrupted` is polled
    // between batches; when it returns true the epoch stops and *stopped is set.
    double fit_epoch(const std::vector<T*>& params, OptConfig& opt, OptState<T>& state,
                     const T* X, const T* Y, const T* sw, idx n, const std::int64_t* perm,
                     idx batch, double alpha, const std::function<bool()>& interrupted,
                     bool* stopped);

    // Full-batch objective and its gradient (grads laid out like params).
    double loss_grad(const std::vector<T*>& params, const std::vector<T*>& grads, const T* X,
                     const T* Y, const T* sw, idx n, double alpha);

    // Output-layer activations for n rows; thread safe (own buffers per call).
    // Returns true when the first layer's pre-activation held a NaN or inf
    // (always the case when X does), so the caller can validate X only then.
    bool predict(const std::vector<T*>& params, const T* X, idx n, T* out) const;

  private:
    // Forward on m rows starting from x; activations land in acts[1..L].
    void forward(const std::vector<T*>& params, const T* x, idx m, std::vector<T*>& acts,
                 bool* nonfinite = nullptr) const;
    // Objective of a batch (sumsq = current sum of squared weights) and its
    // gradients; with fold_reg the L2 gradient is left to the optimizer step.
    double backprop(const std::vector<T*>& params, const std::vector<T*>& grads, const T* x,
                    const T* y, const T* sw, idx m, double alpha, double sumsq, bool fold_reg,
                    double* sw_sum_out);
    double sum_sq_weights(const std::vector<T*>& params) const;
    void reserve(idx batch);
    void ensure_thread_grads(int nt);

    std::vector<LayerSpec> layers_;
    Loss loss_;
    idx capacity_ = 0;
    std::vector<std::vector<T>> acts_, deltas_, grads_;
    std::vector<std::vector<std::vector<T>>> tgrads_;  // per extra thread, like grads_
    std::vector<T> xbuf_, ybuf_, swbuf_;
};

}  // namespace neuraxis
