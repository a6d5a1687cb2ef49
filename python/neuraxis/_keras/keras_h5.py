"""Keras 3's HDF5 weights layout (`model.weights.h5` in a `.keras` zip, and `.weights.h5`).

Keras walks the model and writes one group per object, named by class, not by the
layer's own name (`dense`, `dense_1`, ... in the order of `model.layers`):

    vars                                  (attrs name=<model name>; no datasets)
    layers/dense/vars/0, 1                Dense kernel, bias
    layers/lstm/vars                      (empty) and layers/lstm/cell/vars/0..2
    layers/bidirectional/forward_layer/cell/vars/0..2, .../backward_layer/cell/vars/0..2
    layers/time_distributed/layer/vars/0, 1
    optimizer/vars/0, 1, 2, ...           iterations, learning rate, then the slots of the
                                          trainable weights in Keras's order (Adam: m_i, v_i
                                          interleaved; SGD: momenta; RMSprop: all velocities,
                                          then all momenta)

Reading checks every group and dataset before anything is read: hard links only (no
soft or external links, no external or virtual datasets: nothing outside the file is
followed), the exact dataset count, and each dataset's dtype and shape against the
array the model built from its config expects. Only then are values read.

Example
-------
>>> from neuraxis.layers import Dense, Input, LSTM
>>> from neuraxis.models import Sequential
>>> from neuraxis._keras.keras_h5 import layer_groups
>>> model = Sequential([Input((None, 2)), LSTM(3), Dense(1)])
>>> [(path, len(arrays)) for path, _, arrays in layer_groups(model)]
[('layers/lstm', 0), ('layers/lstm/cell', 3), ('layers/dense', 2)]
"""
import warnings

import numpy as np

from .utils import to_snake_case, user_stacklevel

_CELLS = {"SimpleRNN": "simple_rnn_cell", "LSTM": "lstm_cell", "GRU": "gru_cell"}


def _h5py():
    import h5py  # a run-time dependency, imported only when a file is read or written
    return h5py


# --- the layout ---------------------------------------------------------------------------
def _groups_of(layer, path):
    kinds = {c.__name__ for c in type(layer).__mro__}
    cell = next((_CELLS[k] for k in _CELLS if k in kinds), None)
    if cell is not None:  # Keras keeps a recurrent layer's weights in its cell
        return [(path, layer.name, []), (f"{path}/cell", cell, layer.weights)]
    if "Bidirectional" in kinds:
        return ([(path, layer.name, [])] + _groups_of(layer.forward_layer, f"{path}/forward_layer")
                + _groups_of(layer.backward_layer, f"{path}/backward_layer"))
    if "TimeDistributed" in kinds:
        return [(path, layer.name, [])] + _groups_of(layer.layer, f"{path}/layer")
    return [(path, layer.name, layer.weights)]


def layer_groups(model):
    """[(group path, Keras's `name` attribute, [live weight arrays])], in Keras's layout."""
    out, seen = [], {}
    for layer in model.layers:
        base = to_snake_case(type(layer).__name__)
        n = seen.get(base, -1) + 1
        seen[base] = n
        out += _groups_of(layer, f"layers/{base}" if n == 0 else f"layers/{base}_{n}")
    return out


def optimizer_slots(opt, trainable, params=None):
    """The optimizer's slot arrays in Keras's `optimizer/vars` order (after iterations and
    the learning rate): its slot groups (`Optimizer._groups`: e.g. Adam's momentums and
    velocities interleaved per weight, then amsgrad's velocity_hats; RMSprop's velocities,
    momentums, average gradients one list after the other). `trainable`: one flag per
    model weight (Keras builds slots for the trainable ones only). With `params`, fresh
    slots shaped like them (what an optimizer that has not stepped holds)."""
    if params is not None:
        m = [np.full(p.shape, opt._slot_init(0), np.float32) for p in params]
        v = [np.full(p.shape, opt._slot_init(k), np.float32)
             for k in range(1, opt._n_slots()) for p in params]
    else:
        m, v = opt._m, opt._v
    n = len(m)
    slot = (lambda k: m if k == 0 else v[(k - 1) * n:k * n])  # noqa: E731
    idx = [i for i, t in enumerate(trainable) if t]
    out = []
    for group in opt._groups:
        lists = [slot(k) for k in group]
        out += [a[i] for i in idx for a in lists]
    return out


def _head(opt):
    """The scalars before the slots: iterations, and the learning rate unless a schedule
    computes it (Keras then has no learning-rate variable)."""
    head = [np.array(opt.iterations, np.int64)]
    if getattr(opt, "_schedule", None) is None:
        head.append(np.array(opt.learning_rate, np.float32))
    return head


def _trainable_flags(model):
    ids = {id(w) for w in model.trainable_weights}
    return [id(w) in ids for w in model.weights]


def _optimizer_state(model):
    """(name, [iterations, learning rate, *slots]) to write, or None (not compiled/built).
    An optimizer that has not stepped yet is written as Keras holds it: zero slots."""
    opt = model.optimizer if model.compiled else None
    if opt is None or not model.built:
        return None
    if opt.built and len(opt._m) == len(model.weights):
        slots = optimizer_slots(opt, opt._trainable or _trainable_flags(model))
        extra = opt._extra_variables()  # Nadam's running product of momentum factors
    else:
        slots = optimizer_slots(opt, _trainable_flags(model), model.weights)
        extra = [np.array(v, np.float32) for v in opt._scalar_state().values()]
    return opt.name, _head(opt) + slots + extra


