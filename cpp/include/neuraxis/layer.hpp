// The layer interface of the engine. A layer is a small class that knows its
// per-sample shapes, its parameters, what it keeps per row for backward, the
// per-thread scratch it needs and its cost; `Network` knows nothing about
// kinds. One file per kind under cpp/src/layers/, each calling pure kernels.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "neuraxis/config.hpp"
#include "neuraxis/kernels.hpp"

namespace neuraxis {

using Shape = std::vector<idx>;  // per sample: (F), (H, W, C), (T, F)
idx numel(const Shape& s);
std::string shape_str(const Shape& s);

struct ParamSpec {
    Shape shape;
    bool decay;      // a kernel: gets scikit-learn's L2 term (alpha)
    bool trainable;  // false: no gradient, no optimizer step, state untouched
};

// What the threads running one batch share, for a layer whose training
// forward and backward couple the rows of the batch (batch normalization's
// batch statistics): each thread reduces its rows into its own part, waits at
// barrier() for the others, then reads every part (in thread order, so the
// result does not depend on timing).
struct Sync {
    int t = 0, nt = 1;             // this thread, threads on the batch
    double* const* parts = nullptr;  // per thread: this layer's batch_doubles() doubles
    void barrier() const;          // every thread of the batch (no-op for one)
};

// What a layer is told about the block of rows it runs on.
struct Rows {
    idx m = 0;                 // rows (samples) in the block
    idx row0 = 0;              // position of the block's first row in the epoch
    std::uint64_t seed = 0;    // this epoch's dropout seed
    bool training = false;     // dropout on
    bool dz = false;           // backward: dy already is dL/dz of the layer's own
                               // output activation (the loss was fused with it)
    const std::int32_t* lengths = nullptr;  // per row: valid time steps, or null
    // Keras's step mask (1 = the step is real), rows x mask_steps(): written by the
    // layer that makes it (Masking, Embedding(mask_zero)), read by the recurrent
    // layers after it; null when the network has none.
    std::uint8_t* mask = nullptr;
    std::byte* work = nullptr;  // this thread's scratch, >= work_bytes(m) bytes
    bool* nonfinite = nullptr;  // forward: set when a pre-activation is NaN/inf
    const Sync* sync = nullptr;  // this layer's share of the batch (batch_doubles() > 0)
};

template <class T>
class Layer {
  public:
    virtual ~Layer() = default;
    const Shape& in_shape() const { return in_; }
    const Shape& out_shape() const { return out_; }
    idx in_size() const { return numel(in_); }
    idx out_size() const { return numel(out_); }

    virtual std::vector<ParamSpec> params() const { return {}; }
    virtual idx saved_bytes_per_row() const { return 0; }  // kept for backward
    virtual idx work_bytes(idx /*m*/) const { return 0; }  // per-thread scratch
    virtual double macs_per_row() const = 0;  // forward cost, feeds the threading rule
    virtual bool aliases_input() const { return false; }  // y is x (Flatten, Reshape)
    // Steps per row of the step mask this layer writes (Rows::mask), or 0.
    virtual idx mask_steps() const { return 0; }
    // Whether this layer reads the step mask (then it has this many steps).
    virtual idx reads_mask() const { return 0; }
    // Doubles of per-thread state this layer shares across the batch's threads
    // (Rows::sync; kept from forward to backward); 0: rows are independent.
    virtual idx batch_doubles() const { return 0; }
    // After a training batch, once: update state from the batch's parts (the
    // moving statistics), W mutable.
    virtual void end_batch(T* const* /*W*/, const double* const* /*parts*/, int /*nparts*/) const {}
    // The activation this layer applies last, that a loss may fuse with.
    virtual const Activation* output_activation() const { return nullptr; }
    // Take over the derivative of the activation `a` that the layer before applied
    // last: when true, backward() hands back dL/dz of that layer (which is then
    // told Rows::dz) instead of dL/dy. Max pooling can, for an elementwise a: each
    // gradient goes to one input, whose f'(z) is a function of the pooled output,
    // so the derivative is taken on the pooled (smaller) tensor.
    virtual bool absorb_input_activation(const Activation& /*a*/) { return false; }

