"""The layer list -> engine network compiler of the Keras front.

Each layer says which engine operation it is (`layer._engine_op()`); this turns
the model's layers into the engine's layer specs, fusing an activation into the
linear Dense before it and a dropout into the spec before it, and builds (and
caches on the model) the `_core.Network32` for them.
"""
import math

from .. import _core


def engine_specs(model):
    """(specs, params): the engine's 7-tuples (kind, inputs, units, activation,
    alpha, dropout rate, use_bias) and the weight arrays they use, in order."""
    specs, params = [], []
    shape = model._build_input_shape
    width = math.prod(shape[1:])
    fusable = False  # last spec is a linear Dense with nothing after it yet
    for layer in model.layers:
        op = layer._engine_op()
        if op[0] == "dense":
            if len(shape) != 2:
                raise NotImplementedError(
                    f"Dense '{layer.name}' on inputs of shape {shape} (rank > 2) is not supported "
                    "yet; add a Flatten() before it")
            _, units, act, alpha, use_bias = op
            specs.append(["dense", width, units, act, float(alpha), 0.0, bool(use_bias)])
            params += layer.weights
            width, fusable = units, act == "identity"
        elif op[0] == "activation":
            _, act, alpha = op
            if fusable:
                specs[-1][3], specs[-1][4] = act, float(alpha)
            else:
                specs.append(["activation", width, width, act, float(alpha), 0.0, True])
            fusable = False
        elif op[0] == "dropout":
            if op[1] > 0:
                if specs and specs[-1][5] == 0:
                    specs[-1][5] = float(op[1])
                else:
                    specs.append(["activation", width, width, "identity", 0.0, float(op[1]), True])
                fusable = False
        shape = layer.output_shape
    if not specs:  # e.g. a model that only flattens
        specs.append(["activation", width, width, "identity", 0.0, 0.0, True])
    return [tuple(s) for s in specs], params


def network(model, loss_name="mse"):
    """The engine network for the model's current layers (cached while they do not change)."""
    specs, params = engine_specs(model)
    key = (tuple(specs), loss_name)
    if model._net_key != key:
        model._net = _core.Network32(specs, loss_name, "batch_size")
        model._net_key = key
    return model._net, params
