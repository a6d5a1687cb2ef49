// Kernel declarations. Each forward has its backward next to it; both are
// instantiated for float and double in their .cpp file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "neuraxis/view.hpp"

namespace neuraxis {

// ---- activations (activations.cpp) ---------------------------------------
enum class Act { identity, logistic, tanh, relu, leaky_relu, elu, softplus, softmax, step, exp };

struct Activation {
    Act kind = Act::identity;
    double alpha = 0.0;  // leaky_relu slope / elu scale
};

Activation parse_activation(const std::string& name, double alpha);
const char* activation_name(Act a);

// y = f(z), in place on an (n, k) block.
template <class T>
void act_forward(Activation a, T* z, idx n, idx k);
// z = f(z + b) in one pass over an (n, k) block (b may be null); sets
// *nonfinite when any z + b is NaN/inf (before f can hide it).
template <class T>
void bias_act_forward(Activation a, T* z, const T* b, idx n, idx k, bool* nonfinite);
// d *= f'(z) expressed through y = f(z); softmax applies its full row Jacobian.
template <class T>
void act_backward(Activation a, const T* y, T* d, idx n, idx k);
// act_backward, and s (k) = the column sums of the result (a bias gradient), in one pass.
template <class T>
void act_backward_sums(Activation a, const T* y, T* d, idx n, idx k, T* s);

// ---- dense (dense.cpp) ------------------------------------------------------
// Y(n,out) = X(n,in) @ W(in,out) + b
template <class T>
void dense_forward(const T* X, idx n, idx in, const T* W, const T* b, idx out, T* Y);
// Y = f(X @ W + b), bias and activation fused into the product where possible;
// *nonfinite (if given) is set when any X @ W + b is NaN/inf.
template <class T>
void dense_act_forward(const T* X, idx n, idx in, const T* W, const T* b, idx out, Activation a,
                       T* Y, bool* nonfinite);
// dW = X^T dY, db = sum_rows dY, dX = dY W^T (skipped when dX is null).
template <class T>
void dense_backward(const T* X, idx n, idx in, const T* W, idx out, const T* dY, T* dX, T* dW,
                    T* db);

// ---- dropout (dropout.cpp) -------------------------------------------------
// The inverted-dropout scale of element (row, col) of layer `layer` under
// `seed`: 0 with probability `rate`, else 1 / (1 - rate). Counter based, so a
// mask does not depend on how rows are split over threads or batches.
double dropout_scale(std::uint64_t seed, std::uint64_t layer, std::uint64_t row, std::uint64_t col,
                     double rate);
// y[i][j] = x[i][j] * scale(seed, layer, row0 + i, j) for m rows of k values
// (also the backward: dx = dy * the same scales).
template <class T>
void dropout_apply(std::uint64_t seed, std::uint64_t layer, idx row0, idx m, idx k, double rate,
                   const T* x, T* y);
// True when none of the n values is NaN or inf.
template <class T>
bool all_finite(const T* x, idx n);

// dW(rows, out) = X[:, :rows]^T dY for X with row stride ld (X may point into
// the middle of a row: a slice of the input features); zeros when n == 0.
template <class T>
void dense_weight_grad(const T* X, idx n, idx ld, idx rows, const T* dY, idx out, T* dW);
// P(n, out) = X[:, :k] @ W(k, out) for X with row stride ld (a slice of the
// input features); zeros when k == 0.
template <class T>
void dense_partial_forward(const T* X, idx n, idx ld, idx k, const T* W, idx out, T* P);
// y[i] = parts[0][i] + parts[1][i] + ... (in that order) for i < len.
template <class T>
void sum_parts(const T* const* parts, int nparts, idx len, T* y);
// s[j - j0] = sum_i Y[i][j] for j in [j0, j1), rows added in order.
template <class T>
void column_sums(const T* Y, idx n, idx k, idx j0, idx j1, T* s);

// ---- conv2d (conv2d.cpp) and pool2d (pool2d.cpp), NHWC --------------------------
// Per-image geometry: input (H, W, C), window (KH, KW), F outputs per position,
// strides, dilation, output (OH, OW) and the top/left padding by TensorFlow's
// rule ('same': out = ceil(in / s), the odd extra pad bottom/right).
struct Conv2dGeom {
    idx H, W, C, KH, KW, F, SH, SW, DH, DW, OH, OW, PT, PL;
};
Conv2dGeom conv2d_geom(idx H, idx W, idx C, idx KH, idx KW, idx F, idx SH, idx SW, idx DH, idx DW,
                       bool same);
Conv2dGeom pool2d_geom(idx H, idx W, idx C, idx PH, idx PW, idx SH, idx SW, bool same);
// A 1-D convolution over (T, C) as the 2-D one with H = 1; padding "valid",
// "same" or "causal" (left pad (K - 1) * D, out = ceil(T / S), as Keras).
Conv2dGeom conv1d_geom(idx T, idx C, idx K, idx F, idx S, idx D, const std::string& padding);
// col (OH*OW, KH*KW*C) of one image
template <class T>
void im2col(const T* x, const Conv2dGeom& g, T* col);
// y(n, OH, OW, F) = conv(x, w) for n images; col: one image's im2col scratch
template <class T>
void conv2d_forward(const T* x, idx n, const Conv2dGeom& g, const T* w, T* y, T* col);
// y = f(conv(x, w) + b) (b may be null), by blocks of conv_block_rows(g) output
// positions, each finished while in cache; col: one block's im2col scratch.
idx conv_block_rows(const Conv2dGeom& g);
template <class T>
void conv2d_forward_act(const T* x, idx n, const Conv2dGeom& g, const T* w, const T* b,
                        const Activation& act, T* y, T* col, bool* nonfinite);
// dW, db (overwritten) and dx from dz (n, OH, OW, F); any of them may be null;
// col and dcol: one image's im2col scratch each
template <class T>
void conv2d_backward(const T* x, idx n, const Conv2dGeom& g, const T* w, const T* dz, T* dx,
                     T* dw, T* db, T* col, T* dcol);
// max: y and the arg-max input offset of each output (arg may be null)
template <class T>
void max_pool2d_forward(const T* x, idx n, const Conv2dGeom& g, T* y, std::int32_t* arg);
template <class T>
void max_pool2d_backward(const T* dy, idx n, const Conv2dGeom& g, const std::int32_t* arg, T* dx);
template <class T>
void avg_pool2d_forward(const T* x, idx n, const Conv2dGeom& g, T* y);
template <class T>
void avg_pool2d_backward(const T* dy, idx n, const Conv2dGeom& g, T* dx);

// ---- batch normalization (batchnorm.cpp): n rows of C channels -------------
// Moments of a block, in double: out = [count, mean (C), M2 (C)], M2 the sum
// of squared deviations from the mean (2C + 1 doubles).
template <class T>
void bn_moments(const T* x, idx n, idx C, double* out);
// The moments of blocks combined in order (Chan's pairwise rule), same layout.
void bn_combine(const double* const* parts, int nparts, idx C, double* out);
// y = (x - m) * a + b per channel (Keras's order: no cancellation for a large mean).
template <class T>
void bn_scale_shift(const T* x, idx n, idx C, const T* m, const T* a, const T* b, T* y);
// out[0, C) = sum_rows dy, out[C, 2C) = sum_rows dy (x - mean) inv_std.
template <class T>
void bn_grad_sums(const T* x, const T* dy, idx n, idx C, const T* mean, const T* inv_std,
                  double* out);
// dx = a dy + ((x - m) p + q) per channel (the batch-statistics terms in p, q).
template <class T>
void bn_backward_dx(const T* x, const T* dy, idx n, idx C, const T* m, const T* a, const T* p,
                    const T* q, T* dx);

// ---- zero padding, cropping, up-sampling (spatial.cpp), NHWC ------------------
// y(n, OH, OW, C)[oh][ow] = x(n, H, W, C)[oh - top][ow - left], 0 outside x:
// zero padding for top, left >= 0, cropping for top, left <= 0. Its backward
// is the same call from dy back to dx with -top, -left.
template <class T>
void pad_crop2d(const T* x, idx n, idx H, idx W, idx C, idx OH, idx OW, idx top, idx left, T* y);
// nearest neighbour: y(n, H*SH, W*SW, C)[h][w] = x[h / SH][w / SW]
template <class T>
void upsample2d_forward(const T* x, idx n, idx H, idx W, idx C, idx SH, idx SW, T* y);
// dx[h][w] = the sum of dy over the SH x SW block that copied x[h][w]
template <class T>
void upsample2d_backward(const T* dy, idx n, idx H, idx W, idx C, idx SH, idx SW, T* dx);

// ---- losses (losses.cpp) ----------------------------------------------------
enum class Loss {
    // scikit-learn's definitions
    softmax_log_loss,   // categorical cross-entropy on softmax outputs, clip eps = dtype eps
    logistic_log_loss,  // binary cross-entropy summed over outputs
    squared_error,      // 0.5 * mean over outputs (delta is P - Y: scikit-learn's quirk)
    poisson,            // half Poisson deviance, exp output
    // Keras's definitions (probabilities clipped to [1e-7, 1 - 1e-7])
    categorical_crossentropy,  // -sum_j y log p
    binary_crossentropy,       // mean over outputs
    mse,                       // mean over outputs of (p - y)^2
    mae,                       // mean over outputs of |p - y|
};
Loss parse_loss(const std::string& name);
// The output activation whose derivative the fused delta already contains.
Act loss_output_activation(Loss l);

// Weighted mean over rows (weights may be null) of the per-row loss.
template <class T>
double loss_value(Loss l, const T* P, const T* Y, const T* sw, idx n, idx k);
// Fused output delta for the canonical activation/loss pair:
// dZ = c * (P - Y) * sw_i * scale, with c = 1/k for mean-over-outputs losses
// (2/k for mse; mae uses sign(P - Y) / k).
template <class T>
void loss_delta(Loss l, const T* P, const T* Y, const T* sw, idx n, idx k, double scale, T* dZ);
// dL/dP for any output activation (then chained through act_backward).
template <class T>
void loss_grad_output(Loss l, const T* P, const T* Y, const T* sw, idx n, idx k, double scale,
                      T* dP);

// ---- metrics (losses.cpp) --------------------------------------------------
enum class Metric {
    categorical_accuracy, binary_accuracy, mse, mae,
    top_k_categorical_accuracy,  // per row: #(p_j > p_label) < k (Keras's in_top_k)
    confusion,                   // streaming: weighted label counts by #thresholds below p
    fbeta,                       // streaming: per class tp, fp, fn, sum of weighted labels
};
Metric parse_metric(const std::string& name);
// A metric as a training loop tracks it: sample-weighted (Keras's
// weighted_metrics) or not (Keras's metrics). Parsed from "name" or "weighted:name",
// with parameters after '?' ("confusion?thresholds=0.25,0.5&top_k=2", metrics_extra.cpp).
// A per-row metric owns one slot of BatchTotals::metric_sums; a streaming one several,
// from `offset` on (Python computes its value from the summed slots).
struct MetricSpec {
    Metric metric;
    bool weighted = false;
    idx k = 5;                       // top_k_categorical_accuracy
    std::vector<double> thresholds;  // confusion: ascending; fbeta: one, or none (arg-max)
    idx top_k = 0, class_id = -1;    // confusion: keep a row's top_k only / one output only
    bool clip = false;               // confusion: predictions clipped to [0, 1] first (AUC)
    std::size_t offset = 0, slots = 1;
    bool streaming() const { return metric == Metric::confusion || metric == Metric::fbeta; }
};
MetricSpec parse_metric_spec(const std::string& name);
void parse_metric_params(MetricSpec& m, const std::string& params);
// Lays the metrics out in metric_sums for outputs of `classes` per position; returns
// the slots in all.
std::size_t layout_metrics(std::vector<MetricSpec>& metrics, idx classes);
std::size_t metric_slots(const std::vector<MetricSpec>& metrics);
// sum_i w_i * metric_i over n rows (w_i = 1 when sw is null).
template <class T>
double metric_sum(Metric m, const T* P, const T* Y, const T* sw, idx n, idx k);
// The same for a spec: its parameters (top-k's k) included; per-row metrics only.
template <class T>
double metric_sum(const MetricSpec& m, const T* P, const T* Y, const T* sw, idx n, idx k);
// A streaming metric's counts of n rows of `positions` x k outputs (the last axis k),
// weights sw_i (null: 1) for all positions of row i, added to
// out[0, m.slots). confusion: [pos(T+1), neg(T+1)], where bucket c holds the elements with
// exactly c thresholds below p; fbeta: [tp(k), fp(k), fn(k), weighted labels(k)].
template <class T>
void stream_add(const MetricSpec& m, const T* P, const T* Y, const T* sw, idx n, idx k,
                idx positions, double* out);

// ---- optimizers (optimizers.cpp) -------------------------------------------
// scikit-learn's formulas, evaluated in T like NumPy does. The gradient used
// is g + reg * p (the L2 term); returns ||p_new||^2 when want_sumsq.
template <class T>
double sgd_step(T* p, T* vel, const T* g, idx n, double lr, double momentum, bool nesterov,
                double reg = 0.0, bool want_sumsq = false);
template <class T>
double adam_step(T* p, T* m, T* v, const T* g, idx n, double lr_t, double b1, double b2,
                 double eps, double reg = 0.0, bool want_sumsq = false);
// Keras's RMSprop: ms = rho ms + (1-rho) g^2; step = lr g / sqrt(ms + eps);
// with momentum: mom = momentum mom + step, p -= mom; else p -= step.
template <class T>
double rmsprop_step(T* p, T* ms, T* mom, const T* g, idx n, double lr, double rho, double eps,
                  double momentum, double reg = 0.0, bool want_sumsq = false);

// ---- the name table (names.cpp) -----------------------------------------------
// Every name the engine accepts, by family ("activations", "losses", "metrics",
// "optimizers", "layers"): exported to Python, where every registry and error
// message uses it.
std::vector<std::pair<std::string, std::vector<std::string>>> name_table();
std::string join_names(const std::vector<std::string>& names);
// Throws ValueError listing the valid names unless `name` is an optimizer.
void check_optimizer(const std::string& name);
// The names of one family of the table.
std::vector<std::string> names_of(const std::string& family);

}  // namespace neuraxis
