"""Losses of the Keras front, as functions (per-sample values) and classes (reduced).

In `fit` the engine computes the loss fused with the output layer; these NumPy
versions give the same numbers for users and tests. Keras semantics: cross
entropies clip probabilities to [1e-7, 1 - 1e-7]; a batch's loss is
sum(w_i * l_i) / batch_rows ("sum_over_batch_size").

Example
-------
>>> import numpy as np
>>> from neuraxis import losses
>>> y, p = np.array([[0., 1.]]), np.array([[0.2, 0.8]])
>>> round(float(losses.categorical_crossentropy(y, p)[0]), 4)
0.2231
"""
import numpy as np

from . import _names
from ._keras.utils import to_snake_case

_EPS = 1e-7


def _pair(y_true, y_pred):
    y_pred = np.asarray(y_pred, dtype=np.float32)
    y_true = np.asarray(y_true, dtype=np.float32)
    if y_true.ndim == y_pred.ndim - 1:
        y_true = y_true[..., None]
    return y_true, y_pred


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """-sum(y * log(clip(p))) over the last axis, per sample."""
    y_true, y_pred = _pair(y_true, y_pred)
    if from_logits:
        z = y_pred - y_pred.max(axis=axis, keepdims=True)
        y_pred = np.exp(z) / np.exp(z).sum(axis=axis, keepdims=True)
    if label_smoothing:
        y_true = y_true * (1 - label_smoothing) + label_smoothing / y_true.shape[axis]
    p = y_pred / y_pred.sum(axis=axis, keepdims=True)
    return -(y_true * np.log(np.clip(p, _EPS, 1 - _EPS))).sum(axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """categorical_crossentropy with integer class labels."""
    y_pred = np.asarray(y_pred, dtype=np.float32)
    labels = np.asarray(y_true).reshape(-1).astype(np.int64)
    onehot = np.eye(y_pred.shape[-1], dtype=np.float32)[labels]
    return categorical_crossentropy(onehot, y_pred, from_logits=from_logits)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Mean over the last axis of -(y log p + (1 - y) log(1 - p)), p clipped."""
    y_true, y_pred = _pair(y_true, y_pred)
    if from_logits:
        y_pred = 1 / (1 + np.exp(-y_pred))
    if label_smoothing:
        y_true = y_true * (1 - label_smoothing) + 0.5 * label_smoothing
    p = np.clip(y_pred, _EPS, 1 - _EPS)
    return -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)).mean(axis=axis)


def mean_squared_error(y_true, y_pred):
    """Mean over the last axis of (y - p)²."""
    y_true, y_pred = _pair(y_true, y_pred)
    return ((y_true - y_pred) ** 2).mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    """Mean over the last axis of |y - p|."""
    y_true, y_pred = _pair(y_true, y_pred)
    return np.abs(y_true - y_pred).mean(axis=-1)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
bce = BCE = binary_crossentropy


class Loss:
    """Base class: `loss(y_true, y_pred, sample_weight=None)` -> sum(w l) / rows."""

    _fn = None
    _engine = None

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction != "sum_over_batch_size":
            raise NotImplementedError(f"reduction={reduction!r} is not supported yet")
        self.name = name or to_snake_case(type(self).__name__)
        self.reduction = reduction
        self._kw = {}

    def call(self, y_true, y_pred):
        return type(self)._fn(y_true, y_pred, **self._kw)

    def __call__(self, y_true, y_pred, sample_weight=None):
        values = np.asarray(self.call(y_true, y_pred), dtype=np.float64).reshape(len(y_pred), -1)
        values = values.mean(axis=1)
        if sample_weight is not None:
            values = values * np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        return np.float32(values.sum() / max(len(values), 1))

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, **self._kw}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class CategoricalCrossentropy(Loss):
    """Cross entropy for one-hot targets (softmax outputs).

    Example
    -------
    >>> from neuraxis.losses import CategoricalCrossentropy
    >>> round(float(CategoricalCrossentropy()([[0, 1]], [[0.2, 0.8]])), 4)
    0.2231
    """

    _fn = staticmethod(categorical_crossentropy)
    _engine = "categorical_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        self._kw = {"from_logits": from_logits, "label_smoothing": label_smoothing, "axis": axis}


class SparseCategoricalCrossentropy(Loss):
    """Cross entropy for integer class labels."""

    _fn = staticmethod(sparse_categorical_crossentropy)
    _engine = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, ignore_class=None, axis=-1,
                 reduction="sum_over_batch_size", name="sparse_categorical_crossentropy",
                 dtype=None):
        super().__init__(name, reduction, dtype)
        if ignore_class is not None:
            raise NotImplementedError("ignore_class is not supported yet")
        self._kw = {"from_logits": from_logits, "ignore_class": None, "axis": axis}


class BinaryCrossentropy(Loss):
    """Binary cross entropy for 0/1 targets (sigmoid outputs), averaged over outputs."""

    _fn = staticmethod(binary_crossentropy)
    _engine = "binary_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        self._kw = {"from_logits": from_logits, "label_smoothing": label_smoothing, "axis": axis}


class MeanSquaredError(Loss):
    """Mean squared error."""

    _fn = staticmethod(mean_squared_error)
    _engine = "mse"

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name, reduction, dtype)


class MeanAbsoluteError(Loss):
    """Mean absolute error."""

    _fn = staticmethod(mean_absolute_error)
    _engine = "mae"

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(name, reduction, dtype)


_CLASSES = {c.__name__: c for c in (CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                    BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError)}
# sparse_* train on one-hot targets: the engine runs them as categorical_*
_names.require("losses", [c._engine for c in _CLASSES.values()
                          if not c._engine.startswith("sparse_")], __name__)
_FUNCTIONS = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "BCE": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
}
_BY_FUNCTION = {categorical_crossentropy: CategoricalCrossentropy,
                sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
                binary_crossentropy: BinaryCrossentropy, mean_squared_error: MeanSquaredError,
                mean_absolute_error: MeanAbsoluteError}
VALID_NAMES = sorted(set(_FUNCTIONS) | set(_CLASSES) | {"crossentropy", "ce"})


def get(identifier):
    """A Loss instance from a name, a function of this module, a dict or an instance.

    'crossentropy' / 'ce' are resolved later from the data's shapes (see `resolve_by_shape`).
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        if identifier in ("crossentropy", "ce"):
            return identifier
        cls = _FUNCTIONS.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Could not interpret loss identifier: {identifier!r}. "
                             f"Valid names: {VALID_NAMES}")
        return cls()
    if callable(identifier) and identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier]()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Unknown loss class {identifier.get('class_name')!r}; "
                             f"known: {sorted(_CLASSES)}")
        try:
            return cls.from_config(dict(identifier.get("config") or {}))
        except TypeError as e:
            raise ValueError(f"Invalid loss config: {e}") from None
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}. Custom loss "
                     f"functions do not run in the engine; valid names: {VALID_NAMES}")


def resolve_by_shape(y_true_shape, y_pred_shape):
    """Keras's rule for 'crossentropy': binary / sparse / categorical from the shapes."""
    if y_pred_shape[-1] == 1:
        return BinaryCrossentropy()
    if len(y_true_shape) < len(y_pred_shape) or y_true_shape[-1] == 1:
        return SparseCategoricalCrossentropy()
    return CategoricalCrossentropy()


def serialize(loss):
    return {"module": "keras.losses", "class_name": type(loss).__name__,
            "config": loss.get_config(), "registered_name": None}
