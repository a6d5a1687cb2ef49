"""How a Sequential model runs on the engine: the fit / evaluate / predict loops around
the engine calls (the layer list -> engine network compiler is `specs.py`).

The batch loop itself is C++ (`Network32.train_batches`); Python calls it once
per epoch, or in chunks when a progress bar or a batch callback needs to see
progress. Dropout masks come from one seed per epoch, and the engine derives each
mask entry from (seed, layer, row position in the epoch, unit), so results do not
depend on the chunking.
"""
import math
import time

import numpy as np

from . import data, penalties, session
from .progbar import Progbar
from .specs import check_inputs, network, output_shape


# --- targets and metrics for one call ---------------------------------------------------
class Plan:
    """What one fit/evaluate call trains on: engine loss, targets, metric names.

    The model resolves its compile() loss and metrics for these targets
    (`model._resolve_compile`, which knows the loss and metric classes); this turns the
    result into the engine's names and target array.
    """

    def __init__(self, model, y, n, out_shape=None):
        out_shape = model.output_shape if out_shape is None else out_shape
        raw = data.as_array(y, "y")
        loss, kind, metrics = model._resolve_compile(raw.shape)
        self.loss = loss
        self.engine_loss = ("categorical_crossentropy" if loss._engine in
                            ("categorical_crossentropy", "sparse_categorical_crossentropy")
                            else loss._engine)
        self.Y = data.targets(raw, loss, kind, out_shape, n)
        self.names, self.engine_metrics, self.weighted = [], [], []
        # per metric: None (one slot) or (metric object, its slots) for a streaming metric,
        # whose value the object computes from its summed slots
        self.streams = []
        onehot = kind == "sparse"
        for name, eng, direction, weighted, *stream in metrics:
            if eng.startswith("sparse_"):
                if not onehot:
                    raise ValueError(f"Metric '{name}' is for integer labels ({eng}), which "
                                     "needs loss='sparse_categorical_crossentropy'")
                eng = eng[len("sparse_"):]  # the engine sees the one-hot targets
            stream = stream[0] if stream else None
            self.streams.append(None if stream is None else (stream, stream._slots(out_shape)))
            if weighted and name in self.names:  # Keras: a weighted twin of a plain metric
                name = "weighted_" + name
            while name in self.names or name == "loss":
                name += "_1"
            self.names.append(name)
            self.weighted.append(weighted)
            self.engine_metrics.append(("weighted:" if weighted else "") + eng)
            model._metric_directions[name] = direction
        model._metric_names = list(self.names)
        smoothing = getattr(loss, "_kw", {}).get("label_smoothing", 0.0)
        if smoothing and any(e.split(":")[-1] != "categorical_accuracy"
                             for e in self.engine_metrics):
            # The engine sees one target array; smoothed targets would skew these metrics.
            raise NotImplementedError("label_smoothing is only supported with categorical "
                                      f"accuracy metrics, not {self.engine_metrics}")


class Running:
    """Sums returned by the engine; loss = loss_sum / rows, metric = metric_sum / weight_sum
    (weighted metrics) or metric_sum / rows (plain metrics, as Keras 3 keeps them)."""

    def __init__(self, names=(), weighted=None, streams=None):
        self.names = list(names)
        self.weighted = list(weighted) if weighted is not None else [False] * len(self.names)
        self.streams = list(streams) if streams is not None else [None] * len(self.names)
        self.loss_sum, self.rows, self.metric_rows, self.metric_weight = 0.0, 0, 0.0, 0.0
        self.metric_sums = [0.0] * sum(1 if s is None else s[1] for s in self.streams)

    def add(self, res):
        self.loss_sum += res["loss_sum"]
        self.rows += res["rows"]
        # rows and weights, or with a masked sequence output their shares of real steps
        self.metric_rows += res["metric_rows"]
        self.metric_weight += res["metric_weight"]
        self.metric_sums = [a + b for a, b in zip(self.metric_sums, res["metric_sums"])]

    def logs(self):
        out = {"loss": self.loss_sum / self.rows if self.rows else 0.0}
        at = 0
        for name, w, stream in zip(self.names, self.weighted, self.streams):
            if stream is not None:  # counts -> the metric's value (a vector for some)
                value = stream[0]._from_sums(self.metric_sums[at:at + stream[1]])
                out[name] = value if np.ndim(value) else float(value)
                at += stream[1]
                continue
            den = self.metric_weight if w else self.metric_rows
            out[name] = self.metric_sums[at] / den if den else 0.0
            at += 1
        return {k: out[k] if np.ndim(out[k]) else float(out[k]) for k in sorted(out)}

    def values(self):
        """Keras's `_flatten_metrics_in_order`: the metric objects' names in order, then the
        log keys no object is named (a weighted twin's object keeps the plain name, so
        metrics=['accuracy'], weighted_metrics=['accuracy'] give loss, accuracy twice,
        weighted_accuracy)."""
        logs = self.logs()
        objects = ["loss"] + [n[len("weighted_"):] if w and n.startswith("weighted_")
                              and n[len("weighted_"):] in self.names else n
                              for n, w in zip(self.names, self.weighted)]
        return ([logs[n] for n in objects if n in logs] +
                [logs[k] for k in sorted(logs) if k not in objects])


