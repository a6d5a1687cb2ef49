"""Keras-front models as scikit-learn estimators: Keras 3's `keras.wrappers`.

`SKLearnClassifier`, `SKLearnRegressor` and `SKLearnTransformer` take `model`, a callable
`model(X=X, y=y, **model_kwargs)` that returns a compiled `neuraxis.models.Sequential` (or
such a model itself, cloned with fresh weights for each fit), so a neuraxis network sits in
pipelines, `GridSearchCV` and `cross_val_score`. As in Keras: classifier targets are one-hot
encoded (`classes_` from `np.unique`), regressor targets become (n, 1) and come back 1-D,
`fit_kwargs` go to `model.fit` (those given to `fit` win), `history_` is what `fit` returned
(a `History`), and `predict` calls `model_.predict(X)` with its defaults (Keras's bar).
A fitted wrapper pickles (the model pickles without its engine network, rebuilt on use).

Where Keras 3.15's code disagrees with its own documentation, the documentation is
followed: `warm_start=True` reuses the fitted model (Keras's code never reads it), `clone`
keeps `fit_kwargs` (Keras's `__sklearn_clone__` drops them, so a grid search would train
with `fit`'s defaults), and `fit(**kwargs)` does not write into `fit_kwargs`.

Example
-------
>>> import numpy as np
>>> from sklearn.datasets import make_classification
>>> from neuraxis.layers import Dense, Input
>>> from neuraxis.models import Sequential
>>> from neuraxis.wrappers import SKLearnClassifier
>>> def build(X, y, hidden=16):
...     model = Sequential([Input((X.shape[1],)), Dense(hidden, activation="relu"),
...                         Dense(y.shape[1], activation="softmax")])
...     model.compile(optimizer="adam", loss="categorical_crossentropy")
...     return model
>>> X, y = make_classification(n_samples=200, n_features=8, random_state=0)
>>> clf = SKLearnClassifier(build, model_kwargs={"hidden": 8},
...                         fit_kwargs={"epochs": 5, "verbose": 0}).fit(X, y)
>>> clf.classes_.tolist(), len(clf.history_.history["loss"])
([0, 1], 5)
"""
import numpy as np
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.multiclass import type_of_target as _sk_type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from . import saving
from .models import Sequential

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]


def _type_of_target(y, raise_unknown=False):
    target_type = _sk_type_of_target(y)
    if raise_unknown and target_type == "unknown":
        raise ValueError(f"Unknown label type for data: {y!r}")
    return target_type


def _check_model(model):
    if not isinstance(model, Sequential):
        raise TypeError("`model` must be a compiled neuraxis.models.Sequential or a callable "
                        f"returning one; got {type(model).__name__}: {model!r}")
    if not model.compiled or not model.loss or not model.optimizer:
        raise RuntimeError("Given model needs to be compiled, and have a loss and an "
                           "optimizer.")


def _clone_model(model):
    """Keras's `clone_model` for a Sequential: same layers and compile, fresh weights."""
    clone = Sequential.from_config(model.get_config())
    if model.compiled:
        saving._compile(clone, model._compile_config)
    return clone


class TargetReshaper(TransformerMixin, BaseEstimator):
    """1-D targets to (n, 1) and back, so OneHotEncoder can take them (as Keras's)."""

    def fit(self, y):
        self.ndim_ = y.ndim
        return self

    def transform(self, y):
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def inverse_transform(self, y):
        check_is_fitted(self)
        if self.ndim_ == 1 and y.ndim == 2:
            return np.squeeze(y, axis=1)
        return y


class SKLBase(BaseEstimator):
    """What the three wrappers share: `model`, `warm_start`, `model_kwargs`, `fit_kwargs`."""

    def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None):
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        return tags

    @property
    def epoch_(self):
        """How many epochs the last `fit` ran (0 before any)."""
        history = getattr(self, "history_", None)
        return len(history.epoch) if history is not None else 0

    def set_fit_request(self, **kwargs):
        """Route `fit`'s metadata (scikit-learn's metadata routing must be enabled)."""
        if not sklearn.get_config().get("enable_metadata_routing", False):
            raise RuntimeError("This method is only available when metadata routing is "
                               "enabled. You can enable it using "
                               "sklearn.set_config(enable_metadata_routing=True).")
        self._metadata_request = sklearn.utils.metadata_routing.MetadataRequest(
            owner=self.__class__.__name__)
        for param, alias in kwargs.items():
            self._metadata_request.score.add_request(param=param, alias=alias)
        return self

    def _get_model(self, X, y):
        if self.warm_start and hasattr(self, "model_"):
            return self.model_
        if isinstance(self.model, Sequential):
            return self.model if self.warm_start else _clone_model(self.model)
        if not callable(self.model):
            raise TypeError("`model` must be a compiled neuraxis.models.Sequential or a "
                            f"callable returning one; got {type(self.model).__name__}")
        return self.model(X=X, y=y, **(self.model_kwargs or {}))

    def fit(self, X, y, **kwargs):
        """Build (or reuse) the model and train it; `kwargs` go to `model.fit`."""
        X, y = validate_data(self, X, y)
        y = self._process_target(y, reset=True)
        model = self._get_model(X, y)
        _check_model(model)
        fit_kwargs = dict(self.fit_kwargs or {})
        fit_kwargs.update(kwargs)
        self.history_ = model.fit(X, y, **fit_kwargs)
        self.model_ = model
        return self

    def predict(self, X):
        """The model's predictions, mapped back to the targets' form."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self._reverse_process_target(self.model_.predict(X))

    def _process_target(self, y, reset=False):
        _type_of_target(y, raise_unknown=True)  # the right error for an invalid target
        if reset:
            self._target_encoder = TargetReshaper().fit(y)
        return self._target_encoder.transform(y)

    def _reverse_process_target(self, y):
        return self._target_encoder.inverse_transform(y)


class SKLearnClassifier(ClassifierMixin, SKLBase):
    """A Keras-front model as a scikit-learn classifier (Keras's `SKLearnClassifier`).

    Targets are one-hot encoded for the model (so its output has one unit per class, and
    `y.shape[1]` in `model(X, y)` is the class count); `predict` takes the arg-max back to
    the labels, `decision_function` gives the model's raw outputs. Attributes: `model_`,
    `history_`, `classes_`.
    """

    def decision_function(self, X):
        """The model's raw outputs, one column per class."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.model_.predict(X)

    def _process_target(self, y, reset=False):
        target_type = _type_of_target(y, raise_unknown=True)
        if target_type not in ["binary", "multiclass"]:
            raise ValueError("Only binary and multiclass target types are supported."
                             f" Target type: {target_type}")
        if reset:
            self._target_encoder = make_pipeline(
                TargetReshaper(), OneHotEncoder(sparse_output=False)).fit(y)
            self.classes_ = np.unique(y)
            if len(self.classes_) == 1:
                raise ValueError("Classifier can't train when only one class is present.")
        return self._target_encoder.transform(y)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


class SKLearnRegressor(RegressorMixin, SKLBase):
    """A Keras-front model as a scikit-learn regressor (Keras's `SKLearnRegressor`).

    1-D targets reach the model as (n, 1) and `predict` returns 1-D. Attributes: `model_`,
    `history_`.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags


class SKLearnTransformer(TransformerMixin, SKLBase):
    """A Keras-front model as a scikit-learn transformer: `transform` is `model_.predict`
    (an embedding step in a pipeline, say). Attributes: `model_`, `history_`."""

    def transform(self, X):
        """The model's outputs for X."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.model_.predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags
