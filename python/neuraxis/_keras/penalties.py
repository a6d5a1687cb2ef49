"""The layers' weight penalties (kernel_regularizer, ...) as the engine and the loss see them.

Training: one (l1, l2) pair per engine parameter goes into the optimizer's engine
config, and the engine adds the penalty to each batch's loss and its gradient to the
weight's. Evaluation: Keras adds the penalty of the current weights to every batch's
loss, so evaluate's loss gets it added here (a sum over the weights, once per call).

Example
-------
>>> from neuraxis import layers, models
>>> m = models.Sequential([layers.Input((2,)), layers.Dense(1, kernel_regularizer="l1")])
>>> l1, l2 = engine_penalties(m)
>>> [round(v, 6) for v in l1], l2
([0.01, 0.0], [0.0, 0.0])
"""
import numpy as np

# The layer attribute holding each weight's regularizer, by the weight's name.
_ATTR = {"kernel": "kernel_regularizer", "bias": "bias_regularizer",
         "recurrent_kernel": "recurrent_regularizer",
         "embeddings": "embeddings_regularizer"}


def weight_regularizers(layer):
    """One regularizer (or None) per weight of `layer`, in its weights' order."""
    out = []
    for name, _ in layer._weights:
        owner = layer
        if "/" in name:  # a wrapper's inner layer (Bidirectional: forward/kernel, ...)
            prefix, name = name.split("/", 1)
            owner = getattr(layer, f"{prefix}_layer", None)
        out.append(getattr(owner, _ATTR.get(name, ""), None))
    return out


def weight_names(model):
    """The name of every engine parameter's weight ('kernel', 'bias', ...; a wrapper's inner
    weights without their prefix), in the order of specs.engine_specs."""
    return [name.rsplit("/", 1)[-1] for layer in model.layers
            if layer._engine_spec() is not None for name, _ in layer._weights]


def engine_penalties(model):
    """(l1, l2) per engine parameter of `model` (the order of specs.engine_specs), or
    (None, None) when no trainable weight has a regularizer."""
    l1s, l2s, any_reg = [], [], False
    for layer in model.layers:
        if layer._engine_spec() is None:
            continue
        trained = bool(layer.trainable and model.trainable)
        for reg in weight_regularizers(layer):
            a, b = reg._l1_l2() if reg is not None and trained else (0.0, 0.0)
            any_reg |= a != 0.0 or b != 0.0
            l1s.append(a)
            l2s.append(b)
    return (l1s, l2s) if any_reg else (None, None)


def penalty(model):
    """The sum of the trainable weights' penalties at their current values (float32, as
    Keras adds them to the loss of evaluate / test_on_batch)."""
    total = np.float32(0.0)
    for layer in model.layers:
        if layer._engine_spec() is None or not (layer.trainable and model.trainable):
            continue
        for reg, w in zip(weight_regularizers(layer), layer.weights):
            if reg is not None:
                total += np.float32(reg(w))
    return float(total)


def add_penalty(model, res):
    """An engine result (loss_sum over rows) with the penalty added to every row's loss."""
    p = penalty(model)
    if p:
        res["loss_sum"] = res["loss_sum"] + p * res["rows"]
    return res
