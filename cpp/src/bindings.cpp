// The only file that includes pybind11: array checks at the boundary, the
// GIL released around every engine call, Ctrl-C polled between batches.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "neuraxis/kernels.hpp"
#include "neuraxis/network.hpp"
#include "neuraxis/optimizers_extra.hpp"
#include "neuraxis/threads.hpp"

namespace py = pybind11;
using namespace neuraxis;

namespace {

template <class T>
using Arr = py::array_t<T, py::array::c_style>;

// A C-contiguous array of exactly dtype T (no silent copies: a copy would
// leave an in-place update invisible to the caller).
template <class T>
T* ptr_of(const py::handle& h, const char* what, idx expected_size = -1, bool write = true) {
    if (!py::isinstance<py::array>(h))
        throw py::type_error(std::string(what) + " must be a numpy array");
    auto a = py::reinterpret_borrow<py::array>(h);
    if (!a.dtype().equal(py::dtype::of<T>()))
        throw py::type_error(std::string(what) + " must have dtype " +
                             std::string(py::str(py::dtype::of<T>())) + ", got " +
                             std::string(py::str(a.dtype())));
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(std::string(what) + " must be C-contiguous");
    if (write && !a.writeable()) throw py::value_error(std::string(what) + " must be writeable");
    if (expected_size >= 0 && a.size() != expected_size)
        throw py::value_error(std::string(what) + " has " + std::to_string(a.size()) +
                              " elements, expected " + std::to_string(expected_size));
    // read-only use (predict's weights) takes read-only arrays too, e.g. an unpickled memmap
    return write ? static_cast<T*>(a.mutable_data())
                 : const_cast<T*>(static_cast<const T*>(a.data()));
}

template <class T>
const T* cptr_of(const py::handle& h, const char* what, idx rows, idx cols) {
    if (!py::isinstance<py::array>(h))
        throw py::type_error(std::string(what) + " must be a numpy array");
    auto a = py::reinterpret_borrow<py::array>(h);
    if (!a.dtype().equal(py::dtype::of<T>()))
        throw py::type_error(std::string(what) + " must have dtype " +
                             std::string(py::str(py::dtype::of<T>())));
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(std::string(what) + " must be C-contiguous");
    if (a.ndim() < 1 || a.shape(0) != rows || a.size() != rows * cols)
        throw py::value_error(std::string(what) + " has the wrong shape: expected (" +
                              std::to_string(rows) + ", " + std::to_string(cols) + ")");
    return static_cast<const T*>(a.data());
}

template <class T>
std::vector<T*> param_ptrs(const Network<T>& net, const py::list& params, const char* what,
                           bool write = true) {
    const auto& sizes = net.param_sizes();
    if (params.size() != sizes.size())
        throw py::value_error(std::string(what) + ": expected " + std::to_string(sizes.size()) +
                              " arrays, got " + std::to_string(params.size()));
    std::vector<T*> out(params.size());
    for (std::size_t i = 0; i < params.size(); ++i)
        out[i] = ptr_of<T>(params[i], what, sizes[i], write);
    return out;
}

idx rows_of(const py::array& a) { return a.ndim() == 0 ? 1 : a.shape(0); }

// Polls Python's signal handlers (Ctrl-C) from inside a GIL-released loop.
bool python_interrupted() {
    py::gil_scoped_acquire gil;
    return PyErr_CheckSignals() != 0;
}

// `classes`: the output's last axis, which sizes the per-class streaming metrics.
std::vector<MetricSpec> parse_metrics(const std::vector<std::string>& names, idx classes) {
    std::vector<MetricSpec> out;
    for (const auto& n : names) out.push_back(parse_metric_spec(n));
    layout_metrics(out, classes);
    return out;
}

py::dict totals_dict(const BatchTotals& t) {
    py::dict d;
    d["loss_sum"] = t.loss_sum;
    d["rows"] = t.rows;
    d["metric_sums"] = t.metric_sums;
    d["weight_sum"] = t.weight_sum;
    d["metric_rows"] = t.metric_rows;
    d["metric_weight"] = t.metric_weight;
    return d;
}

// A layer spec dict -> Config: scalars, strings and integer lists only.
Config to_config(const py::handle& h, std::size_t index) {
    const std::string where = "layer " + std::to_string(index);
    if (!py::isinstance<py::dict>(h))
        throw py::type_error(where + ": a layer spec must be a dict, got " +
                             std::string(py::repr(h)));
    std::map<std::string, Config::Value> values;
    for (auto kv : py::reinterpret_borrow<py::dict>(h)) {
        if (!py::isinstance<py::str>(kv.first))
            throw py::type_error(where + ": keys must be strings, got " +
                                 std::string(py::repr(kv.first)));
        const auto key = kv.first.cast<std::string>();
        const py::handle v = kv.second;
        if (py::isinstance<py::bool_>(v))
            values[key] = v.cast<bool>();
        else if (py::isinstance<py::int_>(v))
            values[key] = v.cast<std::int64_t>();
        else if (py::isinstance<py::float_>(v))
            values[key] = v.cast<double>();
        else if (py::isinstance<py::str>(v))
            values[key] = v.cast<std::string>();
        else if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v)) {
            std::vector<std::int64_t> ints;
            for (auto e : py::reinterpret_borrow<py::sequence>(v)) {
                if (!py::isinstance<py::int_>(e) || py::isinstance<py::bool_>(e))
                    throw py::type_error(where + ": '" + key + "' must hold integers, got " +
                                         std::string(py::repr(v)));
                ints.push_back(e.cast<std::int64_t>());
            }
            values[key] = ints;
        } else {
            throw py::type_error(where + ": '" + key + "' has an unsupported value " +
                                 std::string(py::repr(v)));
        }
    }
    std::string kind = "?";
    if (auto it = values.find("kind"); it != values.end())
        if (auto p = std::get_if<std::string>(&it->second)) kind = *p;
    return Config(where + " (" + kind + ")", std::move(values));
}

