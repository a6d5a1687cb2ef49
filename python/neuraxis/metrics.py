"""Metrics of the Keras front: accuracy variants (top-k too), mse, mae, and the streaming
AUC, Precision, Recall, F1Score / FBetaScore.

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
from ._keras import streaming
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
    _parameterized = False  # the engine metric depends on the object's arguments

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


def _in_top_k(labels, y_pred, k):
    """Keras's in_top_k: the label's score is at least the k-th largest (ties count)."""
    p = np.asarray(y_pred, np.float32)
    p = p.reshape(-1, p.shape[-1])
    labels = np.asarray(labels).reshape(len(p)).astype(np.int64)
    target = np.take_along_axis(p, labels[:, None], axis=1)
    return ((p > target).sum(axis=1) < k).astype(np.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Per sample: argmax(y_true) is among the k highest scores of y_pred."""
    y_true = np.asarray(y_true, np.float32)
    return _in_top_k(y_true.reshape(-1, y_true.shape[-1]).argmax(-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """Per sample: the integer label is among the k highest scores of y_pred."""
    if from_sorted_ids:
        raise NotImplementedError("from_sorted_ids=True is not supported")
    return _in_top_k(y_true, y_pred, k)


class TopKCategoricalAccuracy(Metric):
    """How often the one-hot label is among the k highest predictions."""

    _parameterized = True

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        self.k = k
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = top_k_categorical_accuracy(y_true, y_pred, self.k)
        self._add(values, sample_weight)

    def _add(self, values, sample_weight):
        w = (np.ones(len(values)) if sample_weight is None
             else np.asarray(sample_weight, np.float64).reshape(-1))
        self._total += float((values * w).sum())
        self._count += float(w.sum())

    @property
    def _engine(self):
        return f"top_k_categorical_accuracy?k={int(self.k)}"

    def get_config(self):
        return {"name": self.name, "dtype": "float32", "k": self.k}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """How often the integer label is among the k highest predictions."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids=False):
        if from_sorted_ids:
            raise NotImplementedError("from_sorted_ids=True is not supported")
        self.from_sorted_ids = False
        super().__init__(k, name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._add(sparse_top_k_categorical_accuracy(y_true, y_pred, self.k), sample_weight)

    @property
    def _engine(self):  # the engine sees one-hot targets (the trainer drops "sparse_")
        return "sparse_" + super()._engine


def _check_thresholds(thresholds):
    """Keras's parse_init_thresholds range check."""
    bad = [t for t in thresholds if t is None or t < 0 or t > 1]
    if bad:
        raise ValueError(f"Threshold values must be in [0, 1]. Received: {bad}")


class _ConfusionMetric(Metric):
    """Counts tp, fp, tn, fn per threshold (float32 thresholds, p > t is positive)."""

    _parameterized = True
    _top_k = None
    _class_id = None
    _clip = False

    def _set_thresholds(self, thresholds):
        self._thr = np.asarray(thresholds, np.float64).astype(np.float32)
        self._order = np.argsort(self._thr, kind="stable")  # the engine wants them ascending

    def reset_state(self):
        n = len(self._thr)
        self._counts = [np.zeros(n) for _ in range(4)]

    def update_state(self, y_true, y_pred, sample_weight=None):
        new = streaming.confusion(y_true, y_pred, self._thr, sample_weight, self._top_k,
                                  self._class_id, self._clip)
        self._counts = [a + b for a, b in zip(self._counts, new)]

    def result(self):
        return self._value(*self._counts)

    @property
    def _engine(self):
        spec = "confusion?thresholds=" + ",".join(repr(float(t)) for t in self._thr[self._order])
        if self._top_k is not None:
            spec += f"&top_k={int(self._top_k)}"
        if self._class_id is not None:
            spec += f"&class_id={int(self._class_id)}"
        return spec + ("&clip=1" if self._clip else "")

    def _slots(self, out_shape):
        return 2 * (len(self._thr) + 1)

    def _from_sums(self, sums):
        counts = []
        for c in streaming.from_buckets(sums, len(self._thr)):
            orig = np.empty_like(c)
            orig[self._order] = c
            counts.append(orig)
        return self._value(*counts)


class _PrecisionRecall(_ConfusionMetric):
    _formula = None

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        self.init_thresholds = thresholds
        self._top_k, self._class_id = top_k, class_id
        if thresholds is not None:
            _check_thresholds(_as_list(thresholds))
        default = 0.5 if top_k is None else streaming.NEG_INF
        self.thresholds = _as_list(default if thresholds is None else thresholds)
        self._set_thresholds(self.thresholds)
        super().__init__(name, dtype)

    @property
    def top_k(self):
        return self._top_k

    @property
    def class_id(self):
        return self._class_id

    def _value(self, tp, fp, tn, fn):
        v = type(self)._formula(tp, fp, tn, fn).astype(np.float32)
        return v[0] if len(self.thresholds) == 1 else v

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds,
                "top_k": self._top_k, "class_id": self._class_id}


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple, np.ndarray)) else [x]


