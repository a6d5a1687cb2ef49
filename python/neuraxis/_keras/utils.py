"""Small helpers shared by the Keras front's public modules and its internals."""
import os
import re
import sys

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
