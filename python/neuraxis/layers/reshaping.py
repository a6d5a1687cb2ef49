"""ZeroPadding1D/2D, Cropping1D/2D and UpSampling1D/2D on channels_last batches of shape
(None, steps, C) and (None, H, W, C).

Zero padding adds rows/columns of zeros around each sample, cropping removes them; the
engine runs both as one moved window (its own backward with the opposite offsets).
Up-sampling repeats every row and column `size` times (nearest neighbour, Keras's
default; its backward sums each repeated block).
"""
import numbers

from ._base import Layer
from .convolutional import check_data_format, check_rank, standardize_tuple


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _pairs_2d(value, name):
    """Keras's ZeroPadding2D/Cropping2D argument: an int, (sym_h, sym_w) or
    ((top, bottom), (left, right)) -> ((top, bottom), (left, right))."""
    if _is_int(value):
        if value < 0:
            raise ValueError(f"`{name}` cannot be negative. Received: {name}={value}.")
        return ((int(value),) * 2,) * 2
    if hasattr(value, "__len__"):
        if len(value) != 2:
            raise ValueError(f"`{name}` should have two elements. Received: {name}={value}.")
        return (standardize_tuple(value[0], 2, f"1st entry of {name}", allow_zero=True),
                standardize_tuple(value[1], 2, f"2nd entry of {name}", allow_zero=True))
    raise ValueError(
        f"`{name}` should be either an int, a tuple of 2 ints (symmetric_height_crop, "
        "symmetric_width_crop), or a tuple of 2 tuples of 2 ints ((top_crop, bottom_crop), "
        f"(left_crop, right_crop)). Received: {name}={value}.")


class _Spatial(Layer):
    """Shapes and the engine dict of the layers here (`_rank` spatial axes)."""

    _kind = None
    _rank = None

    def _out_dims(self, input_shape):
        """The output's spatial sizes (None stays None)."""
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        input_shape = check_rank(self, input_shape, self._rank + 2)
        return (input_shape[0],) + tuple(self._out_dims(input_shape)) + (input_shape[-1],)


class _Padding(_Spatial):
    """Zeros around each sample: self.padding ((before, after) per spatial axis)."""

    def _pairs(self):
        return self.padding if self._rank == 2 else (self.padding,)

    def _out_dims(self, input_shape):
        return [None if n is None else n + a + b
                for n, (a, b) in zip(input_shape[1:-1], self._pairs())]

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}

    def _engine_spec(self):
        return {"kind": self._kind, "padding": [int(v) for p in self._pairs() for v in p]}


class ZeroPadding1D(_Padding):
    """Zeros before and after the steps: `padding` = int or (left, right).

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.layers import ZeroPadding1D
    >>> ZeroPadding1D((1, 2)).compute_output_shape((None, 5, 3))
    (None, 8, 3)
    >>> ZeroPadding1D(1)(np.array([[[1.0], [2.0]]]))[0, :, 0].tolist()
    [0.0, 1.0, 2.0, 0.0]
    """

    _kind = "zero_pad1d"
    _rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, "ZeroPadding1D")
        self.padding = standardize_tuple(padding, 2, "padding", allow_zero=True)


class ZeroPadding2D(_Padding):
    """Rows and columns of zeros around each image: `padding` = int, (sym_h, sym_w) or
    ((top, bottom), (left, right)).

    Example
    -------
    >>> from neuraxis.layers import ZeroPadding2D
    >>> ZeroPadding2D().compute_output_shape((None, 28, 28, 1))
    (None, 30, 30, 1)
    >>> ZeroPadding2D(((1, 0), (2, 3))).get_config()["padding"]
    ((1, 0), (2, 3))
    """

    _kind = "zero_pad2d"
    _rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, "ZeroPadding2D")
        self.padding = _pairs_2d(padding, "padding")