py::tuple shape_tuple(const Shape& s) {
    py::tuple t(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) t[i] = s[i];
    return t;
}

template <class T>
struct PyNetwork {
    std::unique_ptr<Network<T>> net;

    // input_shape: per-sample shape; layers: one dict per layer ({"kind": "dense", ...}).
    PyNetwork(const std::vector<idx>& input_shape, const py::list& layers, const std::string& loss,
              const std::string& reduction, bool loss_mask) {
        std::vector<Config> configs;
        for (std::size_t i = 0; i < layers.size(); ++i) configs.push_back(to_config(layers[i], i));
        Reduction red;
        if (reduction == "weights")
            red = Reduction::weights;
        else if (reduction == "batch_size")
            red = Reduction::batch_size;
        else
            throw py::value_error("reduction must be 'weights' or 'batch_size', got '" +
                                  reduction + "'");
        net = std::make_unique<Network<T>>(Shape(input_shape), configs, parse_loss(loss), red);
        net->set_loss_mask(loss_mask);
    }

    // X (n, *input_shape) or (n, prod(input_shape)); lengths: int32 (n,) steps per row.
    const T* rows_x(const py::array& X, idx& n) const {
        n = rows_of(X);
        return cptr_of<T>(X, "X", n, net->n_in());
    }
    const std::int32_t* lengths_of(const py::object& lengths, idx n) const {
        if (lengths.is_none()) return nullptr;
        const Shape& in = net->input_shape();
        if (in.size() < 2)
            throw py::value_error("lengths are for sequence inputs (steps, features); this "
                                  "network's inputs have shape " + shape_str(in));
        auto a = lengths.cast<py::array>();
        const std::int32_t* p = cptr_of<std::int32_t>(a, "lengths", n, 1);
        for (idx i = 0; i < n; ++i)
            if (p[i] < 0 || p[i] > in[0])
                throw py::value_error("lengths[" + std::to_string(i) + "] = " +
                                      std::to_string(p[i]) + " is outside [0, " +
                                      std::to_string(in[0]) + "]");
        return p;
    }
    Data<T> data(const py::array& X, const py::array& Y, const py::object& sw,
                 const py::object& lengths) const {
        Data<T> d;
        d.X = rows_x(X, d.n);
        d.Y = cptr_of<T>(Y, "Y", d.n, net->n_out());
        d.sw = sw.is_none() ? nullptr : cptr_of<T>(sw, "sample_weight", d.n, 1);
        d.lengths = lengths_of(lengths, d.n);
        return d;
    }

    OptState<T> state(const OptConfig& opt, const py::list& m, const py::list& v) const {
        OptState<T> st;
        st.m = param_ptrs(*net, m, "optimizer state m");
        // v holds a second slot per parameter, or a second then a third (Keras's options)
        const std::size_t np = net->param_sizes().size();
        if (v.size() == 2 * np && np > 0) {
            st.v = param_ptrs(*net, py::list(v[py::slice(0, np, 1)]), "optimizer state v");
            st.s = param_ptrs(*net, py::list(v[py::slice(np, 2 * np, 1)]), "optimizer state s");
        } else if (v.size() > 0 || opt.kind == "adam") {
            st.v = param_ptrs(*net, v, "optimizer state v");
        }
        return st;
    }

    BatchTotals run(const py::list& params, OptConfig& opt, const py::list& m, const py::list& v,
                    const py::array& X, const py::array& Y, const py::object& sw,
                    const py::object& perm, idx batch, idx first, idx count, double alpha,
                    const std::vector<std::string>& metrics, std::uint64_t seed,
                    const py::object& lengths) {
        auto P = param_ptrs(*net, params, "params");
        auto st = state(opt, m, v);
        auto d = data(X, Y, sw, lengths);
        const std::int64_t* p = nullptr;
        if (!perm.is_none()) {
            auto pa = perm.cast<py::array>();
            p = cptr_of<std::int64_t>(pa, "perm", d.n, 1);
            for (idx i = 0; i < d.n; ++i)
                if (p[i] < 0 || p[i] >= d.n)
                    throw py::value_error("perm holds an out-of-range row");
        }
        auto mets = parse_metrics(metrics, net->output_shape().back());
        BatchTotals tot;
        {
            py::gil_scoped_release release;
            tot = net->train_batches(P, opt, st, d, p, batch, first, count, alpha, mets, seed,
                                     python_interrupted);
        }
        if (tot.interrupted) throw py::error_already_set();  // the pending KeyboardInterrupt
        return tot;
    }

    // scikit-learn front: one epoch, returns the size-weighted mean batch objective.
    double fit_epoch(const py::list& params, OptConfig& opt, const py::list& m,
                     const py::list& v, const py::array& X, const py::array& Y,
                     const py::object& sw, const py::object& perm, idx batch, double alpha) {
        auto tot = run(params, opt, m, v, X, Y, sw, perm, batch, 0, -1, alpha, {}, 0, py::none());
        return tot.rows ? tot.loss_sum / double(tot.rows) : 0.0;
    }

    py::dict train_batches(const py::list& params, OptConfig& opt, const py::list& m,
                           const py::list& v, const py::array& X, const py::array& Y,
                           const py::object& sw, const py::object& perm, idx batch, idx first,
                           idx count, const std::vector<std::string>& metrics, std::uint64_t seed,
                           double alpha, const py::object& lengths) {
        return totals_dict(run(params, opt, m, v, X, Y, sw, perm, batch, first, count, alpha,
                               metrics, seed, lengths));
    }