def prepare(model, x, y, sample_weight=None, class_weight=None, what="fit"):
    """Checked float32 (X2d, plan, sw) for training or evaluation."""
    model._assert_compiled(what)
    x = data.as_features(x, model._build_input_shape if model.built else None, model.name)
    if not model.built:
        model.build((None,) + x.shape[1:])
    check_inputs(model, x)
    if y is None:
        raise ValueError(f"`{what}` needs targets: pass y")
    if model._loss is None:
        raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
    if class_weight is not None and len(model.output_shape) > 2:
        raise ValueError("`class_weight` is only supported for outputs of one axis per sample "
                         f"(the model's output shape is {model.output_shape}); pass "
                         "sample_weight instead")
    n = len(x)
    X = x.reshape(n, -1)
    plan = Plan(model, y, n, output_shape(model, X))
    sw = data.sample_weights(sample_weight, class_weight, y, n)
    data.check_finite(X)
    return X, plan, sw


def train_chunk(model, net, params, X, Y, sw, perm, bs, first, count, metrics, seed):
    """One engine call; the optimizer's step count is read back even if it is interrupted."""
    opt = model.optimizer
    cfg = opt._engine_config()
    l1, l2 = penalties.engine_penalties(model)
    if l1 is not None:  # the layers' regularizers: added to the loss and gradients
        cfg.reg_l1, cfg.reg_l2 = l1, l2
    if opt._excludes_weight_decay():
        cfg.no_decay = opt._no_decay_flags(params, penalties.weight_names(model))
    try:
        return net.train_batches(params, cfg, opt._m, opt._v, X, Y, sw, perm, bs, first, count,
                                 metrics, seed)
    finally:
        opt._absorb(cfg)


def run_epoch(model, net, params, X, plan, sw, bs, shuffle, callbacks, every_batch, running,
              state):
    """Train one epoch in as few engine calls as the callbacks and progress bar allow."""
    n = len(X)
    steps = math.ceil(n / bs)
    rng = session.rng()
    perm = None
    if shuffle == "batch":
        perm = np.arange(n, dtype=np.int64)
        for s in range(0, n, bs):
            perm[s:s + bs] = rng.permutation(perm[s:s + bs])
    elif shuffle:
        perm = rng.permutation(n).astype(np.int64)
    seed = dropout_seed(model)
    per_batch = every_batch
    # A progress bar wants a redraw about every 0.05 s; start with one batch to time it.
    chunk = 1 if (per_batch or data.verbosity(callbacks.params.get("verbose", 0)) == 1) else steps
    done = 0
    while done < steps:
        count = min(chunk, steps - done)
        if per_batch:
            callbacks.on_train_batch_begin(done)
        t0 = time.perf_counter()
        res = train_chunk(model, net, params, X, plan.Y, sw, perm, bs, done, count,
                          plan.engine_metrics, seed)
        elapsed = time.perf_counter() - t0
        running.add(res)
        done += count
        state["done"] = done
        callbacks.on_train_batch_end(done - 1, running.logs())
        if model.stop_training:
            break
        if not per_batch:
            chunk = max(1, min(steps, int(0.05 * count / max(elapsed, 1e-9))))
    return done


def dropout_seed(model):
    """The epoch's mask seed: from the Dropout layers' own seeds if any, else the global stream."""
    seeds = [la.seed for la in model.layers
             if (la._engine_spec() or {}).get("kind") == "dropout"
             and getattr(la, "seed", None) is not None]
    if not seeds:
        return session.draw_seed()
    if getattr(model, "_dropout_rng", None) is None:
        model._dropout_rng = np.random.default_rng([int(s) for s in seeds])
    return int(model._dropout_rng.integers(0, 2**63 - 1))


def evaluate_arrays(model, net, params, X, Y, sw, bs, metric_names, engine_metrics, bar=None,
                    streams=None):
    """Loss and metrics over all rows (no dropout, no update) in one engine call, so the
    numbers never depend on `verbose`; the bar is drawn when done."""
    running = Running(metric_names, [e.startswith("weighted:") for e in engine_metrics],
                      streams)
    running.add(penalties.add_penalty(model, net.evaluate(params, X, Y, sw, bs, engine_metrics)))
    if bar is not None:
        bar.update(bar.target, list(running.logs().items()), finalize=True)
    return running


