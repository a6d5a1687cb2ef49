"""MaxPooling2D and AveragePooling2D (aliases MaxPool2D, AvgPool2D) on (None, H, W, C).

Each window of `pool_size` moved by `strides` (default: `pool_size`) gives one
output per channel. Output sizes follow the same TensorFlow rule as Conv2D;
with 'same' padding the windows at the bottom/right edge see only the real
inputs (max ignores the padding, the average divides by the real count).
"""
from ._base import Layer
from .convolutional import check_data_format, check_rank4, output_length, standardize_tuple


class _Pooling2D(Layer):
    """Shared arguments, shapes and config of the 2-D pooling layers."""

    _kind = None  # the engine layer

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.pool_size = standardize_tuple(pool_size, 2, "pool_size")
        self.strides = self.pool_size if strides is None else standardize_tuple(
            strides, 2, "strides")
        # Keras keeps the spelling it was given ('SAME' stays 'SAME') and lower-cases it to use.
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError("Argument `padding` must be either 'valid' or 'same'. "
                             f"Received: padding={padding}")
        self.padding = padding
        self.data_format = check_data_format(data_format, type(self).__name__)

    def compute_output_shape(self, input_shape):
        input_shape = check_rank4(self, input_shape)
        padding = self.padding.lower()
        spatial = tuple(output_length(n, k, s, 1, padding) for n, k, s in zip(
            input_shape[1:3], self.pool_size, self.strides))
        if any(n is not None and n < 1 for n in spatial):
            raise ValueError(
                "Computed output size would be zero or negative. Received: "
                f"`inputs.shape={input_shape}`, `pool_size={self.pool_size}`, "
                f"`strides={self.strides}`, `padding={padding}`.")
        return (input_shape[0],) + spatial + (input_shape[3],)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding,
                "strides": self.strides, "data_format": self.data_format}

    def _engine_spec(self):
        return {"kind": self._kind, "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding.lower()}


class MaxPooling2D(_Pooling2D):
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


class AveragePooling2D(_Pooling2D):
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


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