    py::dict evaluate(const py::list& params, const py::array& X, const py::array& Y,
                      const py::object& sw, idx batch, const std::vector<std::string>& metrics,
                      const py::object& lengths) {
        auto P = param_ptrs(*net, params, "params", false);
        auto d = data(X, Y, sw, lengths);
        auto mets = parse_metrics(metrics, net->output_shape().back());
        BatchTotals tot;
        {
            py::gil_scoped_release release;
            tot = net->evaluate(P, d, batch, mets);
        }
        return totals_dict(tot);
    }

    double loss_grad(const py::list& params, const py::list& grads, const py::array& X,
                     const py::array& Y, const py::object& sw, double alpha) {
        auto P = param_ptrs(*net, params, "params", false);  // read only
        auto G = param_ptrs(*net, grads, "grads");
        auto d = data(X, Y, sw, py::none());
        py::gil_scoped_release release;
        return net->loss_grad(P, G, d, alpha);
    }

    // (outputs of shape (n, *output_shape), whether the first computing layer saw NaN/inf)
    py::tuple predict(const py::list& params, const py::array& X, const py::object& lengths,
                      bool training, std::uint64_t seed) const {
        auto P = param_ptrs(*net, params, "params", false);  // read only
        idx n;
        const T* x = rows_x(X, n);
        const std::int32_t* len = lengths_of(lengths, n);
        std::vector<py::ssize_t> shape{py::ssize_t(n)};
        for (idx d : net->output_shape()) shape.push_back(py::ssize_t(d));
        Arr<T> out(shape);
        T* o = out.mutable_data();
        bool nonfinite;
        {
            py::gil_scoped_release release;
            nonfinite = net->predict(P, x, len, n, o, training, seed);
        }
        return py::make_tuple(out, nonfinite);
    }

    py::list param_shapes() const {
        py::list out;
        for (const auto& p : net->param_specs()) out.append(shape_tuple(p.shape));
        return out;
    }
    py::list param_trainable() const {
        py::list out;
        for (const auto& p : net->param_specs()) out.append(p.trainable);
        return out;
    }
    py::list layer_output_shapes() const {
        py::list out;
        for (std::size_t l = 0; l < net->n_layers(); ++l)
            out.append(shape_tuple(net->layer(l).out_shape()));
        return out;
    }
};

template <class T>
void bind_network(py::module_& m, const char* name) {
    py::class_<PyNetwork<T>>(m, name)
        .def(py::init<const std::vector<idx>&, const py::list&, const std::string&,
                      const std::string&, bool>(),
             py::arg("input_shape"), py::arg("layers"), py::arg("loss"),
             py::arg("reduction") = "weights", py::arg("loss_mask") = false)
        .def("fit_epoch", &PyNetwork<T>::fit_epoch, py::arg("params"), py::arg("opt"),
             py::arg("m"), py::arg("v"), py::arg("X"), py::arg("Y"), py::arg("sample_weight"),
             py::arg("perm"), py::arg("batch_size"), py::arg("alpha"))
        .def("train_batches", &PyNetwork<T>::train_batches, py::arg("params"), py::arg("opt"),
             py::arg("m"), py::arg("v"), py::arg("X"), py::arg("Y"), py::arg("sample_weight"),
             py::arg("perm"), py::arg("batch_size"), py::arg("first_batch"),
             py::arg("n_batches"), py::arg("metrics"), py::arg("seed"), py::arg("alpha") = 0.0,
             py::arg("lengths") = py::none())
        .def("evaluate", &PyNetwork<T>::evaluate, py::arg("params"), py::arg("X"), py::arg("Y"),
             py::arg("sample_weight"), py::arg("batch_size"), py::arg("metrics"),
             py::arg("lengths") = py::none())
        .def("loss_grad", &PyNetwork<T>::loss_grad, py::arg("params"), py::arg("grads"),
             py::arg("X"), py::arg("Y"), py::arg("sample_weight"), py::arg("alpha"))
        .def("predict", &PyNetwork<T>::predict, py::arg("params"), py::arg("X"),
             py::arg("lengths") = py::none(), py::arg("training") = false, py::arg("seed") = 0)
        .def_property_readonly("input_shape",
                               [](const PyNetwork<T>& p) { return shape_tuple(p.net->input_shape()); })
        .def_property_readonly("output_shape",
                               [](const PyNetwork<T>& p) { return shape_tuple(p.net->output_shape()); })
        .def_property_readonly("param_shapes", &PyNetwork<T>::param_shapes)
        .def_property_readonly("param_trainable", &PyNetwork<T>::param_trainable)
        .def_property_readonly("layer_output_shapes", &PyNetwork<T>::layer_output_shapes);
}

// ---- single kernels on NumPy arrays (neuraxis.ops) --------------------------

template <class T>
Arr<T> op_act_forward(Arr<T> z, const std::string& name, double alpha) {
    Arr<T> y(std::vector<py::ssize_t>(z.shape(), z.shape() + z.ndim()));
    std::copy(z.data(), z.data() + z.size(), y.mutable_data());
    const idx k = z.ndim() ? z.shape(z.ndim() - 1) : 1;
    const idx n = k ? z.size() / k : 0;
    auto a = parse_activation(name, alpha);
    py::gil_scoped_release r;
    act_forward(a, y.mutable_data(), n, k);
    return y;
}

