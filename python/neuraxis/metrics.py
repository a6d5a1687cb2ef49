"""Metrics of the Keras front: accuracy variants, mse, mae.

During `fit`/`evaluate` the engine accumulates them in C++; the functions and
classes here compute the same values on NumPy arrays for direct use.
'accuracy' / 'acc' are resolved from the shapes exactly as Keras 3 does: one
output unit -> binary accuracy; integer labels (lower rank, or a last dimension
of 1) -> sparse categorical accuracy; otherwise categorical accuracy. The history
key is the string the user typed.

Example
-------
>>> from neuraxis.metrics import CategoricalAccuracy
>>> m = CategoricalAccuracy()
>>> m.update_state([[0, 1], [1, 0]], [[0.3, 0.7], [0.4, 0.6]])
>>> float(m.result())
0.5
"""
import numpy as np

from . import _names
from ._keras.utils import to_snake_case
# Per sample: mean over outputs of (y - p)² / |y - p|: the same functions as the losses.
from .losses import _pair, mean_absolute_error, mean_squared_error


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Per sample: mean over outputs of (y_pred > threshold) == y_true."""
    y_true, y_pred = _pair(y_true, y_pred)
    return (y_true == (y_pred > threshold)).astype(np.float32).mean(axis=-1)


def categorical_accuracy(y_true, y_pred):
    """Per sample: argmax(y_true) == argmax(y_pred)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return (y_true.argmax(-1) == y_pred.argmax(-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    """Per sample: label == argmax(y_pred)."""
    y_pred = np.asarray(y_pred, dtype=np.float32)
    labels = np.asarray(y_true).reshape(len(y_pred))
    return (labels == y_pred.argmax(-1)).astype(np.float32)




class Metric:
    """A running weighted mean of a per-sample metric function."""

    _fn = None
    _engine = None
    _direction = "up"

    def __init__(self, name=None, dtype=None):
        self.name = name or to_snake_case(type(self).__name__)
        self.reset_state()

    def reset_state(self):
        self._total, self._count = 0.0, 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = np.asarray(type(self)._fn(y_true, y_pred), dtype=np.float64).reshape(-1)
        w = (np.ones_like(values) if sample_weight is None
             else np.asarray(sample_weight, np.float64).reshape(-1))
        self._total += float((values * w).sum())
        self._count += float(w.sum())

    def result(self):
        return np.float32(self._total / self._count if self._count else 0.0)

    def get_config(self):
        return {"name": self.name, "dtype": "float32"}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class BinaryAccuracy(Metric):
    """How often (y_pred > 0.5) equals the 0/1 label."""

    _fn = staticmethod(binary_accuracy)
    _engine = "binary_accuracy"

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        if threshold != 0.5:
            raise NotImplementedError("BinaryAccuracy with a threshold other than 0.5")
        super().__init__(name, dtype)

    def get_config(self):
        return {**super().get_config(), "threshold": 0.5}


class CategoricalAccuracy(Metric):
    """How often argmax(y_pred) equals argmax of the one-hot label."""

    _fn = staticmethod(categorical_accuracy)
    _engine = "categorical_accuracy"

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(name, dtype)


class SparseCategoricalAccuracy(Metric):
    """How often argmax(y_pred) equals the integer label."""

    _fn = staticmethod(sparse_categorical_accuracy)
    _engine = "sparse_categorical_accuracy"

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(name, dtype)


class MeanSquaredError(Metric):
    """Mean of (y - p)²."""

    _fn = staticmethod(mean_squared_error)
    _engine = "mse"
    _direction = "down"

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(name, dtype)


class MeanAbsoluteError(Metric):
    """Mean of |y - p|."""

    _fn = staticmethod(mean_absolute_error)
    _engine = "mae"
    _direction = "down"

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(name, dtype)


_CLASSES = {c.__name__: c for c in (BinaryAccuracy, CategoricalAccuracy,
                                    SparseCategoricalAccuracy, MeanSquaredError,
                                    MeanAbsoluteError)}
# sparse_* see one-hot targets: the engine runs them as categorical_*
_names.require("metrics", [c._engine for c in _CLASSES.values()
                           if not c._engine.startswith("sparse_")], __name__)
_NAMES = {"binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
          "sparse_categorical_accuracy": SparseCategoricalAccuracy,
          "mse": MeanSquaredError, "MSE": MeanSquaredError, "mean_squared_error": MeanSquaredError,
          "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
          "mean_absolute_error": MeanAbsoluteError}
VALID_NAMES = sorted(set(_NAMES) | {"accuracy", "acc"} | set(_CLASSES))


def check(identifier):
    """Fail early (in compile) on a metric name or object we cannot compute."""
    if isinstance(identifier, Metric) or identifier in ("accuracy", "acc"):
        return identifier
    if isinstance(identifier, str) and (identifier in _NAMES or identifier in _CLASSES):
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(dict(identifier.get("config") or {}))
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}. "
                     f"Valid names: {VALID_NAMES}")


def resolve(identifier, y_true_shape, y_pred_shape):
    """(history key, Metric class) for one compile() metric, given the data's shapes."""
    if isinstance(identifier, Metric):
        return identifier.name, type(identifier)
    if identifier in ("accuracy", "acc"):
        if y_pred_shape[-1] == 1:
            return identifier, BinaryAccuracy
        if len(y_true_shape) < len(y_pred_shape) or y_true_shape[-1] == 1:
            return identifier, SparseCategoricalAccuracy
        return identifier, CategoricalAccuracy
    return identifier, (_NAMES.get(identifier) or _CLASSES[identifier])


def serialize(metric):
    if isinstance(metric, Metric):
        return {"module": "keras.metrics", "class_name": type(metric).__name__,
                "config": metric.get_config(), "registered_name": None}
    return metric