    // y = layer(x) for r.m rows; W: this layer's parameters in params() order;
    // saved: saved_bytes_per_row() per row, or null when no backward follows (predict).
    virtual void forward(const Rows& r, const T* const* W, const T* x, T* y,
                         std::byte* saved) const = 0;
    // dW (entries null for frozen parameters) = dL/dW over the block,
    // overwritten (zeros for an empty block); dx = dL/dx unless null. dy may
    // be used as scratch.
    virtual void backward(const Rows& r, const T* const* W, const T* x, const T* y,
                          const std::byte* saved, T* dy, T* dx, T* const* dW) const = 0;

    // Weight gradients by parameter slices instead of by rows. When true, training
    // calls backward() with null dW, which leaves dL/dz (the gradient before this
    // layer's parameters) in dy; after every row is done, each thread computes
    // its slices of the gradients over all m rows with param_grad() and applies
    // the optimizer to them at once: no per-thread partial gradients to add up,
    // and the gradient tile is still in cache when the optimizer reads it.
    virtual bool grads_by_slice() const { return false; }
    // Slices of parameter p start and end at multiples of this many elements.
    virtual idx grad_granularity(int /*p*/) const { return 1; }
    // g[0, e1 - e0) = elements [e0, e1) of dL/d(parameter p) over m rows with
    // inputs x and the dz backward() left in dy.
    virtual void param_grad(int /*p*/, idx /*m*/, const T* /*x*/, const T* /*dz*/, idx /*e0*/,
                            idx /*e1*/, T* /*g*/) const {}

    // Forward by the same slices, for the network's first layer: each thread
    // multiplies its slice [c0, c1) of the input features (the rows of W its
    // optimizer step owns) for all m rows, then each row sums the parts. A
    // thread then reads only weights it updated itself and inputs it gathered
    // itself: on few cores, the weights the other core just wrote cost more
    // than the product (measured on the Keras lecture MLP).
    virtual bool forward_by_slice() const { return false; }
    // part(m, out) = x[:, c0:c1] @ W[c0:c1]  (x rows of stride ld)
    virtual void forward_part(idx /*m*/, const T* const* /*W*/, const T* /*x*/, idx /*ld*/,
                              idx /*c0*/, idx /*c1*/, T* /*part*/) const {}
    // y = f(sum of the nparts parts + b) for r.m rows (parts in thread order)
    virtual void forward_finish(const Rows& /*r*/, const T* const* /*W*/,
                                const T* const* /*parts*/, int /*nparts*/, T* /*y*/) const {}

  protected:
    Shape in_, out_;
};

// A layer of the kind `c.kind()` on inputs of per-sample shape `in`;
// `index` is its position in the network (it keys the dropout counters).
template <class T>
std::unique_ptr<Layer<T>> make_layer(const Config& c, const Shape& in, int index);

// The per-kind factories (cpp/src/layers/*.cpp).
template <class T>
std::unique_ptr<Layer<T>> make_dense(const Config& c, const Shape& in);
template <class T>
std::unique_ptr<Layer<T>> make_activation(const Config& c, const Shape& in);
template <class T>
std::unique_ptr<Layer<T>> make_dropout(const Config& c, const Shape& in, int index);
template <class T>
std::unique_ptr<Layer<T>> make_reshape(const Config& c, const Shape& in);  // flatten, reshape
template <class T>
std::unique_ptr<Layer<T>> make_conv(const Config& c, const Shape& in);  // conv*, *pool*
template <class T>
std::unique_ptr<Layer<T>> make_spatial(const Config& c, const Shape& in);  // zero_pad*, crop*,
                                                                           // upsample*
template <class T>
std::unique_ptr<Layer<T>> make_batch_norm(const Config& c, const Shape& in);
template <class T>
std::unique_ptr<Layer<T>> make_recurrent(const Config& c, const Shape& in,
                                         int index);  // simple_rnn, lstm, gru
template <class T>
std::unique_ptr<Layer<T>> make_bidirectional(const Config& c, const Shape& in, int index);
template <class T>
std::unique_ptr<Layer<T>> make_masking(const Config& c, const Shape& in);
template <class T>
std::unique_ptr<Layer<T>> make_embedding(const Config& c, const Shape& in);

}  // namespace neuraxis