template <class T>
Arr<T> op_act_backward(Arr<T> y, Arr<T> dy, const std::string& name, double alpha) {
    if (y.size() != dy.size()) throw py::value_error("y and dy must have the same shape");
    Arr<T> d(std::vector<py::ssize_t>(dy.shape(), dy.shape() + dy.ndim()));
    std::copy(dy.data(), dy.data() + dy.size(), d.mutable_data());
    const idx k = y.ndim() ? y.shape(y.ndim() - 1) : 1;
    const idx n = k ? y.size() / k : 0;
    auto a = parse_activation(name, alpha);
    py::gil_scoped_release r;
    act_backward(a, y.data(), d.mutable_data(), n, k);
    return d;
}

template <class T>
Arr<T> op_dense_forward(Arr<T> X, Arr<T> W, std::optional<Arr<T>> b) {
    if (X.ndim() != 2 || W.ndim() != 2 || X.shape(1) != W.shape(0))
        throw py::value_error("dense_forward: X (n, in) and W (in, out) do not match");
    const idx n = X.shape(0), in = X.shape(1), out = W.shape(1);
    if (b && b->size() != out) throw py::value_error("dense_forward: b must have shape (out,)");
    Arr<T> Y({n, out});
    const T* bp = b ? b->data() : nullptr;
    py::gil_scoped_release r;
    dense_forward(X.data(), n, in, W.data(), bp, out, Y.mutable_data());
    return Y;
}

template <class T>
py::tuple op_dense_backward(Arr<T> X, Arr<T> W, Arr<T> dY) {
    if (X.ndim() != 2 || W.ndim() != 2 || dY.ndim() != 2 || X.shape(1) != W.shape(0) ||
        dY.shape(0) != X.shape(0) || dY.shape(1) != W.shape(1))
        throw py::value_error("dense_backward: shapes of X (n, in), W (in, out), dY (n, out) differ");
    const idx n = X.shape(0), in = X.shape(1), out = W.shape(1);
    Arr<T> dX({n, in}), dW({in, out}), db({out});
    {
        py::gil_scoped_release r;
        dense_backward(X.data(), n, in, W.data(), out, dY.data(), dX.mutable_data(),
                       dW.mutable_data(), db.mutable_data());
    }
    return py::make_tuple(dX, dW, db);
}

template <class T>
void check_same(const Arr<T>& a, const Arr<T>& b, const char* what) {
    if (a.ndim() != 2 || b.ndim() != 2 || a.shape(0) != b.shape(0) || a.shape(1) != b.shape(1))
        throw py::value_error(std::string(what) + ": arrays must be 2-D with the same shape");
}

template <class T>
double op_loss(const std::string& loss, Arr<T> P, Arr<T> Y, std::optional<Arr<T>> sw) {
    check_same(P, Y, "loss");
    if (sw && sw->size() != P.shape(0)) throw py::value_error("loss: sample_weight length");
    return loss_value(parse_loss(loss), P.data(), Y.data(), sw ? sw->data() : nullptr, P.shape(0),
                      P.shape(1));
}

template <class T>
Arr<T> op_loss_delta(const std::string& loss, Arr<T> P, Arr<T> Y, std::optional<Arr<T>> sw,
                     double scale) {
    check_same(P, Y, "loss_delta");
    if (sw && sw->size() != P.shape(0)) throw py::value_error("loss_delta: sample_weight length");
    Arr<T> d({P.shape(0), P.shape(1)});
    loss_delta(parse_loss(loss), P.data(), Y.data(), sw ? sw->data() : nullptr, P.shape(0),
               P.shape(1), scale, d.mutable_data());
    return d;
}

template <class T>
void op_sgd(Arr<T> p, Arr<T> vel, Arr<T> g, double lr, double momentum, bool nesterov) {
    const idx n = p.size();
    if (vel.size() != n || g.size() != n) throw py::value_error("sgd_step: sizes differ");
    sgd_step(p.mutable_data(), vel.mutable_data(), g.data(), n, lr, momentum, nesterov);
}

template <class T>
void op_adam(Arr<T> p, Arr<T> m, Arr<T> v, Arr<T> g, double lr_t, double b1, double b2,
             double eps) {
    const idx n = p.size();
    if (m.size() != n || v.size() != n || g.size() != n)
        throw py::value_error("adam_step: sizes differ");
    adam_step(p.mutable_data(), m.mutable_data(), v.mutable_data(), g.data(), n, lr_t, b1, b2,
              eps);
}

template <class T>
Arr<T> op_loss_grad_output(const std::string& loss, Arr<T> P, Arr<T> Y, std::optional<Arr<T>> sw,
                           double scale) {
    check_same(P, Y, "loss_grad_output");
    if (sw && sw->size() != P.shape(0)) throw py::value_error("loss_grad_output: sample_weight");
    Arr<T> d({P.shape(0), P.shape(1)});
    loss_grad_output(parse_loss(loss), P.data(), Y.data(), sw ? sw->data() : nullptr, P.shape(0),
                     P.shape(1), scale, d.mutable_data());
    return d;
}

template <class T>
double op_metric(const std::string& metric, Arr<T> P, Arr<T> Y, std::optional<Arr<T>> sw) {
    check_same(P, Y, "metric_sum");
    if (sw && sw->size() != P.shape(0)) throw py::value_error("metric_sum: sample_weight length");
    const MetricSpec spec = parse_metric_spec(metric);  // "top_k_categorical_accuracy?k=3"
    if (spec.streaming()) throw py::value_error("metric_sum: '" + metric + "' is not per row");
    return metric_sum(spec, P.data(), Y.data(), sw ? sw->data() : nullptr, P.shape(0),
                      P.shape(1));
}

