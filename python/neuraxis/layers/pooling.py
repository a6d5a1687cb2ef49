"""Pooling on channels_last batches: MaxPooling1D/2D and AveragePooling1D/2D (aliases
MaxPool1D/2D, AvgPool1D/2D) on (None, steps, C) and (None, H, W, C), and the global
poolings GlobalAveragePooling1D/2D and GlobalMaxPooling1D/2D (aliases GlobalAvgPool1D/2D,
GlobalMaxPool1D/2D).

Each window of `pool_size` moved by `strides` (default: `pool_size`) gives one
output per channel. Output sizes follow the same TensorFlow rule as Conv2D;
with 'same' padding the windows at the bottom/right edge see only the real
inputs (max ignores the padding, the average divides by the real count). A global
pooling is one window over every position; the max's gradient goes to the first
arg-max, as in the windowed max pooling.
"""
from ._base import Layer
from .convolutional import check_data_format, check_rank, output_length, standardize_tuple


class _Pooling(Layer):
    """Shared arguments, shapes and config of the windowed pooling layers (`_rank` axes)."""

    _kind = None  # the engine layer
    _rank = 2

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.pool_size = standardize_tuple(pool_size, self._rank, "pool_size")
        self.strides = self.pool_size if strides is None else standardize_tuple(
            strides, self._rank, "strides")
        # Keras keeps the spelling it was given ('SAME' stays 'SAME') and lower-cases it to use.
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError("Argument `padding` must be either 'valid' or 'same'. "
                             f"Received: padding={padding}")
        self.padding = padding
        self.data_format = check_data_format(data_format, type(self).__name__)

    def compute_output_shape(self, input_shape):
        input_shape = check_rank(self, input_shape, self._rank + 2)
        padding = self.padding.lower()
        spatial = tuple(output_length(n, k, s, 1, padding) for n, k, s in zip(
            input_shape[1:-1], self.pool_size, self.strides))
        if any(n is not None and n < 1 for n in spatial):
            raise ValueError(
                "Computed output size would be zero or negative. Received: "
                f"`inputs.shape={input_shape}`, `pool_size={self.pool_size}`, "
                f"`strides={self.strides}`, `padding={padding}`.")
        return (input_shape[0],) + spatial + (input_shape[-1],)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding,
                "strides": self.strides, "data_format": self.data_format}

    def _engine_spec(self):
        return {"kind": self._kind, "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding.lower()}


class MaxPooling2D(_Pooling):
    """The maximum of each `pool_size` window (default 2x2, strides = pool_size).

    Example
    -------
    >>> from neuraxis.layers import MaxPooling2D
    >>> MaxPooling2D().compute_output_shape((None, 62, 62, 32))
    (None, 31, 31, 32)
    >>> MaxPooling2D(3, strides=2, padding="same").compute_output_shape((None, 5, 5, 1))
    (None, 3, 3, 1)
    """

    _kind = "max_pool2d"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 name=None, **kwargs):
        super().__init__(pool_size, strides=strides, padding=padding, data_format=data_format,
                         name=name, **kwargs)


class AveragePooling2D(_Pooling):
    """The mean of each `pool_size` window (`pool_size` is required, as in Keras).

    Example
    -------
    >>> from neuraxis.layers import AveragePooling2D
    >>> AveragePooling2D((2, 2)).compute_output_shape((None, 29, 29, 64))
    (None, 14, 14, 64)
    >>> AveragePooling2D(2).get_config()["strides"]  # strides=None means pool_size
    (2, 2)
    """

    _kind = "avg_pool2d"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(pool_size, strides=strides, padding=padding, data_format=data_format,
                         name=name, **kwargs)


class MaxPooling1D(_Pooling):
    """The maximum of each `pool_size` window of steps (default 2, strides = pool_size).

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.layers import MaxPooling1D
    >>> MaxPooling1D().compute_output_shape((None, 9, 4))
    (None, 4, 4)
    >>> MaxPooling1D(2, strides=1)(np.array([[[1.0], [3.0], [2.0]]]))[0, :, 0].tolist()
    [3.0, 3.0]
    """

    _kind = "max_pool1d"
    _rank = 1

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(pool_size, strides=strides, padding=padding, data_format=data_format,
                         name=name, **kwargs)


class AveragePooling1D(_Pooling):
    """The mean of each `pool_size` window of steps (`pool_size` is required, as in Keras).

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.layers import AveragePooling1D
    >>> AveragePooling1D(3, strides=2, padding="same").compute_output_shape((None, 9, 4))
    (None, 5, 4)
    >>> AveragePooling1D(2)(np.array([[[1.0], [3.0], [2.0], [6.0]]]))[0, :, 0].tolist()
    [2.0, 4.0]
    """

    _kind = "avg_pool1d"
    _rank = 1

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(pool_size, strides=strides, padding=padding, data_format=data_format,
                         name=name, **kwargs)


class _GlobalPooling(Layer):
    """One window over every position of each channel: (None, ..., C) -> (None, C), or
    (None, 1, ..., 1, C) with keepdims."""

    _kind = None  # the engine layer
    _rank = None  # spatial axes of the input

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, type(self).__name__)
        self.keepdims = keepdims  # stored as given, as Keras does

    def compute_output_shape(self, input_shape):
        input_shape = check_rank(self, input_shape, self._rank + 2)
        if self.keepdims:
            return (input_shape[0],) + (1,) * self._rank + (input_shape[-1],)
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}

    def _engine_spec(self):
        return {"kind": self._kind, "keepdims": bool(self.keepdims)}


class GlobalAveragePooling1D(_GlobalPooling):
    """The mean over the steps of each channel: (None, steps, C) -> (None, C).

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.layers import GlobalAveragePooling1D
    >>> GlobalAveragePooling1D()(np.array([[[1.0, 2.0], [3.0, 6.0]]])).tolist()
    [[2.0, 4.0]]
    >>> GlobalAveragePooling1D(keepdims=True).compute_output_shape((None, 10, 3))
    (None, 1, 3)
    """

    _kind = "global_avg_pool"
    _rank = 1


class GlobalAveragePooling2D(_GlobalPooling):
    """The mean over the positions of each channel: (None, H, W, C) -> (None, C).

    Example
    -------
    >>> from neuraxis.layers import GlobalAveragePooling2D
    >>> GlobalAveragePooling2D().compute_output_shape((None, 7, 7, 64))
    (None, 64)
    >>> GlobalAveragePooling2D(keepdims=True).compute_output_shape((None, 7, 7, 64))
    (None, 1, 1, 64)
    """

    _kind = "global_avg_pool"
    _rank = 2


class GlobalMaxPooling1D(_GlobalPooling):
    """The maximum over the steps of each channel: (None, steps, C) -> (None, C).

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.layers import GlobalMaxPooling1D
    >>> GlobalMaxPooling1D()(np.array([[[1.0, 2.0], [3.0, -6.0]]])).tolist()
    [[3.0, 2.0]]
    """

    _kind = "global_max_pool"
    _rank = 1


class GlobalMaxPooling2D(_GlobalPooling):
    """The maximum over the positions of each channel: (None, H, W, C) -> (None, C).

    Example
    -------
    >>> from neuraxis.layers import GlobalMaxPooling2D
    >>> GlobalMaxPooling2D(keepdims=True).compute_output_shape((None, 5, 4, 8))
    (None, 1, 1, 8)
    """

    _kind = "global_max_pool"
    _rank = 2


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalMaxPool2D = GlobalMaxPooling2D
