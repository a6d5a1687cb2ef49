// The engine: an ordered stack of layers (layer.hpp), a fused output loss,
// preallocated training buffers and the train / evaluate / predict loops.
// Both fronts (scikit-learn's MLP and Keras's Sequential) build one of these.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <string>
#include <vector>

#include "neuraxis/layer.hpp"

namespace neuraxis {

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
    // Keras's options (optimizers_extra.hpp); the defaults leave them off.
    std::string schedule;  // "" (constant learning_rate) or a schedule's name
    std::vector<double> schedule_args, schedule_boundaries, schedule_values;
    double clipnorm = 0.0, clipvalue = 0.0, global_clipnorm = 0.0, weight_decay = 0.0;
    bool amsgrad = false, centered = false;
    double u_product = 1.0;  // Nadam's running product of momentum factors
    std::vector<double> reg_l1, reg_l2;  // per parameter (empty: no penalty)
    std::vector<int> no_decay;           // per parameter: 1 = excluded from weight_decay
    double last_lr = 0.0;     // out: the learning rate of the last step taken
};
struct StepScalars;

template <class T>
struct OptState {
    // adam: m, v; sgd: velocity in m; rmsprop: mean squares in m, momentum in v (optional)
    // s: a third slot (Adam's amsgrad maxima, centered RMSprop's mean gradients)
    std::vector<T*> m, v, s;
};

// n rows of inputs (n x prod(input shape)), targets (n x prod(output shape)),
// optional sample weights (n) and sequence lengths (n).
template <class T>
struct Data {
    const T* X = nullptr;
    const T* Y = nullptr;
    const T* sw = nullptr;
    const std::int32_t* lengths = nullptr;
    idx n = 0;
};

// What a run of batches (or an evaluation) adds up.
struct BatchTotals {
    double loss_sum = 0.0;  // sum over batches of batch objective * batch rows
    idx rows = 0;
    std::vector<double> metric_sums;  // sum_i w_i * metric_i
    double weight_sum = 0.0;          // sum_i w_i
    // The metrics' denominators: rows and weight_sum, or with a masked output the
    // rows' and weights' shares of real positions (sum_i w_i * real_i / positions).
    double metric_rows = 0.0, metric_weight = 0.0;
    bool interrupted = false;
};

// Elements of a gradient computed and applied at once (fits in L2 with its
// weights and optimizer state).
constexpr idx kTileElems = 65536;
// Up to this many rows per thread, training runs the first layer's forward by
// feature slices (Layer::forward_by_slice).
constexpr idx kSlicedFirstRows = 32;

template <class T>
class Network {
  public:
    // `layers`: one Config per layer (its "kind" and options), applied in order
    // to samples of shape `input`.
    Network(Shape input, const std::vector<Config>& layers, Loss loss,
            Reduction reduction = Reduction::weights);

    const Shape& input_shape() const { return input_; }
    const Shape& output_shape() const { return layers_.back()->out_shape(); }
    idx n_in() const { return numel(input_); }
    idx n_out() const { return numel(output_shape()); }
    std::size_t n_layers() const { return layers_.size(); }
    const Layer<T>& layer(std::size_t l) const { return *layers_[l]; }
    // Every parameter array, in order (layer by layer, each in its params() order).
    const std::vector<idx>& param_sizes() const { return psize_; }
    const std::vector<ParamSpec>& param_specs() const { return pspec_; }

    // Batches [first, first + count) of an epoch whose rows are visited in
    // `perm` order (natural order when null); count < 0 means to the end.
    // `interrupted` is polled between batches.
    BatchTotals train_batches(const std::vector<T*>& params, OptConfig& opt, OptState<T>& state,
                              const Data<T>& data, const std::int64_t* perm, idx batch, idx first,
                              idx count, double alpha, const std::vector<MetricSpec>& metrics,
                              std::uint64_t seed, const std::function<bool()>& interrupted);

    // Loss and metrics without training (no dropout), in batches.
    BatchTotals evaluate(const std::vector<T*>& params, const Data<T>& data, idx batch,
                         const std::vector<MetricSpec>& metrics) const;

    // Full-batch objective and its gradient (grads laid out like params).
    double loss_grad(const std::vector<T*>& params, const std::vector<T*>& grads,
                     const Data<T>& data, double alpha);

    // Outputs for n rows; thread safe (own buffers per call). `training`
    // turns dropout on (masks from `seed`). Returns true when the first
    // computing layer saw a NaN or inf (always the case when X holds one),
    // so the caller can validate X only then.
    bool predict(const std::vector<T*>& params, const T* X, const std::int32_t* lengths, idx n,
                 T* out, bool training = false, std::uint64_t seed = 0,
                 std::uint8_t* mask_out = nullptr) const;

    // The step mask reaches the output (Keras: a masked sequence output): the loss
    // and the metrics count the real positions only, as Keras's apply_mask (the
    // batch's loss is sum sw_i m_it l_it / sum m_it). Needs one output position
    // per mask step.
    void set_loss_mask(bool on);
    bool loss_mask() const { return loss_mask_; }