template <class T>
void op_rmsprop(Arr<T> p, Arr<T> ms, std::optional<Arr<T>> mom, Arr<T> g, double lr, double rho,
                double eps, double momentum) {
    const idx n = p.size();
    if (ms.size() != n || g.size() != n || (mom && mom->size() != n))
        throw py::value_error("rmsprop_step: sizes differ");
    rmsprop_step(p.mutable_data(), ms.mutable_data(), mom ? mom->mutable_data() : nullptr,
                 g.data(), n, lr, rho, eps, momentum);
}

// ---- conv2d / pool2d on NHWC arrays; images split over threads ----------------
bool same_of(const std::string& padding) {
    if (padding != "valid" && padding != "same")
        throw py::value_error("padding must be 'valid' or 'same', got '" + padding + "'");
    return padding == "same";
}

template <class T>
Conv2dGeom conv_geom_of(const Arr<T>& x, const Arr<T>& w, std::pair<idx, idx> s,
                        const std::string& padding, std::pair<idx, idx> d) {
    if (x.ndim() != 4 || w.ndim() != 4)
        throw py::value_error("conv2d: x must be (n, height, width, channels) and w (kh, kw, "
                              "in, out)");
    if (x.shape(3) != w.shape(2))
        throw py::value_error("conv2d: x has " + std::to_string(x.shape(3)) +
                              " channels but w expects " + std::to_string(w.shape(2)));
    return conv2d_geom(x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(1), w.shape(3),
                       s.first, s.second, d.first, d.second, same_of(padding));
}

template <class T>
Arr<T> op_conv2d_forward(Arr<T> x, Arr<T> w, std::optional<Arr<T>> b, std::pair<idx, idx> s,
                         const std::string& padding, std::pair<idx, idx> d) {
    const Conv2dGeom g = conv_geom_of(x, w, s, padding, d);
    if (b && b->size() != g.F) throw py::value_error("conv2d: b must have shape (out,)");
    const idx n = x.shape(0), P = g.OH * g.OW, K = g.KH * g.KW * g.C;
    Arr<T> y({n, g.OH, g.OW, g.F});
    const T* xp = x.data();
    const T* wp = w.data();
    const T* bp = b ? b->data() : nullptr;
    T* yp = y.mutable_data();
    py::gil_scoped_release r;
    parallel_for(n, double(P) * K * g.F, [&](idx i0, idx i1) {
        std::vector<T> col(conv_block_rows(g) * K);
        conv2d_forward_act(xp + i0 * g.H * g.W * g.C, i1 - i0, g, wp, bp, Activation{},
                           yp + i0 * P * g.F, col.data(), nullptr);
    });
    return y;
}

template <class T>
py::tuple op_conv2d_backward(Arr<T> x, Arr<T> w, Arr<T> dy, std::pair<idx, idx> s,
                             const std::string& padding, std::pair<idx, idx> d) {
    const Conv2dGeom g = conv_geom_of(x, w, s, padding, d);
    const idx n = x.shape(0), P = g.OH * g.OW, K = g.KH * g.KW * g.C;
    if (dy.ndim() != 4 || dy.shape(0) != n || dy.shape(1) != g.OH || dy.shape(2) != g.OW ||
        dy.shape(3) != g.F)
        throw py::value_error("conv2d_backward: dy must have shape (" + std::to_string(n) + ", " +
                              std::to_string(g.OH) + ", " + std::to_string(g.OW) + ", " +
                              std::to_string(g.F) + ")");
    Arr<T> dx({n, g.H, g.W, g.C}), dw({g.KH, g.KW, g.C, g.F}), db({g.F});
    {
        py::gil_scoped_release r;
        std::vector<T> col(P * K), dcol(P * K);
        conv2d_backward(x.data(), n, g, w.data(), dy.data(), dx.mutable_data(), dw.mutable_data(),
                        db.mutable_data(), col.data(), dcol.data());
    }
    return py::make_tuple(dx, dw, db);
}

template <class T>
Conv2dGeom pool_geom_of(const Arr<T>& x, std::pair<idx, idx> p, std::pair<idx, idx> s,
                        const std::string& padding) {
    if (x.ndim() != 4) throw py::value_error("pool2d: x must be (n, height, width, channels)");
    return pool2d_geom(x.shape(1), x.shape(2), x.shape(3), p.first, p.second, s.first, s.second,
                       same_of(padding));
}

template <class T>
Arr<T> op_pool2d_forward(Arr<T> x, std::pair<idx, idx> p, std::pair<idx, idx> s,
                         const std::string& padding, bool is_max) {
    const Conv2dGeom g = pool_geom_of(x, p, s, padding);
    const idx n = x.shape(0);
    Arr<T> y({n, g.OH, g.OW, g.C});
    py::gil_scoped_release r;
    if (is_max)
        max_pool2d_forward(x.data(), n, g, y.mutable_data(), static_cast<std::int32_t*>(nullptr));
    else
        avg_pool2d_forward(x.data(), n, g, y.mutable_data());
    return y;
}

template <class T>
Arr<T> op_pool2d_backward(Arr<T> x, Arr<T> dy, std::pair<idx, idx> p, std::pair<idx, idx> s,
                          const std::string& padding, bool is_max) {
    const Conv2dGeom g = pool_geom_of(x, p, s, padding);
    const idx n = x.shape(0);
    if (dy.ndim() != 4 || dy.shape(0) != n || dy.shape(1) != g.OH || dy.shape(2) != g.OW ||
        dy.shape(3) != g.C)
        throw py::value_error("pool2d_backward: dy must have shape (" + std::to_string(n) + ", " +
                              std::to_string(g.OH) + ", " + std::to_string(g.OW) + ", " +
                              std::to_string(g.C) + ")");
    Arr<T> dx({n, g.H, g.W, g.C});
    py::gil_scoped_release r;
    if (is_max) {
        std::vector<T> y(n * g.OH * g.OW * g.C);
        std::vector<std::int32_t> arg(y.size());
        max_pool2d_forward(x.data(), n, g, y.data(), arg.data());
        max_pool2d_backward(dy.data(), n, g, arg.data(), dx.mutable_data());
    } else {
        avg_pool2d_backward(dy.data(), n, g, dx.mutable_data());
    }
    return dx;
}

