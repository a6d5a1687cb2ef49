"""The layer list -> engine network compiler of the Keras front.

Each layer says which engine layer it is (`layer._engine_spec()`, one dict); this
turns the model's layers into the engine's input shape plus layer dicts, fusing
an activation into the linear Dense right before it (one pass over the data
instead of two), and builds (and caches on the model) the `_core.Network32`.
"""
import json

import numpy as np

from .. import _core
from . import session


def engine_specs(model):
    """(input_shape, layer dicts, params): what `_core.Network32` is built from, and the
    weight arrays it trains, in order."""
    layers, params = [], []
    fusable = False  # the last dict is a linear Dense with nothing after it yet
    for layer in model.layers:
        spec = layer._engine_spec()
        if spec is None:
            continue
        spec = dict(spec)
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
    return list(model._build_input_shape[1:]), layers, params


def network(model, loss_name="mse"):
    """The engine network for the model's current layers (cached while they do not change)."""
    input_shape, layers, params = engine_specs(model)
    key = (json.dumps([input_shape, layers], sort_keys=True), loss_name)
    if model._net_key != key:
        model._net = _core.Network32(input_shape, layers, loss_name, "batch_size")
        model._net_key = key
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