def predict_arrays(model, X, bs, verbose):
    """(n, k) float32 outputs in one engine call; a NaN/inf input is reported as a ValueError.

    One call, not chunks: BLAS rounding depends on how rows are grouped, and predictions
    must not change with `verbose` or timing. So the bar (Keras's look) is drawn at the end.
    """
    net, params = network(model, model._net_key[-1] if model._net_key else "mse", X)
    bar = Progbar(math.ceil(len(X) / bs), verbose=verbose) if verbose else None
    out, nonfinite = net.predict(params, X)
    if nonfinite:
        # The cheap engine flag first; only then scan x to say whose fault it is.
        data.check_finite(X)
    if bar is not None:
        bar.update(bar.target, finalize=True)
    return out


def split_validation(x, y, sw, cw_sw, split):
    """Keras's rule: validation = the last floor-complement rows, split before shuffling."""
    if not 0 <= split < 1:
        raise ValueError(f"validation_split must be in [0, 1), got {split}")
    n = len(x)
    at = int(math.floor(n * (1.0 - split)))
    if at == 0 or at == n:
        raise ValueError(
            f"Training data contains {n} samples, which is not sufficient to split it into a "
            f"validation and training set as specified by `validation_split={split}`. Either "
            "provide more data, or a different value for the `validation_split` argument.")
    cut = (lambda a: (None, None) if a is None else (a[:at], a[at:]))
    return cut(x), cut(y), cut(sw), cut(cw_sw)


def check_fit_args(epochs, initial_epoch, validation_freq):
    for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not (isinstance(validation_freq, int) and validation_freq > 0
            or isinstance(validation_freq, (list, tuple, set))):
        raise ValueError("validation_freq must be a positive integer or a list of epochs, got "
                         f"{validation_freq!r}")


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
        shuffle, class_weight, sample_weight, initial_epoch, validation_batch_size,
        validation_freq, callback_list):
    """Keras's fit on NumPy data; returns the History callback.

    `callback_list` is `neuraxis.callbacks.CallbackList` (passed in by the public
    `Sequential.fit`, so that nothing here imports the public callbacks module): called as
    `callback_list(callbacks, model=..., add_history=..., add_progbar=..., verbose=...,
    epochs=..., steps=...)` once the data checked out, it returns the CallbackList to run.
    """
    given_verbose, verbose = verbose, data.verbosity(verbose)
    bs = data.batch_size(batch_size)
    check_fit_args(epochs, initial_epoch, validation_freq)
    model._assert_compiled("fit")
    xa = data.as_array(x, "x")
    if y is None:
        raise ValueError("`fit` needs targets: pass y")
    data.check_cardinality(len(xa), len(data.as_array(y, "y")), "y")
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("When passing a `validation_data` argument, it must contain either 2 "
                             "items (x_val, y_val), or 3 items (x_val, y_val, val_sample_weights)."
                             f" However, we received `validation_data={validation_data!r}`")
        val = tuple(validation_data) + (None,) * (3 - len(validation_data))
    elif validation_split:
        (xa, xv), (y, yv), (sample_weight, swv), _ = split_validation(
            xa, data.as_array(y, "y"), None if sample_weight is None
            else data.as_array(sample_weight, "sample_weight"), None, validation_split)
        val = (xv, yv, swv)
    X, plan, sw = prepare(model, xa, y, sample_weight, class_weight)
    if val is not None:
        Xv, vplan, swv = prepare(model, val[0], val[1], val[2])
    net, params = network(model, plan.engine_loss, X)
    model.optimizer.build(params, trainable=net.param_trainable)
    steps = math.ceil(len(X) / bs)
    cbs = callback_list(callbacks, model=model, add_history=True, add_progbar=verbose != 0,
                        verbose=given_verbose, epochs=epochs, steps=steps)
    every_batch = cbs.every_batch()
    vbs = data.batch_size(validation_batch_size, bs)
    model.stop_training = False
    state = {"epoch": initial_epoch, "done": 0}
    logs = {}
    cbs.on_train_begin()
    try:
        for epoch in range(initial_epoch, epochs):
            state.update(epoch=epoch, done=0)
            running = Running(plan.names, plan.weighted, plan.streams)
            model._running = running
            cbs.on_epoch_begin(epoch)
            run_epoch(model, net, params, X, plan, sw, bs, shuffle, cbs, every_batch,
                      running, state)
            logs = running.logs()
            freq = validation_freq
            if val is not None and ((epoch + 1) % freq == 0 if isinstance(freq, int)
                                    else epoch + 1 in freq):
                # a variable-length model may see validation rows of another length
                vnet, _ = network(model, vplan.engine_loss, Xv)
                vr = evaluate_arrays(model, vnet, params, Xv, vplan.Y, swv, vbs, vplan.names,
                                     vplan.engine_metrics, streams=vplan.streams)
                logs.update({"val_" + k: v for k, v in vr.logs().items()})
            cbs.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    except KeyboardInterrupt:
        # Keras lets it propagate (no on_train_end); the engine stopped between two
        # batches, so the weights and optimizer state are those of whole batches.
        model.stop_training = True
        for cb in cbs.callbacks:
            if getattr(cb, "bar", None) is not None:
                cb.bar.close_line()
        raise
    cbs.on_train_end(logs)
    return cbs.history
