"""Activation layers: Activation, ReLU, LeakyReLU, ELU, Softmax.

Each one compiles to an engine activation; directly after a linear Dense the
model fuses it into that Dense (one pass over the data instead of two).
"""
import warnings

from .. import activations
from ._base import Layer, user_stacklevel


def _activation(name, alpha=0.0):
    return {"kind": "activation", "activation": name, "alpha": float(alpha)}


class Activation(Layer):
    """Applies a named activation: `Activation('relu')`.

    Example
    -------
    >>> from neuraxis.layers import Activation
    >>> Activation("tanh").get_config()["activation"]
    'tanh'
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}

    def _engine_spec(self):
        act, alpha = activations.ENGINE[self.activation.__name__]
        return _activation(act, alpha)


class ReLU(Layer):
    """max(x, 0); `negative_slope` gives a leaky ReLU.

    Example
    -------
    >>> from neuraxis.layers import ReLU
    >>> ReLU().get_config()["negative_slope"]
    0.0
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise ValueError("max_value of a ReLU layer cannot be a negative value. "
                             f"Received: max_value={max_value}")
        if negative_slope is None or negative_slope < 0:
            raise ValueError("negative_slope of a ReLU layer cannot be a negative value. "
                             f"Received: negative_slope={negative_slope}")
        if threshold is None or threshold < 0:
            raise ValueError("threshold of a ReLU layer cannot be a negative value. "
                             f"Received: threshold={threshold}")
        self.max_value = max_value
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}

    def _engine_spec(self):
        if self.max_value is not None or self.threshold != 0:
            raise NotImplementedError("ReLU with max_value or threshold is not supported by the "
                                      "engine yet")
        if self.negative_slope:
            # Exactly a leaky ReLU with that slope.
            return _activation("leaky_relu", self.negative_slope)
        return _activation("relu")


class LeakyReLU(Layer):
    """x if x > 0 else negative_slope * x (default slope 0.3; `alpha=` is the old spelling).

    Example
    -------
    >>> import warnings
    >>> from neuraxis.layers import LeakyReLU
    >>> with warnings.catch_warnings(record=True):  # the old spelling warns, as in Keras
    ...     warnings.simplefilter("always")
    ...     LeakyReLU(alpha=0.01).negative_slope
    0.01
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.",
                          UserWarning, stacklevel=user_stacklevel())
        super().__init__(**kwargs)
        if negative_slope is None or negative_slope < 0:
            raise ValueError("The negative_slope value of a Leaky ReLU layer cannot be None or "
                             f"negative value. Expected a float. Received: "
                             f"negative_slope={negative_slope}")
        self.negative_slope = float(negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}

    def _engine_spec(self):
        return _activation("leaky_relu", self.negative_slope)


class ELU(Layer):
    """x if x > 0 else alpha * (exp(x) - 1).

    Example
    -------
    >>> from neuraxis.layers import ELU
    >>> ELU(alpha=0.5).get_config()["alpha"]
    0.5
    """

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}

    def _engine_spec(self):
        return _activation("elu", self.alpha)


class Softmax(Layer):
    """exp(x) / sum(exp(x)) over the last axis.

    Example
    -------
    >>> from neuraxis.layers import Softmax
    >>> Softmax().get_config()["axis"]
    -1
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}

    def _engine_spec(self):
        last = None if self._build_shape is None else len(self._build_shape) - 1
        if self.axis not in (-1, last):
            raise NotImplementedError("Softmax over an axis other than the last is not supported")
        return _activation("softmax")
