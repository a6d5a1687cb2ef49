"""Activation functions of the Keras front, by name.

Each function works on NumPy arrays (float32 math, last axis for softmax), so a
user can call it directly; inside a model the engine applies the same function
in C++. `get()` resolves a name the way `keras.activations.get` does.

Example
-------
>>> import numpy as np
>>> from neuraxis import activations
>>> activations.get("relu")(np.array([-1.0, 2.0]))
array([0., 2.], dtype=float32)
"""
import numpy as np

from . import _names


def _f32(x):
    return np.asarray(x, dtype=np.float32)


def linear(x):
    """Identity."""
    return _f32(x)


def sigmoid(x):
    """1 / (1 + exp(-x))."""
    x = _f32(x)
    # Split by sign so exp never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(np.float32)


def tanh(x):
    """Hyperbolic tangent."""
    return np.tanh(_f32(x))


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0), with Keras's optional slope, cap and threshold."""
    x = _f32(x)
    # "+ 0" turns the -0.0 of 0 * negative into 0.0, as Keras prints it.
    y = (np.where(x >= threshold, x, np.float32(negative_slope) * (x - threshold)) + 0).astype(
        np.float32)
    return y if max_value is None else np.minimum(y, np.float32(max_value))


def leaky_relu(x, negative_slope=0.2):
    """x if x > 0 else negative_slope * x (the function's default slope is 0.2, the layer's 0.3)."""
    x = _f32(x)
    return np.where(x > 0, x, np.float32(negative_slope) * x).astype(np.float32)


def elu(x, alpha=1.0):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    x = _f32(x)
    return np.where(x > 0, x, np.float32(alpha) * np.expm1(np.minimum(x, 0))).astype(np.float32)


def softplus(x):
    """log(1 + exp(x)), computed without overflow."""
    x = _f32(x)
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(np.float32)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`."""
    x = _f32(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


_FUNCTIONS = {f.__name__: f for f in (linear, sigmoid, tanh, relu, leaky_relu, elu, softplus,
                                      softmax)}

# Keras name -> (engine name, engine alpha). The alphas are the functions' defaults.
ENGINE = {
    "linear": ("identity", 0.0),
    "sigmoid": ("logistic", 0.0),
    "tanh": ("tanh", 0.0),
    "relu": ("relu", 0.0),
    "leaky_relu": ("leaky_relu", 0.2),
    "elu": ("elu", 1.0),
    "softplus": ("softplus", 0.0),
    "softmax": ("softmax", 0.0),
}
_names.require("activations", [e for e, _ in ENGINE.values()], __name__)


def get(identifier):
    """The activation function for a name, a function of this module, or None (linear)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        if identifier in _FUNCTIONS:
            return _FUNCTIONS[identifier]
        raise ValueError(
            f"Could not interpret activation function identifier: {identifier!r}. "
            f"Valid names: {sorted(_FUNCTIONS)}")
    if callable(identifier) and _FUNCTIONS.get(getattr(identifier, "__name__", None)) is identifier:
        return identifier
    raise ValueError(
        f"Could not interpret activation function identifier: {identifier!r}. Only the "
        f"built-in activations run in the engine: {sorted(_FUNCTIONS)}")


def serialize(activation):
    """The name of a built-in activation (what `get_config` stores)."""
    return get(activation).__name__


def deserialize(name):
    """Inverse of `serialize`."""
    return get(name)
