"""Conv2D: 2-D convolution over channels_last batches of shape (None, H, W, C).

The layer is a cross-correlation with a (kh, kw, in_channels, filters) kernel, as in
Keras. Output sizes follow the TensorFlow rule: 'valid' gives
floor((H - ((k - 1) * d + 1)) / s) + 1, 'same' gives ceil(H / s) (the extra padding
row/column going to the bottom/right). The helpers here are shared with the
pooling layers.
"""
import numbers

from .. import activations, initializers
from ._base import KernelBiasLayer
from .core import _none_only

_DATA_FORMATS = ("channels_first", "channels_last")


def standardize_tuple(value, n, name):
    """`value` (an int or n ints) as a tuple of n positive ints, or Keras's ValueError."""
    message = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={value}"

    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if is_int(value):
        out = (int(value),) * n
    else:
        try:
            out = tuple(value)
        except TypeError:
            raise ValueError(message) from None
        if len(out) != n or not all(is_int(v) for v in out):
            raise ValueError(message)
        out = tuple(int(v) for v in out)
    bad = {v for v in out if v <= 0}
    if bad:
        raise ValueError(f"{message}, including values {bad} that do not satisfy `value > 0`")
    return out


def check_data_format(data_format, who):
    """'channels_last' for None; channels_first is valid Keras but not supported here."""
    if data_format is None:
        return "channels_last"
    if data_format not in _DATA_FORMATS:
        raise ValueError("The `data_format` argument must be one of {'channels_first', "
                         f"'channels_last'}}. Received: data_format={data_format}")
    if data_format == "channels_first":
        raise NotImplementedError(
            f"{who}(data_format='channels_first') is not supported: the engine works on "
            "channels_last (None, H, W, C) batches. Use data_format='channels_last' (or None) "
            "and transpose the data to NHWC.")
    return data_format


def output_length(n, kernel, stride, dilation, padding):
    """One spatial output size by the TensorFlow rule (None stays None)."""
    if n is None:
        return None
    if padding == "same":
        return -(-n // stride)
    return (n - ((kernel - 1) * dilation + 1)) // stride + 1


def check_rank4(layer, input_shape):
    """`input_shape` as a tuple, or ValueError unless it is (batch, H, W, C)."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(
            f"Input 0 of layer \"{layer.name}\" is incompatible with the layer: expected ndim=4, "
            f"found ndim={len(input_shape)}. Full shape received: {input_shape}")
    return input_shape


def _conv_padding(padding):
    # Keras lower-cases the string; it also takes explicit per-side paddings (not supported).
    if isinstance(padding, (list, tuple)):
        raise NotImplementedError(f"Explicit paddings are not supported yet (got "
                                  f"padding={padding!r}); use 'valid' or 'same'")
    p = padding.lower() if isinstance(padding, str) else padding
    if p not in ("valid", "same"):
        raise ValueError("The `padding` argument must be a list/tuple or one of {'same', "
                         f"'valid'}}. Received: {padding}")
    return p


class Conv2D(KernelBiasLayer):
    """2-D convolution `activation(conv(x, kernel) + bias)` on (None, H, W, C) inputs.

    The kernel is (kh, kw, in_channels, filters) and the bias (filters,), as in Keras.

    Example
    -------
    >>> from neuraxis.layers import Conv2D
    >>> layer = Conv2D(32, (3, 3), activation="relu")
    >>> layer.compute_output_shape((None, 64, 64, 3))
    (None, 62, 62, 32)
    >>> layer.build((None, 64, 64, 3)); layer.count_params()
    896
    >>> Conv2D(8, 3, strides=2, padding="same").compute_output_shape((None, 7, 8, 3))
    (None, 4, 4, 8)
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if isinstance(filters, float) and filters.is_integer():
            filters = int(filters)
        if not isinstance(filters, numbers.Integral) or isinstance(filters, bool):
            raise ValueError("Invalid value for argument `filters`. Expected a strictly positive "
                             f"integer. Received filters={filters!r}.")
        if filters <= 0:
            raise ValueError("Invalid value for argument `filters`. Expected a strictly positive "
                             f"value. Received filters={filters}.")
        self.filters = int(filters)
        self.kernel_size = standardize_tuple(kernel_size, 2, "kernel_size")
        self.strides = standardize_tuple(strides, 2, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, 2, "dilation_rate")
        self.padding = _conv_padding(padding)
        self.data_format = check_data_format(data_format, "Conv2D")
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups <= 0:
            raise ValueError("The number of groups must be a positive integer. "
                             f"Received: groups={groups}.")
        if self.filters % groups != 0:
            raise ValueError("The number of filters must be evenly divisible by the number of "
                             f"groups. Received: groups={groups}, filters={self.filters}.")
        if groups != 1:
            raise NotImplementedError(f"Conv2D(groups={groups}) is not supported yet; only "
                                      "groups=1")
        self.groups = 1
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with `dilation_rate > "
                             f"1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        _none_only(kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                   kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        input_shape = check_rank4(self, input_shape)
        if input_shape[-1] is None:
            raise ValueError("The channel dimension of the inputs should be defined. The input "
                             f"shape received is: {input_shape}")
        self._add_kernel_and_bias(self.kernel_size + (input_shape[-1], self.filters), self.filters)
        self._finish_build(input_shape)

    def compute_output_shape(self, input_shape):
        input_shape = check_rank4(self, input_shape)
        spatial = tuple(output_length(n, k, s, d, self.padding) for n, k, s, d in zip(
            input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate))
        if any(n is not None and n < 1 for n in spatial):
            kernel = self.kernel_size + (input_shape[-1], self.filters)
            raise ValueError(
                "Computed output size would be zero or negative. Received `inputs shape="
                f"{input_shape}`, `kernel shape={kernel}`, `dilation_rate={self.dilation_rate}`, "
                f"`strides={self.strides}`, `padding={self.padding}`.")
        return (input_shape[0],) + spatial + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                "groups": self.groups, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": None, "bias_regularizer": None,
                "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}

    def _engine_spec(self):
        act, alpha = activations.ENGINE[self.activation.__name__]
        return {"kind": "conv2d", "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "dilation_rate": list(self.dilation_rate), "activation": act,
                "alpha": float(alpha), "use_bias": self.use_bias, "trainable": self.trainable}

