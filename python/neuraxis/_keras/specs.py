"""The layer list -> engine network compiler of the Keras front.

Each layer says which engine layer it is (`layer._engine_spec()`, one dict); this
turns the model's layers into the engine's input shape plus layer dicts, fusing
an activation into the linear Dense right before it (one pass over the data
instead of two), and builds (and caches on the model) the `_core.Network32`.

A model whose input has a variable steps axis (`Input((None, 1))`) gets one engine
network per data length: `sample_shape` reads the length off the rows' width.
"""
import json
import math

import numpy as np

from .. import _core
from . import session


_MAX_CACHED = 8


def sample_shape(model, X=None):
    """The per-sample input shape of the model's data: its build shape, with a variable steps
    axis (None) resolved from the width of the (n, prod(shape)) rows `X`."""
    shape = list(model._build_input_shape[1:])
    if None not in shape:
        return shape
    if X is None:
        raise ValueError(f"Model '{model.name}' has inputs of variable length "
                         f"{tuple(model._build_input_shape)}: its engine network is built for "
                         "the data it is given")
    known = math.prod(d for d in shape if d is not None)
    shape[shape.index(None)] = int(X.shape[1]) // known
    return shape


def check_inputs(model, x):
    """Let the model's first layer check its batch `x` before any engine call (an Embedding:
    integer ids in range), for layers that say more than shape and finiteness."""
    layers = model.layers
    check = getattr(layers[0], "_check_inputs", None) if layers else None
    if check is not None:
        check(x)


def output_shape(model, X=None):
    """The model's output shape (None batch) for the rows `X` (see `sample_shape`)."""
    if None not in model._build_input_shape[1:]:
        return tuple(model.output_shape)
    cur = (None,) + tuple(sample_shape(model, X))
    for layer in model.layers:
        cur = tuple(layer.compute_output_shape(cur))
    return cur


def engine_specs(model, input_shape=None):
    """(input_shape, layer dicts, params): what `_core.Network32` is built from, and the
    weight arrays it trains, in order. `input_shape` (per sample) defaults to the model's."""
    layers, params = [], []
    fusable = False  # the last dict is a linear Dense with nothing after it yet
    masker = None    # the layer whose step mask is active (Masking, Embedding(mask_zero))
    for layer in model.layers:
        spec = layer._engine_spec()
        if spec is None:
            continue
        spec = dict(spec)
        masker = _follow_mask(masker, layer, spec)
        if "trainable" in spec:
            spec["trainable"] = bool(spec["trainable"] and model.trainable)
        if spec["kind"] == "activation" and fusable:
            layers[-1].update(activation=spec["activation"], alpha=spec["alpha"])
            fusable = False
            continue
        if spec["kind"] == "dropout" and spec["rate"] == 0:
            continue
        layers.append(spec)
        params += layer.weights
        fusable = spec["kind"] == "dense" and spec["activation"] == "identity"
    shape = list(model._build_input_shape[1:]) if input_shape is None else list(input_shape)
    model._masked_output = masker.name if masker is not None else None
    return shape, layers, params


_RECURRENT = ("simple_rnn", "lstm", "gru", "bidirectional")
_MASK_PASSES = ("dense", "dropout", "activation")  # Keras passes the mask on unchanged


def _follow_mask(masker, layer, spec):
    """Keras's mask propagation, for the layers the engine runs with it: the recurrent
    layers skip the masked steps (`use_mask`) and pass the mask on only with
    return_sequences; Dense / Dropout / Activation pass it on. Any other layer would use
    the mask in Keras: refused rather than silently ignored. Returns the active masker."""
    kind = spec["kind"]
    if kind == "masking" or (kind == "embedding" and spec.get("mask_zero")):
        return layer
    if masker is None:
        return None
    if kind in _RECURRENT:
        spec["use_mask"] = True
        return masker if spec.get("return_sequences") else None
    if kind in _MASK_PASSES:
        return masker
    raise NotImplementedError(
        f"The step mask of layer \"{masker.name}\" ({type(masker).__name__}) reaches layer "
        f"\"{layer.name}\" ({type(layer).__name__}), which would use it in Keras; here only "
        "SimpleRNN / LSTM / GRU / Bidirectional use a mask (with Dense, Dropout and "
        "Activation layers between). Remove the mask (mask_zero=False / no Masking layer) or "
        "put a recurrent layer first.")


def network(model, loss_name="mse", X=None):
    """The engine network for the model's current layers and the rows `X` (cached while they
    do not change; a few per model, one per data length of a variable-length input)."""
    input_shape, layers, params = engine_specs(model, sample_shape(model, X))
    key = (json.dumps([input_shape, layers], sort_keys=True), loss_name)
    if model._net_key != key:
        cache = getattr(model, "_nets", None)
        if cache is None:
            cache = model._nets = {}
        if key not in cache:
            if len(cache) >= _MAX_CACHED:
                cache.pop(next(iter(cache)))
            # A step mask that reaches the (sequence) output: the loss and metrics take the
            # real steps only, as Keras's apply_mask.
            cache[key] = _core.Network32(input_shape, layers, loss_name, "batch_size",
                                         loss_mask=model._masked_output is not None)
        model._net, model._net_key = cache[key], key
    return model._net, params


def run_layer(name, spec, weights, x, training):
    """One layer on a float32 batch `x`, as a one-layer engine network (eager calls)."""
    net = _core.Network32(list(x.shape[1:]), [spec], "mse", "batch_size")
    expected = [tuple(s) for s in net.param_shapes]
    if expected != [w.shape for w in weights]:
        axis = weights[0].shape[0] if weights and weights[0].ndim else "?"
        raise ValueError(f"Input 0 of layer \"{name}\" is incompatible with the layer: expected "
                         f"axis -1 of input shape to have value {axis}, but received input with "
                         f"shape {x.shape}")
    out, _ = net.predict(weights, np.ascontiguousarray(x, dtype=np.float32),
                         training=bool(training), seed=session.draw_seed() if training else 0)
    return out