  private:
    struct Scratch {  // per thread: layer pointers for its rows, its gradient arrays
        std::vector<T*> outs, deltas, G;
        std::vector<std::byte*> saved;
        std::vector<const T*> parts;  // every thread's part, at this thread's rows
        std::vector<Sync> sync;       // per layer: its share of the batch (coupled layers)
    };
    void forward(const std::vector<T*>& params, const Rows& r, const T* x,
                 const std::vector<T*>& outs, const std::vector<std::byte*>& saved,
                 bool* nonfinite, const std::vector<Sync>* sync = nullptr,
                 std::size_t from = 0) const;
    // Forward + backward of rows [r0, r1) of a gathered batch on thread t;
    // returns its sum of w_i * loss_i and adds its metric sums to met.
    double rows_pass(int t, const std::vector<T*>& params, const Data<T>& batch, idx r0, idx r1,
                     double scale, bool training, idx row0, std::uint64_t seed,
                     const std::vector<MetricSpec>* metrics, double* met,
                     std::size_t from = 0);
    double backprop(const std::vector<T*>& params, const std::vector<T*>& grads,
                    const Data<T>& data, double alpha, double sumsq);
    void set_thread_grads(int t, const std::vector<T*>& grads, bool training);
    void set_thread_sync(int t, int nt);  // scratch_[t].sync for a batch on nt threads
    // Thread t's share of the optimizer step for parameter p (e0..e1 of it).
    double step_param(int t, int T_, std::size_t p, const std::vector<T*>& params, OptConfig& opt,
                      OptState<T>& state, const std::vector<T*>& grads, const Data<T>& batch,
                      double lr_t, double reg, bool want_sq);
    // Keras's step (optimizer_step.cpp): thread t sums its slice of every gradient,
    // adds the penalty's gradient, writes its sums of squares to sq[t * P + p] and
    // penalty to pen[t]; after a barrier, clips and applies the update.
    void keras_step(int t, int T_, const std::vector<T*>& params, const OptConfig& opt,
                    const StepScalars& s, OptState<T>& state, const std::vector<T*>& grads,
                    const Data<T>& batch, double* sq, double* pen);
    int threads_for_rows(idx rows, double passes) const;
    double sum_sq_weights(const std::vector<T*>& params, bool frozen_only) const;
    void reserve(idx batch);
    void ensure_threads(int nt);

    Shape input_;
    std::vector<std::unique_ptr<Layer<T>>> layers_;
    Loss loss_;
    Reduction reduction_;
    std::vector<int> owner_;   // per layer: the layer whose buffer holds its output (-1: input)
    std::vector<int> pfirst_;  // per layer: index of its first parameter
    std::vector<idx> psize_;   // per parameter: element count
    std::vector<ParamSpec> pspec_;
    std::vector<int> player_, plocal_;  // per parameter: its layer, its index in the layer
    std::vector<char> sliced_;          // per parameter: gradient by slices (grads_by_slice)
    int lowest_trained_ = 0;   // layers below this one need no backward
    int first_compute_ = 0;    // first layer that does not alias its input
    int fused_layer_ = -1;     // the layer whose activation the loss is fused with, or -1
    std::vector<char> dz_from_next_;  // per layer: the next layer hands it dL/dz (absorbed)
    int sliced_first_ = -1;    // the first layer, when training runs its forward by slices
    double cost_per_row_ = 0;  // forward multiply-adds per row (the threading rule's input)
    // Outputs of more than one axis per sample, e.g. (steps, classes): Keras reduces its
    // losses and metrics over the last axis first, then averages over the positions.
    idx group_ = 1;           // the output's last axis
    double loss_norm_ = 1.0;  // 1 / positions for losses that sum over the last axis
    double metric_value(const MetricSpec& m, const T* P, const T* Y, const T* sw, idx n) const;
    // A masked output's n rows: pm = m_it and pw = sw_i m_it per position (pw = pm
    // without weights); returns {sum pm, sum pw}.
    std::pair<double, double> position_weights(const std::uint8_t* mask, const T* sw, idx n,
                                               T* pm, T* pw) const;
    // sum over positions of w_it * loss_it, and the metrics' sums / positions.
    double masked_loss_sum(const T* P, const T* Y, const T* pw, idx n) const;
    void masked_metrics(const std::vector<MetricSpec>& metrics, const T* P, const T* Y,
                        const T* pm, const T* pw, idx n, double* met) const;
    void add_metrics(const std::vector<MetricSpec>& metrics, const T* P, const T* Y,
                     const T* sw, idx n, bool masked, double* met) const;
    bool loss_mask_ = false;
    std::vector<T> pmbuf_, pwbuf_;                // training: the batch's pm and pw
    std::vector<std::pair<double, double>> vcount_;  // per thread: its rows' sums of pm, pw
    idx capacity_ = 0, work_bytes_ = 0;
    std::vector<std::vector<T>> acts_, deltas_, grads_;
    std::vector<std::vector<std::byte>> saved_, work_;         // work_: per thread
    std::vector<std::vector<T>> tile_;                         // per thread: a gradient tile
    std::vector<std::vector<T>> part_;                         // per thread: sliced_first_'s part
    std::vector<std::vector<std::vector<T>>> tgrads_;          // per extra thread, like grads_
    std::vector<Scratch> scratch_;
    struct PredictScratch {  // one thread's buffers in a predict call
        std::vector<std::vector<T>> bufs;
        std::vector<std::byte> work;
        std::vector<std::uint8_t> mask;  // the step mask of its rows
    };
    // Reused by the predict call holding predict_mu_ (a concurrent call allocates its
    // own): no allocation, page faults or zero-fill per call for a model's predicts.
    mutable std::mutex predict_mu_;
    mutable std::vector<PredictScratch> predict_scratch_;
    bool coupled_ = false;
    idx mask_T_ = 0;                   // steps of the step mask (0: no layer makes one)
    std::vector<std::uint8_t> maskbuf_;  // training: the batch's step mask  // some layer couples a batch's rows (Layer::batch_doubles)
    std::vector<std::vector<std::vector<double>>> bstate_;  // per layer, per thread
    std::vector<std::vector<double*>> bparts_;              // per layer: bstate_'s pointers
    std::vector<T> xbuf_, ybuf_, swbuf_;
    std::vector<std::int32_t> lbuf_;
};

}  // namespace neuraxis
