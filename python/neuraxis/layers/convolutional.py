"""Conv1D and Conv2D: convolution over channels_last batches of shape (None, steps, C)
and (None, H, W, C).

The layers are cross-correlations with a (k, in_channels, filters) or (kh, kw,
in_channels, filters) kernel, as in Keras. Output sizes follow the TensorFlow rule:
'valid' gives floor((H - ((k - 1) * d + 1)) / s) + 1, 'same' gives ceil(H / s) (the
extra padding row/column going to the bottom/right); Conv1D's 'causal' pads
(k - 1) * d zeros on the left, so ceil(steps / s) outputs, each seeing no later step.
The helpers here are shared with the pooling and reshaping layers.
"""
import numbers

from .. import activations, initializers, regularizers
from ._base import KernelBiasLayer
from .core import _none_only

_DATA_FORMATS = ("channels_first", "channels_last")


def standardize_tuple(value, n, name, allow_zero=False):
    """`value` (an int or n ints) as a tuple of n positive (or, allow_zero, non-negative)
    ints, or Keras's ValueError."""
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
    bad = {v for v in out if v < 0 or (v == 0 and not allow_zero)}
    if bad:
        raise ValueError(f"{message}, including values {bad} that do not satisfy "
                         f"`value {'>= 0' if allow_zero else '> 0'}`")
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
    if padding in ("same", "causal"):
        return -(-n // stride)
    return (n - ((kernel - 1) * dilation + 1)) // stride + 1


def check_rank(layer, input_shape, ndim):
    """`input_shape` as a tuple, or Keras's ValueError unless it has `ndim` axes."""
    input_shape = tuple(input_shape)
    if len(input_shape) != ndim:
        raise ValueError(
            f"Input 0 of layer \"{layer.name}\" is incompatible with the layer: expected "
            f"ndim={ndim}, found ndim={len(input_shape)}. Full shape received: {input_shape}")
    return input_shape


def check_rank4(layer, input_shape):
    """`input_shape` as a tuple, or ValueError unless it is (batch, H, W, C)."""
    return check_rank(layer, input_shape, 4)


def _conv_padding(padding, allowed=("same", "valid")):
    # Keras lower-cases the string; it also takes explicit per-side paddings (not supported).
    if isinstance(padding, (list, tuple)):
        raise NotImplementedError(f"Explicit paddings are not supported yet (got "
                                  f"padding={padding!r}); use one of {list(allowed)}")
    p = padding.lower() if isinstance(padding, str) else padding
    if p not in allowed:  # Keras prints a set (in hash order); sorted here
        names = ", ".join(repr(a) for a in sorted(allowed))
        raise ValueError("The `padding` argument must be a list/tuple or one of "
                         f"{{{names}}}. Received: {padding}")
    return p


class _Conv(KernelBiasLayer):
    """Conv1D and Conv2D: arguments, checks, weights, shapes and config (`_rank` axes)."""

    _rank = None
    _paddings = ("same", "valid")

    def __init__(self, filters, kernel_size, strides, padding, data_format, dilation_rate,
                 groups, activation, use_bias, kernel_initializer, bias_initializer,
                 kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
                 bias_constraint, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        who, n = type(self).__name__, self._rank
        if isinstance(filters, float) and filters.is_integer():
            filters = int(filters)
        if not isinstance(filters, numbers.Integral) or isinstance(filters, bool):
            raise ValueError("Invalid value for argument `filters`. Expected a strictly positive "
                             f"integer. Received filters={filters!r}.")
        if filters <= 0:
            raise ValueError("Invalid value for argument `filters`. Expected a strictly positive "
                             f"value. Received filters={filters}.")
        self.filters = int(filters)
        self.kernel_size = standardize_tuple(kernel_size, n, "kernel_size")
        self.strides = standardize_tuple(strides, n, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, n, "dilation_rate")
        self.padding = _conv_padding(padding, self._paddings)
        self.data_format = check_data_format(data_format, who)
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups <= 0:
            raise ValueError("The number of groups must be a positive integer. "
                             f"Received: groups={groups}.")
        if self.filters % groups != 0:
            raise ValueError("The number of filters must be evenly divisible by the number of "
                             f"groups. Received: groups={groups}, filters={self.filters}.")
        if groups != 1:
            raise NotImplementedError(f"{who}(groups={groups}) is not supported yet; only "
                                      "groups=1")
        self.groups = 1
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with `dilation_rate > "
                             f"1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        _none_only(kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        input_shape = check_rank(self, input_shape, self._rank + 2)
        if input_shape[-1] is None:
            raise ValueError("The channel dimension of the inputs should be defined. The input "
                             f"shape received is: {input_shape}")
        self._add_kernel_and_bias(self.kernel_size + (input_shape[-1], self.filters), self.filters)
        self._finish_build(input_shape)

    def compute_output_shape(self, input_shape):
        input_shape = check_rank(self, input_shape, self._rank + 2)
        spatial = tuple(output_length(n, k, s, d, self.padding) for n, k, s, d in zip(
            input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate))
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
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}

    def _engine_spec(self):
        act, alpha = activations.ENGINE[self.activation.__name__]
        return {"kind": f"conv{self._rank}d", "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "dilation_rate": list(self.dilation_rate),
                "activation": act, "alpha": float(alpha), "use_bias": self.use_bias,
                "trainable": self.trainable}


class Conv1D(_Conv):
    """1-D convolution `activation(conv(x, kernel) + bias)` on (None, steps, channels) inputs.

    The kernel is (kernel_size, in_channels, filters) and the bias (filters,), as in Keras;
    `padding="causal"` pads (kernel_size - 1) * dilation_rate zeros on the left only, so
    output t sees inputs up to t.

    Example
    -------
    >>> from neuraxis.layers import Conv1D
    >>> layer = Conv1D(16, 3, activation="relu")
    >>> layer.compute_output_shape((None, 100, 8))
    (None, 98, 16)
    >>> layer.build((None, 100, 8)); layer.count_params()
    400
    >>> Conv1D(4, 5, dilation_rate=2, padding="causal").compute_output_shape((None, 20, 1))
    (None, 20, 4)
    """

    _rank = 1
    _paddings = ("causal", "same", "valid")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         groups, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, **kwargs)


class Conv2D(_Conv):
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

    _rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         groups, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, **kwargs)


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution (the gradient of a Conv2D with respect to its input), as
    Keras: kernel (kh, kw, filters, in_channels), bias (filters,); output size
    `H * strides + max(kernel - strides, 0)` ('valid') or `H * strides` ('same'), with the
    dilated kernel size.

    Example
    -------
    >>> from neuraxis.layers import Conv2DTranspose
    >>> layer = Conv2DTranspose(16, 3, strides=2, padding="same")
    >>> layer.compute_output_shape((None, 7, 7, 32))
    (None, 14, 14, 16)
    >>> layer.build((None, 7, 7, 32)); [w.shape for w in layer.get_weights()]
    [(3, 3, 16, 32), (16,)]
    >>> Conv2DTranspose(1, (3, 2), strides=(2, 3)).compute_output_shape((None, 4, 4, 2))
    (None, 9, 12, 1)
    """

    _rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 output_padding=None, data_format=None, dilation_rate=(1, 1), activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         1, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, **kwargs)
        if output_padding is not None:
            output_padding = standardize_tuple(output_padding, 2, "output_padding",
                                               allow_zero=True)
            for op, s in zip(output_padding, self.strides):
                if op >= s:
                    raise ValueError("Strides must be greater than output padding. Received "
                                     f"strides={self.strides}, output_padding={output_padding}.")
            raise NotImplementedError("Conv2DTranspose(output_padding=...) is not supported yet; "
                                      "use output_padding=None")
        self.output_padding = None

    def build(self, input_shape):
        input_shape = check_rank(self, input_shape, 4)
        if input_shape[-1] is None:
            raise ValueError("The channel dimension of the inputs should be defined. The input "
                             f"shape received is: {input_shape}")
        self._add_kernel_and_bias(self.kernel_size + (self.filters, input_shape[-1]),
                                  self.filters)
        self._finish_build(input_shape)

    def compute_output_shape(self, input_shape):
        input_shape = check_rank(self, input_shape, 4)

        def length(n, k, s, d):
            if n is None:
                return None
            kd = (k - 1) * d + 1
            return n * s if self.padding == "same" else n * s + max(kd - s, 0)

        spatial = tuple(length(n, k, s, d) for n, k, s, d in zip(
            input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate))
        return (input_shape[0],) + spatial + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.pop("groups")
        out = {}
        for key, value in config.items():  # Keras's order: output_padding after padding
            out[key] = value
            if key == "padding":
                out["output_padding"] = self.output_padding
        return out

    def _engine_spec(self):
        return {**super()._engine_spec(), "kind": "conv2d_transpose"}