# --- writing --------------------------------------------------------------------------
def write(model, target):
    """Write the model's weights (and optimizer state, when compiled) in Keras's layout to
    `target`: a path or a binary file object."""
    h5py = _h5py()
    with h5py.File(target, "w") as f:
        f.create_group("vars").attrs["name"] = model.name
        f.create_group("layers")
        for path, name, arrays in layer_groups(model):
            group = f.require_group(path).create_group("vars")
            group.attrs["name"] = name
            for i, a in enumerate(arrays):
                group.create_dataset(str(i), data=np.ascontiguousarray(a, np.float32))
        state = _optimizer_state(model)
        if state is not None:
            group = f.create_group("optimizer").create_group("vars")
            group.attrs["name"] = state[0]
            for i, a in enumerate(state[1]):
                group.create_dataset(str(i), data=a)


# --- checked reading ------------------------------------------------------------------
def _child(h5py, parent, name, kind, where):
    """parent[name] when it is a hard-linked object of `kind` (else ValueError); None if
    absent."""
    if name not in parent:
        return None
    link = parent.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise ValueError(f"{where}/{name} is a {type(link).__name__}: links to other files or "
                         "paths are not followed")
    obj = parent[name]
    if not isinstance(obj, kind):
        raise ValueError(f"{where}/{name} is a {type(obj).__name__}, expected a "
                         f"{kind.__name__}")
    return obj


def _vars_group(h5py, f, path):
    group = f
    for part in path.split("/"):
        group = _child(h5py, group, part, h5py.Group, path)
        if group is None:
            return None
    return _child(h5py, group, "vars", h5py.Group, path)


def _dataset(h5py, group, key, where):
    ds = _child(h5py, group, key, h5py.Dataset, where)
    if ds is None:
        raise ValueError(f"missing dataset {where}/{key}")
    if ds.external or ds.is_virtual:
        raise ValueError(f"{where}/{key} keeps its data outside the file; refused")
    return ds


def _check_count(group, n, where):
    keys = sorted(group.keys()) if group is not None else []
    if keys != sorted(str(i) for i in range(n)):
        raise ValueError(f"{where}/vars holds {len(keys)} entries {keys[:6]}, but the model's "
                         f"config expects {n} weights")


def _read_like(h5py, group, key, like, where):
    """group[key] as an array, after checking it is a plain float32 dataset of like's shape."""
    ds = _dataset(h5py, group, key, where)
    if ds.dtype != np.float32 or ds.shape != like.shape:
        raise ValueError(f"{where}/vars/{key} holds {ds.dtype} {ds.shape}, but the model's "
                         f"config expects float32 {like.shape}")
    out = np.empty(like.shape, np.float32)
    if out.size:
        ds.read_direct(out)
    return out


def _read_scalar(h5py, group, key, kinds, where):
    ds = _dataset(h5py, group, key, where)
    if ds.shape != () or ds.dtype.kind not in kinds:
        raise ValueError(f"{where}/vars/{key} holds {ds.dtype} {ds.shape}, expected a scalar")
    return ds[()]


def read_layers(f, model, skip_mismatch=False):
    """[(live array, value)] for every model weight, read from the open h5 `f` after its
    checks. With `skip_mismatch`, a layer that does not match is skipped with a warning."""
    h5py = _h5py()
    loaded = []
    for path, _, arrays in layer_groups(model):
        try:
            group = _vars_group(h5py, f, path)
            _check_count(group, len(arrays), path)
            loaded += [(a, _read_like(h5py, group, str(i), a, path))
                       for i, a in enumerate(arrays)]
        except ValueError as e:
            if not skip_mismatch:
                raise
            warnings.warn(f"Skipping {path}: {e}", stacklevel=user_stacklevel())
    return loaded


def has_optimizer(f):
    return "optimizer" in f


def read_optimizer(f, model):
    """Restore the compiled model's optimizer (iterations, learning rate, slots) from the
    open h5 `f`. A state that does not fit this optimizer is skipped with a warning, as
    Keras does; a damaged one is a ValueError."""
    h5py = _h5py()
    group = _vars_group(h5py, f, "optimizer")
    n = len(group.keys()) if group is not None else 0
    opt = model.optimizer
    params, flags = model.weights, _trainable_flags(model)
    fresh = optimizer_slots(opt, flags, params)
    scalars = list(opt._scalar_state())  # names of the scalar variables after the slots
    head = len(_head(opt))
    expected = head + len(fresh) + len(scalars)
    if n != expected:
        warnings.warn(f"Skipping variable loading for optimizer '{opt.name}', because it has "
                      f"{expected} variables whereas the saved optimizer has {n} variables.",
                      stacklevel=user_stacklevel())
        return
    _check_count(group, expected, "optimizer")
    it = int(_read_scalar(h5py, group, "0", "iu", "optimizer"))
    lr = float(_read_scalar(h5py, group, "1", "f", "optimizer")) if head == 2 else None
    if not 0 <= it < 2**63:
        raise ValueError(f"invalid optimizer iterations {it}")
    values = [_read_like(h5py, group, str(i + head), z, "optimizer")
              for i, z in enumerate(fresh)]
    extra = [float(_read_scalar(h5py, group, str(head + len(fresh) + i), "f", "optimizer"))
             for i in range(len(scalars))]
    opt.build(params, trainable=flags)
    for a, value in zip(optimizer_slots(opt, flags), values):
        a[...] = value
    opt.iterations = it
    if scalars:
        opt._load_scalar_state(dict(zip(scalars, extra)))
    if lr is not None and np.float32(opt.learning_rate) != np.float32(lr):
        opt.learning_rate = lr  # moved since compile (a callback): the file's value wins