class _Cropping(_Spatial):
    """Rows/columns removed from each sample: self.cropping ((before, after) per axis)."""

    def _pairs(self):
        return self.cropping if self._rank == 2 else (self.cropping,)

    def _out_dims(self, input_shape):
        out = [None if n is None else n - a - b
               for n, (a, b) in zip(input_shape[1:-1], self._pairs())]
        if any(n is not None and n <= 0 for n in out):
            if self._rank == 1:
                raise ValueError(
                    "`cropping` parameter of `Cropping1D` layer must be smaller than the input "
                    f"length. Received: input_shape={input_shape}, cropping={self.cropping}")
            raise ValueError(
                "Values in `cropping` argument should be smaller than the corresponding "
                f"spatial dimension of the input. Received: input_shape={input_shape}, "
                f"cropping={self.cropping}")
        return out

    def _engine_spec(self):
        return {"kind": self._kind, "cropping": [int(v) for p in self._pairs() for v in p]}


class Cropping1D(_Cropping):
    """Removes steps at the start and end: `cropping` = int or (start, end).

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.layers import Cropping1D
    >>> Cropping1D((1, 2)).compute_output_shape((None, 10, 3))
    (None, 7, 3)
    >>> Cropping1D()(np.array([[[1.0], [2.0], [3.0]]]))[0, :, 0].tolist()
    [2.0]
    """

    _kind = "crop1d"
    _rank = 1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = standardize_tuple(cropping, 2, "cropping", allow_zero=True)

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}


class Cropping2D(_Cropping):
    """Removes rows and columns at the edges: `cropping` = int, (sym_h, sym_w) or
    ((top, bottom), (left, right)).

    Example
    -------
    >>> from neuraxis.layers import Cropping2D
    >>> Cropping2D(((2, 2), (4, 4))).compute_output_shape((None, 28, 28, 3))
    (None, 24, 20, 3)
    """

    _kind = "crop2d"
    _rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, "Cropping2D")
        self.cropping = _pairs_2d(cropping, "cropping")

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping,
                "data_format": self.data_format}


class UpSampling1D(_Spatial):
    """Repeats every step `size` times.

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.layers import UpSampling1D
    >>> UpSampling1D(3).compute_output_shape((None, 4, 2))
    (None, 12, 2)
    >>> UpSampling1D()(np.array([[[1.0], [2.0]]]))[0, :, 0].tolist()
    [1.0, 1.0, 2.0, 2.0]
    """

    _kind = "upsample1d"
    _rank = 1

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(size):
            raise TypeError(f"Expected an integer value for `size`, got {type(size)}.")
        if size <= 0:
            raise ValueError(f"Argument `size` should be a positive integer. Received: size={size}")
        self.size = int(size)

    def _out_dims(self, input_shape):
        return [None if n is None else n * self.size for n in input_shape[1:-1]]

    def get_config(self):
        return {**super().get_config(), "size": self.size}

    def _engine_spec(self):
        return {"kind": self._kind, "size": [self.size]}


_INTERPOLATIONS = ("area", "bicubic", "bilinear", "lanczos3", "lanczos5", "nearest")


class UpSampling2D(_Spatial):
    """Repeats every row `size[0]` and every column `size[1]` times (nearest neighbour).

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.layers import UpSampling2D
    >>> UpSampling2D((2, 3)).compute_output_shape((None, 7, 7, 16))
    (None, 14, 21, 16)
    >>> UpSampling2D()(np.array([[[[1.0], [2.0]]]]))[0, :, :, 0].tolist()
    [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]
    """

    _kind = "upsample2d"
    _rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, "UpSampling2D")
        self.size = standardize_tuple(size, 2, "size")
        if not isinstance(interpolation, str) or interpolation.lower() not in _INTERPOLATIONS:
            raise ValueError(f"Invalid value for argument `interpolation`: {interpolation!r}; "
                             f"expected one of {list(_INTERPOLATIONS)}")
        self.interpolation = interpolation.lower()
        if self.interpolation != "nearest":
            raise NotImplementedError(
                f"UpSampling2D(interpolation={self.interpolation!r}) is not supported yet; "
                "only interpolation='nearest' (Keras's default)")

    def _out_dims(self, input_shape):
        return [None if n is None else n * s for n, s in zip(input_shape[1:-1], self.size)]

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format,
                "interpolation": self.interpolation}

    def _engine_spec(self):
        return {"kind": self._kind, "size": list(self.size)}
