"""Input, Dense, Dropout, Flatten and Reshape.

Data reach the engine as one row-major row per sample, so Flatten and Reshape
only change the logical shape: their engine layers alias their input (no copy).
"""
import math

from .. import activations, initializers, regularizers
from .._keras import session
from .._keras.utils import check_input_shape
from ._base import KernelBiasLayer, Layer, normalize_shape


class KerasTensor:
    """What `Input(...)` returns: a symbolic batch of the given shape (for `Sequential`)."""

    def __init__(self, input_layer):
        self._input_layer = input_layer
        self.shape = input_layer.batch_shape
        self.dtype = input_layer.dtype
        self.name = input_layer.name

    @classmethod
    def of_shape(cls, shape, dtype="float32"):
        """A symbolic batch of `shape` (a built layer's `input` / `output`)."""
        tensor = cls.__new__(cls)
        tensor._input_layer, tensor.shape, tensor.dtype = None, tuple(shape), dtype
        tensor.name = "keras_tensor"
        return tensor

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


class InputLayer(Layer):
    """The model's input: a shape without the batch dimension (or `batch_shape` with it).

    Example
    -------
    >>> from neuraxis.layers import InputLayer
    >>> InputLayer(shape=(64,)).batch_shape
    (None, 64)
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, ragged=None,
                 batch_shape=None, input_tensor=None, optional=False, name=None, **kwargs):
        # Legacy spellings found in older configs.
        if "input_shape" in kwargs:
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        kwargs.pop("trainable", None)
        if name is None:
            name = session.unique_name("input_layer")
        super().__init__(name=name, **kwargs)
        if sparse or ragged or input_tensor is not None or optional:
            raise NotImplementedError("sparse, ragged, optional and tensor inputs are not "
                                      "supported")
        if shape is not None and batch_shape is not None:
            raise ValueError("You cannot pass both `shape` and `batch_shape` at the same time.")
        if shape is None and batch_shape is None:
            raise ValueError("You must pass a `shape` argument.")
        if batch_shape is None:
            batch_shape = (batch_size,) + normalize_shape(shape, "shape")
        batch_shape = normalize_shape(batch_shape, "batch_shape")
        check_input_shape(batch_shape)
        self.batch_shape = batch_shape
        self.dtype = "float32" if dtype is None else dtype
        self._finish_build(batch_shape)

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "sparse": False,
                "ragged": False, "name": self.name, "optional": False}

    def _engine_spec(self):
        return None  # the model's input: no engine layer


def Input(shape=None, batch_size=None, dtype=None, sparse=None, ragged=None, batch_shape=None,
          name=None, tensor=None, optional=False):
    """A symbolic input to start a `Sequential` model with: `Sequential([Input((64,)), ...])`.

    Example
    -------
    >>> from neuraxis.layers import Input
    >>> Input(shape=(64,)).shape
    (None, 64)
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                       ragged=ragged, batch_shape=batch_shape, input_tensor=tensor,
                       optional=optional, name=name)
    return KerasTensor(layer)


def _none_only(**kw):
    for k, v in kw.items():
        if v is not None:
            raise NotImplementedError(f"{k} is not supported yet (got {v!r})")


class Dense(KernelBiasLayer):
    """Fully connected layer `activation(x @ kernel + bias)`; kernel (in, units), bias (units,).

    Example
    -------
    >>> from neuraxis.layers import Dense
    >>> layer = Dense(10, activation="softmax")
    >>> layer.build((None, 100)); layer.count_params()
    1010
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 lora_rank=None, lora_alpha=None, quantization_config=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            if not (isinstance(units, float) and units.is_integer() and units > 0):
                raise ValueError("Received an invalid value for `units`, expected a positive "
                                 f"integer. Received: units={units!r}")
        _none_only(kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
                   lora_rank=lora_rank, quantization_config=quantization_config)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Dense needs a known last input dimension, got {input_shape}")
        self._add_kernel_and_bias((input_shape[-1], self.units), self.units)
        self._finish_build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": None, "bias_constraint": None, "quantization_config": None}

    def _engine_spec(self):
        act, alpha = activations.ENGINE[self.activation.__name__]
        return {"kind": "dense", "units": self.units, "activation": act, "alpha": float(alpha),
                "use_bias": self.use_bias, "trainable": self.trainable}


class Dropout(Layer):
    """Sets a fraction `rate` of its inputs to 0 during training (scaling the rest by 1/(1-rate)).

    Example
    -------
    >>> from neuraxis.layers import Dropout
    >>> Dropout(0.5, seed=1).get_config()["rate"]
    0.5
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError("Invalid value received for argument `rate`. Expected a float value "
                             f"between 0 and 1. Received: rate={rate!r}")
        if rate == 1:
            raise ValueError("Dropout(rate=1) would drop everything; use a rate below 1")
        _none_only(noise_shape=noise_shape)
        self.rate = float(rate)
        self.noise_shape = None
        self.seed = seed

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed,
                "noise_shape": None}

    def _engine_spec(self):
        return {"kind": "dropout", "rate": self.rate}