// ---- batch_norm over the last axis of (..., C) arrays ----------------------------
template <class T>
struct BnArgs {
    idx n = 0, C = 0;
    std::vector<T> m, a, inv, b;  // mean, gamma / std, 1 / std, beta
};

// The per-channel coefficients for statistics mean, var (C each).
template <class T>
BnArgs<T> bn_args(const Arr<T>& x, const std::optional<Arr<T>>& gamma,
                  const std::optional<Arr<T>>& beta, const T* mean, const T* var, double eps,
                  const char* who) {
    if (x.ndim() < 1 || x.size() == 0)
        throw py::value_error(std::string(who) + ": x must be a non-empty array (..., channels)");
    if (!(eps > 0.0)) throw py::value_error(std::string(who) + ": epsilon must be positive");
    BnArgs<T> r;
    r.C = x.shape(x.ndim() - 1);
    r.n = x.size() / r.C;
    for (const auto* v : {&gamma, &beta})
        if (*v && (*v)->size() != r.C)
            throw py::value_error(std::string(who) + ": gamma and beta must have shape (" +
                                  std::to_string(r.C) + ",)");
    r.m.assign(mean, mean + r.C);
    r.a.resize(r.C);
    r.inv.resize(r.C);
    r.b.resize(r.C);
    for (idx c = 0; c < r.C; ++c) {
        const double inv = 1.0 / std::sqrt(double(var[c]) + eps);
        r.inv[c] = T(inv);
        r.a[c] = T(gamma ? double(gamma->data()[c]) * inv : inv);
        r.b[c] = beta ? beta->data()[c] : T(0);
    }
    return r;
}

template <class T>
void check_channels(const Arr<T>& v, idx C, const char* who, const char* what) {
    if (v.size() != C)
        throw py::value_error(std::string(who) + ": " + what + " must have shape (" +
                              std::to_string(C) + ",), got " + std::to_string(v.size()) +
                              " values");
}

// (y, mean, variance): training normalizes by the batch's mean and biased
// variance (returned), inference by the given moving ones.
template <class T>
py::tuple op_batch_norm_forward(Arr<T> x, std::optional<Arr<T>> gamma, std::optional<Arr<T>> beta,
                                Arr<T> mean, Arr<T> var, bool training, double eps) {
    const idx C = x.ndim() ? x.shape(x.ndim() - 1) : 0;
    check_channels(mean, C, "batch_norm", "moving_mean");
    check_channels(var, C, "batch_norm", "moving_variance");
    Arr<T> bm({C}), bv({C});
    std::copy(mean.data(), mean.data() + C, bm.mutable_data());
    std::copy(var.data(), var.data() + C, bv.mutable_data());
    if (training && x.size() > 0) {
        std::vector<double> mom(2 * C + 1);
        bn_moments(x.data(), x.size() / C, C, mom.data());
        for (idx c = 0; c < C; ++c) {
            bm.mutable_data()[c] = T(mom[1 + c]);
            bv.mutable_data()[c] = T(mom[1 + C + c] / mom[0]);
        }
    }
    const BnArgs<T> g = bn_args(x, gamma, beta, bm.data(), bv.data(), eps, "batch_norm");
    Arr<T> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    bn_scale_shift(x.data(), g.n, g.C, g.m.data(), g.a.data(), g.b.data(), y.mutable_data());
    return py::make_tuple(y, bm, bv);
}

// (dx, dgamma, dbeta) of batch_norm_forward with statistics mean, var: in
// training they are the batch's own (functions of x), else constants.
template <class T>
py::tuple op_batch_norm_backward(Arr<T> x, Arr<T> dy, std::optional<Arr<T>> gamma, Arr<T> mean,
                                 Arr<T> var, bool training, double eps) {
    if (x.ndim() != dy.ndim() || !std::equal(x.shape(), x.shape() + x.ndim(), dy.shape()))
        throw py::value_error("batch_norm_backward: dy must have the shape of x");
    const idx C = x.ndim() ? x.shape(x.ndim() - 1) : 0;
    check_channels(mean, C, "batch_norm_backward", "mean");
    check_channels(var, C, "batch_norm_backward", "variance");
    const BnArgs<T> g = bn_args(x, gamma, std::optional<Arr<T>>{}, mean.data(), var.data(), eps,
                                "batch_norm_backward");
    std::vector<double> sums(2 * C);
    bn_grad_sums(x.data(), dy.data(), g.n, C, g.m.data(), g.inv.data(), sums.data());
    std::vector<T> p(C, T(0)), q(C, T(0));
    if (training)
        for (idx c = 0; c < C; ++c) {
            const double N = double(g.n), a = double(g.a[c]);
            p[c] = T(-a * double(g.inv[c]) * sums[C + c] / N);
            q[c] = T(-a * sums[c] / N);
        }
    Arr<T> dx(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim())), dg({C}), db({C});
    bn_backward_dx(x.data(), dy.data(), g.n, C, g.m.data(), g.a.data(), p.data(), q.data(),
                   dx.mutable_data());
    for (idx c = 0; c < C; ++c) {
        dg.mutable_data()[c] = T(sums[C + c]);
        db.mutable_data()[c] = T(sums[c]);
    }
    return py::make_tuple(dx, dg, db);
}

