"""The `Layer` base class of the Keras front.

A layer holds its constructor arguments (`get_config()` returns exactly them),
creates its weights in `build(input_shape)` as float32 NumPy arrays, and says
which engine layer it is (`_engine_spec`, one dict). It never computes anything
itself: the model compiles the whole layer list into one engine network, and a
layer called on an array runs a one-layer engine network.
"""
import math
import warnings

import numpy as np

from .._keras import alloc, session, specs
from .._keras.utils import (check_weight_list, normalize_shape,  # noqa: F401  (re-exported)
                            to_snake_case, user_stacklevel)


def _check_dtype(dtype):
    if isinstance(dtype, dict):  # Keras 3 serialises a DTypePolicy as a dict
        dtype = (dtype.get("config") or {}).get("name")
    if dtype not in (None, "float32"):
        raise NotImplementedError(
            f"The Keras front computes in float32; dtype={dtype!r} is not supported")


class Layer:
    """Base of every layer: name, trainable flag, weights and config.

    Example
    -------
    >>> from neuraxis.layers import Dense
    >>> layer = Dense(3, name="d")
    >>> layer.build((None, 4))
    >>> [w.shape for w in layer.get_weights()], layer.count_params()
    ([(4, 3), (3,)], 15)
    """

    def __init__(self, *, activity_regularizer=None, trainable=True, dtype=None, autocast=True,
                 name=None, **kwargs):
        # Keras pops these two from every layer; input_dim=n means input_shape=(n,).
        input_dim = kwargs.pop("input_dim", None)
        input_shape = kwargs.pop("input_shape", None)
        if input_dim is not None:
            input_shape = (input_dim,)
        self._input_shape_arg = None
        if input_shape is not None:
            warnings.warn(
                "Do not pass an `input_shape`/`input_dim` argument to a layer. When using "
                "Sequential models, prefer using an `Input(shape)` object as the first layer "
                "in the model instead.", UserWarning, stacklevel=user_stacklevel())
            self._input_shape_arg = normalize_shape(input_shape, "input_shape")
        if kwargs:
            raise ValueError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if activity_regularizer is not None:
            raise NotImplementedError("activity_regularizer is not supported yet")
        _check_dtype(dtype)
        if name is None:
            name = session.unique_name(to_snake_case(type(self).__name__))
        if not isinstance(name, str) or "/" in name or not name:
            raise ValueError("Argument `name` must be a non-empty string and cannot contain "
                             f"character `/`. Received: name={name!r}")
        self.name = name
        self.trainable = bool(trainable)
        self.built = False
        self._weights = []          # [(weight name, float32 array)] in creation order
        self._build_shape = None    # input shape (with None batch) once built
        self.output_shape = None

    # --- building -------------------------------------------------------------------
    def build(self, input_shape):
        """Create the weights for `input_shape` (batch dimension first, usually None)."""
        self._finish_build(input_shape)

    def _finish_build(self, input_shape):
        input_shape = tuple(input_shape)
        self._build_shape = input_shape
        self.output_shape = tuple(self.compute_output_shape(input_shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        """Output shape for `input_shape`; identity unless the layer changes it."""
        return tuple(input_shape)

    # Keras's symbolic tensors of a layer in a built model: their shapes and dtype
    @property
    def input(self):
        return self._symbolic(self._build_shape, "input")

    @property
    def output(self):
        return self._symbolic(self.output_shape, "output")

    def _symbolic(self, shape, what):
        if not self.built:  # Keras's words for an unbuilt layer's input / output
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{what}'")
        from .core import KerasTensor
        return KerasTensor.of_shape(shape)

    def add_weight(self, shape, initializer, name):
        """Create and register a float32 weight (what `get_weights` returns, in this order)."""
        alloc.charge(shape)  # a file being loaded may not make us allocate more than it holds
        arr = np.ascontiguousarray(initializer(tuple(shape)), dtype=np.float32)
        if arr.shape != tuple(shape):
            raise ValueError(f"initializer returned shape {arr.shape}, expected {tuple(shape)}")
        self._weights.append((name, arr))
        return arr

    # --- weights --------------------------------------------------------------------
    @property
    def weights(self):
        """The weight arrays themselves (the engine updates them in place)."""
        return [a for _, a in self._weights]

    @property
    def trainable_weights(self):
        return self.weights if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [] if self.trainable else self.weights

    def get_weights(self):
        """Copies of the weights, in creation order (Dense: kernel, bias)."""
        return [a.copy() for _, a in self._weights]

    def set_weights(self, weights):
        """Copy `weights` into the layer's arrays (shapes must match; nothing changes on error)."""
        check_weight_list(self.name, self._weights, weights)
        for (_, a), w in zip(self._weights, weights):
            a[...] = np.asarray(w, dtype=np.float32)

    def count_params(self):
        """Number of scalars in the weights."""
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer isn't "
                "built. You can build it manually via: `layer.build(input_shape)`.")
        return int(sum(a.size for _, a in self._weights))

    # --- config ---------------------------------------------------------------------
    def get_config(self):
        """Constructor arguments (Keras's keys), enough for `from_config` to recreate it."""
        return {"name": self.name, "trainable": self.trainable,
                "dtype": {"module": "keras", "class_name": "DTypePolicy",
                          "config": {"name": "float32"}, "registered_name": None}}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _engine_spec(self):
        """The engine's layer dict for this layer (None: no engine layer)."""
        raise NotImplementedError(
            f"Layer {type(self).__name__} has no engine implementation yet")

    # --- eager call -----------------------------------------------------------------
    def __call__(self, inputs, training=False, **kwargs):
        """Apply the layer to an array, eagerly in float32, as a Keras layer is callable.

        Example
        -------
        >>> import numpy as np
        >>> from neuraxis.layers import LeakyReLU
        >>> LeakyReLU(negative_slope=0.5)(np.array([[-2.0, 3.0]])).tolist()
        [[-1.0, 3.0]]
        """
        if kwargs:
            raise ValueError(f"Unrecognized arguments when calling {self.name}: {sorted(kwargs)}")
        if type(inputs).__name__ == "KerasTensor":
            raise NotImplementedError(
                "Calling layers on symbolic inputs (the functional API) is not supported; "
                "use Sequential([...]) instead")
        x = np.asarray(inputs, dtype=np.float32)
        if x.ndim < 2:
            raise ValueError(f"Input 0 of layer \"{self.name}\" needs a batch dimension; "
                             f"received input with shape {x.shape}")
        if not self.built:
            self.build((None,) + x.shape[1:])
        return self.call(x, training=bool(training))

    def call(self, inputs, training=False):
        """The layer on a float32 batch: a one-layer engine network (what `__call__` runs)."""
        spec = self._engine_spec()
        if spec is None:  # the input layer
            return inputs
        return specs.run_layer(self.name, spec, self.weights, inputs, training)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


class KernelBiasLayer(Layer):
    """A layer with a `kernel` and an optional `bias` weight (Dense, Conv2D)."""

    def _add_kernel_and_bias(self, kernel_shape, units):
        self._weights = []
        self.add_weight(tuple(kernel_shape), self.kernel_initializer, "kernel")
        if self.use_bias:
            self.add_weight((units,), self.bias_initializer, "bias")

    @property
    def kernel(self):
        return self._weights[0][1] if self._weights else None

    @property
    def bias(self):
        return self._weights[1][1] if self.use_bias and self._weights else None


def feature_count(shape):
    """Number of features per sample of a (None, ...) shape."""
    return int(math.prod(shape[1:]))