class _SpatialDropout(Dropout):
    """Dropout of whole channels (the last axis): one mask entry per sample and channel, the
    same at every step / position, as Keras's SpatialDropout layers."""

    _rank = None

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)
        if data_format not in (None, "channels_last"):
            if data_format == "channels_first":
                raise NotImplementedError(f"{type(self).__name__}(data_format='channels_first') "
                                          "is not supported: the engine works on channels_last")
            raise ValueError("The `data_format` argument must be one of {'channels_first', "
                             f"'channels_last'}}. Received: data_format={data_format}")
        self.data_format = "channels_last"

    def build(self, input_shape):
        if len(tuple(input_shape)) != self._rank:
            raise ValueError(f"Input 0 of layer \"{self.name}\" is incompatible with the layer: "
                             f"expected ndim={self._rank}, found ndim={len(tuple(input_shape))}. "
                             f"Full shape received: {tuple(input_shape)}")
        super().build(input_shape)

    def get_config(self):  # Keras's keys: no trainable, the dtype as its name
        config = {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": "float32"}
        if self._rank != 3:
            config["data_format"] = self.data_format
        return config

    def _engine_spec(self):
        return {"kind": "dropout", "rate": self.rate, "per_channel": True}


class SpatialDropout1D(_SpatialDropout):
    """Drops whole channels of (None, steps, channels) inputs in training.

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.layers import SpatialDropout1D
    >>> y = SpatialDropout1D(0.5)(np.ones((4, 3, 6)), training=True)
    >>> bool(((y == 0).all(axis=1) | (y == 2).all(axis=1)).all())  # each channel: all steps
    True
    """

    _rank = 3

    def __init__(self, rate, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(rate, seed=seed, name=name, dtype=dtype, **kwargs)


class SpatialDropout2D(_SpatialDropout):
    """Drops whole feature maps of (None, H, W, C) inputs in training."""

    _rank = 4


class SpatialDropout3D(_SpatialDropout):
    """Drops whole feature maps of (None, D, H, W, C) inputs in training."""

    _rank = 5


class Flatten(Layer):
    """Flattens each sample to one dimension, in (H, W, C) row-major order.

    Example
    -------
    >>> from neuraxis.layers import Flatten
    >>> Flatten().compute_output_shape((None, 8, 8, 3))
    (None, 192)
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(f"data_format must be 'channels_last' or 'channels_first', "
                             f"got {data_format!r}")
        self.data_format = "channels_last" if data_format is None else data_format

    def compute_output_shape(self, input_shape):
        if self.data_format == "channels_first" and len(input_shape) > 2:
            raise NotImplementedError("Flatten(data_format='channels_first') is not supported")
        if any(d is None for d in input_shape[1:]):  # a variable steps axis: as Keras
            return (input_shape[0], None)
        return (input_shape[0], math.prod(input_shape[1:]))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}

    def _engine_spec(self):
        return {"kind": "flatten"}


class Reshape(Layer):
    """Reshapes each sample to `target_shape` (one entry may be -1).

    Example
    -------
    >>> from neuraxis.layers import Reshape
    >>> Reshape((4, -1)).compute_output_shape((None, 12))
    (None, 4, 3)
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            target = tuple(int(d) for d in target_shape)
        except (TypeError, ValueError):
            raise ValueError(f"target_shape must be a tuple of integers, got {target_shape!r}") \
                from None
        if sum(d == -1 for d in target) > 1 or any(d == 0 or d < -1 for d in target):
            raise ValueError(f"Invalid target_shape {target_shape!r}: positive integers and at "
                             "most one -1 expected")
        self.target_shape = target

    def compute_output_shape(self, input_shape):
        if any(d is None for d in input_shape[1:]):
            raise ValueError(f"Reshape needs inputs of known shape, got {tuple(input_shape)} "
                             "(a variable steps axis cannot be reshaped)")
        size = math.prod(input_shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        out = tuple(size // known if d == -1 else d for d in self.target_shape)
        if math.prod(out) != size:
            raise ValueError("total size of new array must be unchanged, "
                             f"input_shape = {list(input_shape[1:])}, "
                             f"output_shape = {list(self.target_shape)}")
        return (input_shape[0],) + out

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}

    def _engine_spec(self):
        return {"kind": "reshape", "target_shape": list(self.target_shape)}