// ---- one engine layer on NumPy arrays (ops for the recurrent / embedding layers) -------
// The layer of `spec` on x (n, *input_shape), single-threaded, in inference or training
// mode (dropout masks from `seed`); returns y, or (y, dx, [dW...]) given dy.
template <class T>
std::unique_ptr<Layer<T>> op_layer(const py::dict& spec, Arr<T> x, const py::list& params,
                                   std::vector<const T*>& W, std::vector<Arr<T>>& keep) {
    if (x.ndim() < 2) throw py::value_error("x must be (n, *sample_shape)");
    Shape in(x.shape() + 1, x.shape() + x.ndim());
    auto layer = make_layer<T>(to_config(spec, 0), in, 0);
    const auto specs = layer->params();
    if (params.size() != specs.size())
        throw py::value_error("expected " + std::to_string(specs.size()) + " parameter arrays, got " +
                              std::to_string(params.size()));
    for (std::size_t p = 0; p < specs.size(); ++p) {
        keep.push_back(params[p].cast<Arr<T>>());  // alive while W points into it
        if (keep.back().size() != numel(specs[p].shape))
            throw py::value_error("parameter " + std::to_string(p) + " must have shape " +
                                  shape_str(specs[p].shape));
        W.push_back(keep.back().data());
    }
    return layer;
}

