"""Small helpers shared by the Keras front's public modules and its internals."""
import os
import re
import sys
import warnings

import numpy as np

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_stacklevel():
    """Stack level of the first frame outside neuraxis, so warnings point at the user's line."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PKG_DIR):
        frame = frame.f_back
        level += 1
    return level


def to_snake_case(name):
    """Keras's class-name -> auto-name rule: `LeakyReLU` -> `leaky_re_lu`."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def normalize_shape(shape, what="shape"):
    """A tuple of positive ints (None allowed, kept) from an int, list or tuple."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"{what} must be a tuple of integers, got {shape!r}") from None
    out = []
    for d in shape:
        if d is None:
            out.append(None)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0:
            out.append(int(d))
        else:
            raise ValueError(f"{what} must contain positive integers (or None), got {shape!r}")
    return tuple(out)


def check_input_shape(batch_shape, what="input shape"):
    """ValueError unless every axis but the batch is known. The one exception is the steps
    axis of a sequence input (batch, steps, features), or of a batch of id sequences
    (batch, steps) for an Embedding: it may be None (variable length), because no weight
    depends on it; the engine network is built per data length. (A layer that needs the
    axis, such as a Dense on (batch, steps), refuses it when the model is built.)"""
    dims = tuple(batch_shape)[1:]
    unknown = [i for i, d in enumerate(dims) if d is None]
    if not dims or (unknown and not (len(dims) in (1, 2) and unknown == [0])):
        raise ValueError(f"The {what} must be fully defined (e.g. shape=(64,)); only the steps "
                         "axis of a sequence input (steps, features) or of ids (steps,) may be "
                         f"None, e.g. shape=(None, 1) or shape=(None,). Got {dims}")


def shapes_compatible(a, b):
    """Same rank, and each axis equal or unknown (None) in one of them."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def check_weight_list(owner, named, weights):
    """Validate a `set_weights` list against [(name, array)] before touching anything."""
    if not isinstance(weights, (list, tuple)):
        raise ValueError(f"set_weights expects a list of arrays, got {type(weights).__name__}")
    if len(weights) != len(named):
        raise ValueError(
            f"You called `set_weights(weights)` on layer '{owner}' with a weight list of length "
            f"{len(weights)}, but the layer was expecting {len(named)} weights.")
    for (name, a), w in zip(named, weights):
        try:
            w = np.asarray(w, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"Weight '{name}' of layer '{owner}' is not numeric: {w!r}") from None
        if w.shape != a.shape:
            raise ValueError(f"Layer '{owner}' weight '{name}' shape {a.shape} is not compatible "
                             f"with provided weight shape {w.shape}.")


def monitor_op(monitor, mode, model, who):
    """np.less or np.greater for a callback's `monitor`, Keras's 'auto' rule included."""
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{who} mode {mode} is unknown, fallback to auto mode.",
                      stacklevel=user_stacklevel())
        mode = "auto"
    if mode == "min":
        return np.less
    if mode == "max":
        return np.greater
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name == "loss":
        return np.less
    direction = getattr(model, "_metric_directions", {}).get(name)
    if direction is None and name in ("accuracy", "acc") or (direction is None and "acc" in name):
        direction = "up"
    if direction is None and name in ("mse", "mae", "mean_squared_error", "mean_absolute_error"):
        direction = "down"
    if direction is None:
        raise ValueError(
            f"{who} callback received monitor={monitor} but neuraxis isn't able to automatically "
            "determine whether that metric should be maximized or minimized. Pass `mode='max'` "
            "in order to do early stopping based on the highest metric value, or pass "
            "`mode='min'` in order to use the lowest value.")
    return np.greater if direction == "up" else np.less
