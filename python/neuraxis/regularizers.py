"""Weight regularizers, Keras's `keras.regularizers`: L1, L2, L1L2.

A layer's `kernel_regularizer`, `bias_regularizer`, `recurrent_regularizer` or
`embeddings_regularizer` adds `l1 * sum(|w|) + l2 * sum(w²)` of that weight to
the loss, as Keras adds its layers' losses: during training the engine adds
the penalty of the weights before each step to the batch's loss (it shows in
the history's `loss`) and its gradient `l1 sign(w) + 2 l2 w` to the weight's
gradient, before clipping. `evaluate` adds the penalty of the current weights.

Example
-------
>>> from neuraxis import regularizers
>>> regularizers.get("l2").get_config()
{'l2': 0.01}
>>> import numpy as np
>>> round(float(regularizers.L1L2(l1=0.1, l2=0.5)(np.array([1.0, -2.0]))), 6)
2.8
"""
import math

import numpy as np

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize",
           "deserialize"]


def _validate(value, name):
    if isinstance(value, bool) or not isinstance(value, (float, int)) or \
            math.isinf(value) or math.isnan(value) or value < 0:
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float."
                         f"Received: {name}={value}")
    return float(value)


class Regularizer:
    """Base class. The engine runs L1/L2 penalties only: a subclass says its (l1, l2)."""

    def __call__(self, x):
        return 0.0

    def _l1_l2(self):
        """(l1, l2) of the penalty, which the engine applies."""
        raise NotImplementedError(
            f"Regularizer {type(self).__name__} is not supported by the engine (only L1, L2 "
            "and L1L2 are)")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        raise NotImplementedError(f"{self} does not implement get_config()")


class L1L2(Regularizer):
    """`l1 * sum(|x|) + l2 * sum(x²)`.

    Example
    -------
    >>> L1L2(l1=0.01).get_config()
    {'l1': 0.01, 'l2': 0.0}
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _validate(0.0 if l1 is None else l1, "l1")
        self.l2 = _validate(0.0 if l2 is None else l2, "l2")

    def __call__(self, x):
        x = np.asarray(x, np.float32)
        return np.float32(self.l1) * np.abs(x).sum() + np.float32(self.l2) * np.square(x).sum()

    def _l1_l2(self):
        return self.l1, self.l2

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """`l1 * sum(|x|)`; its config reads l1 as float32 (Keras holds it as a tensor).

    Example
    -------
    >>> L1(0.5).get_config()
    {'l1': 0.5}
    """

    def __init__(self, l1=0.01):
        self.l1 = _validate(0.01 if l1 is None else l1, "l1")

    def __call__(self, x):
        return np.float32(self.l1) * np.abs(np.asarray(x, np.float32)).sum()

    def _l1_l2(self):
        return self.l1, 0.0

    def get_config(self):
        return {"l1": float(np.float32(self.l1))}


class L2(Regularizer):
    """`l2 * sum(x²)`.

    Example
    -------
    >>> L2().get_config()
    {'l2': 0.01}
    """

    def __init__(self, l2=0.01):
        self.l2 = _validate(0.01 if l2 is None else l2, "l2")

    def __call__(self, x):
        return np.float32(self.l2) * np.square(np.asarray(x, np.float32)).sum()

    def _l1_l2(self):
        return 0.0, self.l2

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2

# Keras's lookup table: class names and their snake_case ("l1l2", not "l1_l2")
_OBJECTS = {"Regularizer": Regularizer, "L1": L1, "L2": L2, "L1L2": L1L2,
            "regularizer": Regularizer, "l1": L1, "l2": L2, "l1l2": L1L2}


def serialize(regularizer):
    if regularizer is None:
        return None
    return {"module": "keras.regularizers", "class_name": type(regularizer).__name__,
            "config": regularizer.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret regularizer identifier: {config}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _OBJECTS.get(name)
    if cls is None:
        raise ValueError(f"Could not interpret regularizer identifier: {name}")
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier):
    """A regularizer from None, a name ('l1', 'l2', 'l1l2', 'L1L2'), a config dict or an
    instance (a class is instantiated with its defaults)."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = _OBJECTS.get(identifier)
    else:
        obj = identifier
    if isinstance(obj, type) and issubclass(obj, Regularizer):
        return obj()
    if isinstance(obj, Regularizer):
        return obj
    raise ValueError(f"Could not interpret regularizer identifier: {identifier}")