class Precision(_PrecisionRecall):
    """tp / (tp + fp) at each threshold (0 when nothing is predicted positive)."""

    _formula = staticmethod(streaming.precision)


class Recall(_PrecisionRecall):
    """tp / (tp + fn) at each threshold (0 when there are no positive labels)."""

    _formula = staticmethod(streaming.recall)


class AUC(_ConfusionMetric):
    """Area under the ROC or PR curve, from confusion counts at num_thresholds thresholds."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        curves = {"pr": "PR", "PR": "PR", "roc": "ROC", "ROC": "ROC", "prgain": "PRGAIN",
                  "PRGAIN": "PRGAIN"}
        methods = {"interpolation": "interpolation", "Interpolation": "interpolation",
                   "majoring": "majoring", "Majoring": "majoring", "minoring": "minoring",
                   "Minoring": "minoring"}
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            self.num_thresholds = len(thresholds) + 2
            thresholds = sorted(thresholds)
            even = [0.0] + thresholds + [1.0]
            self._clip = bool(np.allclose(even, np.arange(len(even), dtype=np.float32) /
                                          (len(even) - 1), atol=streaming.EPSILON))
        else:
            if num_thresholds <= 1:
                raise ValueError("Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds}")
            self.num_thresholds = num_thresholds
            thresholds = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._clip = True  # Keras's bucket path clips predictions to [0, 1]
        # evenly spread thresholds: Keras's bucket path, which clips predictions to [0, 1]
        self._thresholds = np.array([0.0 - streaming.EPSILON] + thresholds +
                                    [1.0 + streaming.EPSILON])
        if curve not in curves:
            raise ValueError(f'Invalid AUC curve value: "{curve}". '
                             'Expected values are ["PR", "ROC", "PRGAIN"]')
        if summation_method not in methods:
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". '
                             'Expected values are ["interpolation", "majoring", "minoring"]')
        self.curve, self.summation_method = curves[curve], methods[summation_method]
        if multi_label:
            raise NotImplementedError("AUC(multi_label=True) is not supported yet")
        if num_labels:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        if label_weights is not None:
            raise NotImplementedError("AUC(label_weights=...) is not supported yet")
        self.multi_label, self.num_labels, self.label_weights = False, None, None
        self._from_logits = from_logits
        self._set_thresholds(self._thresholds)
        super().__init__(name, dtype)

    @property
    def thresholds(self):
        return list(self._thresholds)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self._from_logits:
            y_pred = 1.0 / (1.0 + np.exp(-np.asarray(y_pred, np.float32)))
        super().update_state(y_true, y_pred, sample_weight)

    @property
    def _engine(self):
        if self._from_logits:
            raise NotImplementedError("AUC(from_logits=True) in compile() is not supported; "
                                      "use a sigmoid output")
        return super()._engine

    def _value(self, tp, fp, tn, fn):
        return np.float32(streaming.auc(tp, fp, tn, fn, self.curve, self.summation_method))

    def get_config(self):
        config = {**super().get_config(), "num_thresholds": self.num_thresholds,
                  "curve": self.curve, "summation_method": self.summation_method,
                  "multi_label": False, "num_labels": None, "label_weights": None,
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config


class FBetaScore(Metric):
    """F-beta per class from tp, fp, fn (threshold None: the row's arg-max is positive)."""

    _parameterized = True

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: "
                             "{None, 'micro', 'macro', 'weighted'}. "
                             f"Received: average={average}")
        if not isinstance(beta, float):
            raise ValueError("Invalid `beta` argument value. It should be a Python float. "
                             f"Received: beta={beta} of type '{type(beta)}'")
        if beta <= 0.0:
            raise ValueError(f"Invalid `beta` argument value. It should be > 0. Received: "
                             f"beta={beta}")
        if threshold is not None:
            if not isinstance(threshold, float):
                raise ValueError("Invalid `threshold` argument value. It should be a Python "
                                 f"float. Received: threshold={threshold} of type "
                                 f"'{type(threshold)}'")
            if threshold > 1.0 or threshold <= 0.0:
                raise ValueError("Invalid `threshold` argument value. It should verify "
                                 f"0 < threshold <= 1. Received: threshold={threshold}")
        self.average, self.beta, self.threshold = average, beta, threshold
        super().__init__(name, dtype)

    def reset_state(self):
        self._counts = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        new = streaming.fbeta_counts(y_true, y_pred, self.threshold, sample_weight)
        self._counts = new if self._counts is None else [a + b for a, b in
                                                         zip(self._counts, new)]

    def result(self):
        if self._counts is None:
            return np.float32(0.0)
        return self._value(*self._counts)

    def _value(self, tp, fp, fn, weights):
        v = streaming.fbeta(tp, fp, fn, weights, self.beta, self.average)
        return v if self.average is None else np.float32(v)

    @property
    def _engine(self):
        return "fbeta" + ("" if self.threshold is None else f"?thresholds={self.threshold!r}")

    def _slots(self, out_shape):
        if len(out_shape) != 2:
            raise ValueError("FBetaScore expects 2D inputs with shape (batch_size, output_dim)."
                             f" Received input shapes: y_pred.shape={tuple(out_shape)}")
        return 4 * out_shape[-1]

    def _from_sums(self, sums):
        return self._value(*np.asarray(sums, np.float64).reshape(4, -1))

    def get_config(self):
        return {"name": self.name, "dtype": "float32", "average": self.average,
                "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """The harmonic mean of precision and recall (F-beta with beta = 1)."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


_CLASSES = {c.__name__: c for c in (BinaryAccuracy, CategoricalAccuracy,
                                    SparseCategoricalAccuracy, MeanSquaredError,
                                    MeanAbsoluteError, TopKCategoricalAccuracy,
                                    SparseTopKCategoricalAccuracy, Precision, Recall, AUC,
                                    FBetaScore, F1Score)}
# sparse_* see one-hot targets: the engine runs them as categorical_*
_names.require("metrics", [c._engine for c in _CLASSES.values()
                           if not getattr(c, "_parameterized", False)
                           and not c._engine.startswith("sparse_")]
               + ["top_k_categorical_accuracy", "confusion", "fbeta"], __name__)
_NAMES = {"binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
          "sparse_categorical_accuracy": SparseCategoricalAccuracy,
          "mse": MeanSquaredError, "MSE": MeanSquaredError, "mean_squared_error": MeanSquaredError,
          "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
          "mean_absolute_error": MeanAbsoluteError}
# keras.metrics.get: class names and their snake_case spellings
_NAMES.update({to_snake_case(c.__name__): c for c in (
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, Precision, Recall, AUC, FBetaScore,
    F1Score)})
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
        # a parameterized metric runs as configured: the object itself
        return identifier.name, (identifier if identifier._parameterized else type(identifier))
    if identifier in ("accuracy", "acc"):
        if y_pred_shape[-1] == 1:
            return identifier, BinaryAccuracy
        if len(y_true_shape) < len(y_pred_shape) or y_true_shape[-1] == 1:
            return identifier, SparseCategoricalAccuracy
        return identifier, CategoricalAccuracy
    cls = _NAMES.get(identifier) or _CLASSES[identifier]
    return identifier, (cls() if cls._parameterized else cls)


def serialize(metric):
    if isinstance(metric, Metric):
        return {"module": "keras.metrics", "class_name": type(metric).__name__,
                "config": metric.get_config(), "registered_name": None}
    return metric