template <class T>
py::object op_layer_run(const py::dict& spec, Arr<T> x, const py::list& params,
                        std::optional<Arr<T>> dy, bool training, std::uint64_t seed) {
    std::vector<const T*> W;
    std::vector<Arr<T>> kept;
    kept.reserve(params.size());
    auto layer = op_layer<T>(spec, x, params, W, kept);
    const idx n = x.shape(0);
    std::vector<py::ssize_t> yshape{py::ssize_t(n)};
    for (idx d : layer->out_shape()) yshape.push_back(d);
    Arr<T> y(yshape);
    std::vector<std::byte> saved(n * layer->saved_bytes_per_row()), work(layer->work_bytes(n));
    Rows r;
    r.m = n;
    r.seed = seed;
    r.training = training;
    r.work = work.data();
    Sync sync;  // one thread: batch-coupled layers reduce over all n rows
    std::vector<double> part(layer->batch_doubles());
    double* part_ptr = part.data();
    sync.parts = &part_ptr;
    if (!part.empty()) r.sync = &sync;
    {
        py::gil_scoped_release release;
        layer->forward(r, W.data(), x.data(), y.mutable_data(), saved.data());
    }
    if (!dy) return std::move(y);
    if (dy->size() != y.size()) throw py::value_error("dy must have the shape of the output");
    Arr<T> dx(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    py::list grads;
    std::vector<T*> dW;
    std::vector<Arr<T>> keep;
    for (const auto& ps : layer->params()) {
        std::vector<py::ssize_t> sh(ps.shape.begin(), ps.shape.end());
        keep.emplace_back(sh);
        dW.push_back(keep.back().mutable_data());
    }
    std::vector<T> dyc(dy->data(), dy->data() + dy->size());  // backward may use dy as scratch
    {
        py::gil_scoped_release release;
        layer->backward(r, W.data(), x.data(), y.data(), saved.data(), dyc.data(),
                        dx.mutable_data(), dW.data());
    }
    for (auto& g : keep) grads.append(g);
    return py::make_tuple(y, dx, grads);
}

template <class T>
void bind_ops(py::module_& m) {
    m.def("conv2d_forward", &op_conv2d_forward<T>, py::arg("x").noconvert(),
          py::arg("w").noconvert(), py::arg("b").noconvert(), py::arg("strides"),
          py::arg("padding"), py::arg("dilation_rate"));
    m.def("conv2d_backward", &op_conv2d_backward<T>, py::arg("x").noconvert(),
          py::arg("w").noconvert(), py::arg("dy").noconvert(), py::arg("strides"),
          py::arg("padding"), py::arg("dilation_rate"));
    m.def("layer_run", &op_layer_run<T>, py::arg("spec"), py::arg("x").noconvert(),
          py::arg("params"), py::arg("dy").noconvert() = py::none(), py::arg("training") = false,
          py::arg("seed") = 0);
    m.def("batch_norm_forward", &op_batch_norm_forward<T>, py::arg("x").noconvert(),
          py::arg("gamma").noconvert(), py::arg("beta").noconvert(), py::arg("mean").noconvert(),
          py::arg("variance").noconvert(), py::arg("training"), py::arg("epsilon"));
    m.def("batch_norm_backward", &op_batch_norm_backward<T>, py::arg("x").noconvert(),
          py::arg("dy").noconvert(), py::arg("gamma").noconvert(), py::arg("mean").noconvert(),
          py::arg("variance").noconvert(), py::arg("training"), py::arg("epsilon"));
    m.def("pool2d_forward", &op_pool2d_forward<T>, py::arg("x").noconvert(),
          py::arg("pool_size"), py::arg("strides"), py::arg("padding"), py::arg("is_max"));
    m.def("pool2d_backward", &op_pool2d_backward<T>, py::arg("x").noconvert(),
          py::arg("dy").noconvert(), py::arg("pool_size"), py::arg("strides"),
          py::arg("padding"), py::arg("is_max"));
    m.def("loss_grad_output", &op_loss_grad_output<T>, py::arg("loss"), py::arg("P").noconvert(),
          py::arg("Y").noconvert(), py::arg("sample_weight").noconvert() = py::none(),
          py::arg("scale") = 1.0);
    m.def("metric_sum", &op_metric<T>, py::arg("metric"), py::arg("P").noconvert(),
          py::arg("Y").noconvert(), py::arg("sample_weight").noconvert() = py::none());
    m.def("rmsprop_step", &op_rmsprop<T>, py::arg("p").noconvert(), py::arg("ms").noconvert(),
          py::arg("momentum_buffer").noconvert(), py::arg("grad").noconvert(), py::arg("lr"),
          py::arg("rho"), py::arg("epsilon"), py::arg("momentum"));
    // py::array_t without forcecast: only exact dtypes bind, the other overload is tried next.
    m.def("act_forward", &op_act_forward<T>, py::arg("z").noconvert(), py::arg("name"),
          py::arg("alpha") = 0.0);
    m.def("act_backward", &op_act_backward<T>, py::arg("y").noconvert(), py::arg("dy").noconvert(),
          py::arg("name"), py::arg("alpha") = 0.0);
    m.def("dense_forward", &op_dense_forward<T>, py::arg("X").noconvert(),
          py::arg("W").noconvert(), py::arg("b").noconvert() = py::none());
    m.def("dense_backward", &op_dense_backward<T>, py::arg("X").noconvert(),
          py::arg("W").noconvert(), py::arg("dY").noconvert());
    m.def("loss_value", &op_loss<T>, py::arg("loss"), py::arg("P").noconvert(),
          py::arg("Y").noconvert(), py::arg("sample_weight").noconvert() = py::none());
    m.def("loss_delta", &op_loss_delta<T>, py::arg("loss"), py::arg("P").noconvert(),
          py::arg("Y").noconvert(), py::arg("sample_weight").noconvert() = py::none(),
          py::arg("scale") = 1.0);
    m.def("sgd_step", &op_sgd<T>, py::arg("p").noconvert(), py::arg("velocity").noconvert(),
          py::arg("grad").noconvert(), py::arg("lr"), py::arg("momentum"), py::arg("nesterov"));
    m.def("adam_step", &op_adam<T>, py::arg("p").noconvert(), py::arg("m").noconvert(),
          py::arg("v").noconvert(), py::arg("grad").noconvert(), py::arg("lr_t"),
          py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "neuraxis C++ engine (private; use neuraxis.ops or the estimators)";
    init_threads();
    py::register_exception<ValueError>(m, "EngineValueError", PyExc_ValueError);

    py::class_<OptConfig>(m, "OptConfig")
        .def(py::init<>())
        .def_readwrite("kind", &OptConfig::kind)
        .def_readwrite("learning_rate", &OptConfig::learning_rate)
        .def_readwrite("beta_1", &OptConfig::beta_1)
        .def_readwrite("beta_2", &OptConfig::beta_2)
        .def_readwrite("epsilon", &OptConfig::epsilon)
        .def_readwrite("momentum", &OptConfig::momentum)
        .def_readwrite("nesterov", &OptConfig::nesterov)
        .def_readwrite("rho", &OptConfig::rho)
        .def_readwrite("t", &OptConfig::t)
        .def_readwrite("schedule", &OptConfig::schedule)
        .def_readwrite("schedule_args", &OptConfig::schedule_args)
        .def_readwrite("schedule_boundaries", &OptConfig::schedule_boundaries)
        .def_readwrite("schedule_values", &OptConfig::schedule_values)
        .def_readwrite("clipnorm", &OptConfig::clipnorm)
        .def_readwrite("clipvalue", &OptConfig::clipvalue)
        .def_readwrite("global_clipnorm", &OptConfig::global_clipnorm)
        .def_readwrite("weight_decay", &OptConfig::weight_decay)
        .def_readwrite("amsgrad", &OptConfig::amsgrad)
        .def_readwrite("centered", &OptConfig::centered)
        .def_readwrite("u_product", &OptConfig::u_product)
        .def_readwrite("reg_l1", &OptConfig::reg_l1)
        .def_readwrite("reg_l2", &OptConfig::reg_l2)
        .def_readwrite("no_decay", &OptConfig::no_decay)
        .def_readonly("last_lr", &OptConfig::last_lr);
    m.def("scheduled_lr", &scheduled_lr, py::arg("opt"), py::arg("step"),
          "The learning rate of opt's schedule at `step` (the engine's own formula).");

    bind_network<float>(m, "Network32");
    bind_network<double>(m, "Network64");
    bind_ops<float>(m);
    bind_ops<double>(m);

    m.def("dropout_mask",
          [](std::uint64_t seed, std::uint64_t layer, idx row0, idx rows, idx cols, double rate) {
              Arr<double> out({rows, cols});
              double* o = out.mutable_data();
              for (idx i = 0; i < rows; ++i)
                  for (idx j = 0; j < cols; ++j)
                      o[i * cols + j] = dropout_scale(seed, layer, std::uint64_t(row0 + i),
                                                      std::uint64_t(j), rate);
              return out;
          },
          py::arg("seed"), py::arg("layer"), py::arg("row0"), py::arg("rows"), py::arg("cols"),
          py::arg("rate"));
    m.def("set_num_threads", &set_num_threads, py::arg("n"));
    m.def("get_num_threads", &get_num_threads);
    m.def("thread_cap", &thread_cap);
    m.def("forked_child", &forked_child);
    m.def("blas_num_threads", &blas_num_threads);
    m.def("blas_config", &blas_config);
    m.def("simd_level", &simd_level);
    m.def("names", []() {
        py::dict d;
        for (const auto& [family, names] : name_table()) d[py::str(family)] = names;
        return d;
    }, "Every name the engine accepts, by family (activations, losses, metrics, ...).");
#ifdef NEURAXIS_VERSION
    m.attr("__version__") = NEURAXIS_VERSION;
#endif
}
