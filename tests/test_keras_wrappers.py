"""neuraxis.wrappers (Keras 3's keras.wrappers) in scikit-learn: scikit-learn's estimator
checks with the expected failures Keras's own sklearn_test.py lists, Keras's
decision_function test, label encoding against a NumPy reference, clone / get_params /
set_params, warm_start, pickling, pipelines, GridSearchCV(n_jobs=2), cross_val_score, a
search on a dask LocalCluster, and the same training run as real Keras's wrapper (same
initial weights, in a subprocess)."""
import doctest
import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from neuraxis import wrappers
from neuraxis.layers import Dense, Input
from neuraxis.models import Sequential
from neuraxis.optimizers import Adam
from neuraxis.wrappers import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer

from real_keras import needs_keras

HAVE_DASK = True
try:
    import dask  # noqa: F401
    import distributed  # noqa: F401
except ImportError:
    HAVE_DASK = False
if os.environ.get("NEURAXIS_REQUIRE_DASK") and not HAVE_DASK:
    raise RuntimeError("NEURAXIS_REQUIRE_DASK is set but dask.distributed does not import")


def dynamic_model(X, y, loss, out_activation_function="softmax", layers=[10]):
    """Keras's sklearn_test.py model, as a Sequential."""
    model = Sequential([Input((X.shape[1],))])
    for size in layers:
        model.add(Dense(size, activation="relu"))
    model.add(Dense(y.shape[1] if len(y.shape) > 1 else 1, activation=out_activation_function))
    model.compile(loss=loss, optimizer="rmsprop")
    return model


# Keras's EXPECTED_FAILED_CHECKS (sklearn >= 1.6 entries), same reasons.
EXPECTED_FAILED_CHECKS = {
    "SKLearnClassifier": {
        "check_classifiers_one_label_sample_weights": "0 sample weight is not ignored",
        "check_classifiers_classes": "with small test cases the estimator returns not all "
                                     "classes sometimes",
        "check_classifier_data_not_an_array": "This test assumes reproducibility in fit.",
        "check_supervised_y_2d": "This test assumes reproducibility in fit.",
        "check_fit_idempotent": "This test assumes reproducibility in fit.",
        "check_classifiers_train": "decision_function can return both probabilities and "
                                   "logits",
    },
    "SKLearnRegressor": {},
    "SKLearnTransformer": {},
}


@parametrize_with_checks(
    [SKLearnClassifier(model=dynamic_model, model_kwargs={"loss": "categorical_crossentropy",
                                                          "layers": [20, 20, 20]},
                       fit_kwargs={"epochs": 5, "verbose": 0}),
     SKLearnRegressor(model=dynamic_model, model_kwargs={"loss": "mse"},
                      fit_kwargs={"verbose": 0}),
     SKLearnTransformer(model=dynamic_model, model_kwargs={"loss": "mse"},
                        fit_kwargs={"verbose": 0})],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[type(est).__name__])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("activation", ["softmax", "linear"])
def test_decision_function_argmax_is_predict(activation):
    """Keras's test_sklearn_estimator_decision_function."""
    X, y = make_classification(n_samples=10, n_features=10, n_informative=4, n_classes=2,
                               random_state=42)
    est = SKLearnClassifier(model=dynamic_model, fit_kwargs={"epochs": 1, "verbose": 0},
                            model_kwargs={"out_activation_function": activation,
                                          "loss": "binary_crossentropy"})
    est.fit(X, y)
    assert_array_equal(est.decision_function(X).argmax(axis=-1), est.predict(X))


def test_labels_are_one_hot_encoded_and_decoded():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    y = rng.choice(np.array(["cat", "dog", "emu"]), 30)
    seen = {}

    def build(X, y):
        seen["y"] = y
        return dynamic_model(X, y, "categorical_crossentropy")

    est = SKLearnClassifier(build, fit_kwargs={"epochs": 2, "verbose": 0}).fit(X, y)
    # the model sees one column per sorted class, a 1 where the label is
    classes = np.array(sorted(set(y)))
    assert_array_equal(est.classes_, classes)
    assert_array_equal(seen["y"], (y[:, None] == classes[None, :]).astype(float))
    P = est.decision_function(X)
    assert P.shape == (30, 3)
    assert_array_equal(est.predict(X), classes[P.argmax(axis=1)])
    with pytest.raises(ValueError, match="Only binary and multiclass target types"):
        est.fit(X, rng.normal(size=30))
    with pytest.raises(ValueError, match="only one class is present"):
        est.fit(X, np.zeros(30))


def test_regressor_targets_and_errors():
    X, y = make_regression(n_samples=40, n_features=5, random_state=0)
    seen = {}

    def build(X, y):
        seen["shape"] = y.shape
        return dynamic_model(X, y, "mse", out_activation_function="linear")

    est = SKLearnRegressor(build, fit_kwargs={"verbose": 0}).fit(X, y)
    assert seen["shape"] == (40, 1)
    pred = est.predict(X)
    assert pred.shape == (40,)
    assert_allclose(pred, est.model_.predict(X, verbose=0)[:, 0])

    def uncompiled(X, y):
        return Sequential([Input((X.shape[1],)), Dense(1)])

    with pytest.raises(RuntimeError, match="needs to be compiled, and have a loss"):
        SKLearnRegressor(uncompiled).fit(X, y)
    with pytest.raises(TypeError, match="must be a compiled neuraxis.models.Sequential"):
        SKLearnRegressor(lambda X, y: "not a model").fit(X, y)


def test_fit_kwargs_precedence_and_params():
    X, y = make_classification(n_samples=40, n_features=4, random_state=0)
    est = SKLearnClassifier(dynamic_model, model_kwargs={"loss": "categorical_crossentropy"},
                            fit_kwargs={"epochs": 3, "verbose": 0})
    assert est.get_params() == {"model": dynamic_model, "warm_start": False,
                                "model_kwargs": {"loss": "categorical_crossentropy"},
                                "fit_kwargs": {"epochs": 3, "verbose": 0}}
    assert est.epoch_ == 0
    est.fit(X, y)
    assert len(est.history_.history["loss"]) == 3 and est.epoch_ == 3
    est.fit(X, y, epochs=2)  # fit's own kwargs win, and are not stored
    assert len(est.history_.history["loss"]) == 2
    assert est.fit_kwargs == {"epochs": 3, "verbose": 0}
    est.set_params(fit_kwargs={"epochs": 1, "verbose": 0})
    c = clone(est)
    assert c.get_params()["fit_kwargs"] == {"epochs": 1, "verbose": 0}
    assert not hasattr(c, "model_")
    with pytest.raises(RuntimeError, match="metadata routing is enabled"):
        est.set_fit_request(sample_weight=True)


def test_a_model_instance_is_cloned_unless_warm_start():
    X, y = make_regression(n_samples=50, n_features=3, random_state=1)
    template = Sequential([Input((3,)), Dense(4, activation="relu"), Dense(1)])
    template.compile(optimizer="adam", loss="mse")
    before = [w.copy() for w in template.get_weights()]
    est = SKLearnRegressor(template, fit_kwargs={"epochs": 2, "verbose": 0}).fit(X, y)
    assert est.model_ is not template and est.model_.compiled
    assert est.model_.get_config()["layers"][1:] == template.get_config()["layers"][1:]
    for w, b in zip(template.get_weights(), before):  # the template is untouched
        assert_array_equal(w, b)
    first = est.model_
    est.fit(X, y)
    assert est.model_ is not first  # a fresh clone each fit
    warm = SKLearnRegressor(template, warm_start=True, fit_kwargs={"epochs": 1, "verbose": 0})
    warm.fit(X, y)
    assert warm.model_ is template
    after_one = [w.copy() for w in template.get_weights()]
    warm.fit(X, y)  # continues from the trained weights
    assert warm.model_ is template
    assert any(not np.array_equal(a, b) for a, b in zip(template.get_weights(), after_one))


def test_pickle_of_a_fitted_wrapper():
    X, y = make_classification(n_samples=60, n_features=5, random_state=2)
    est = SKLearnClassifier(dynamic_model, model_kwargs={"loss": "categorical_crossentropy"},
                            fit_kwargs={"epochs": 2, "verbose": 0}).fit(X, y)
    back = pickle.loads(pickle.dumps(est))
    assert_array_equal(back.classes_, est.classes_)
    assert_allclose(back.decision_function(X), est.decision_function(X), rtol=1e-6)
    assert_array_equal(back.predict(X), est.predict(X))
    back.fit(X, y)  # and it trains again after unpickling
    assert len(back.history_.history["loss"]) == 2


def test_pipeline_cross_val_score_and_grid_search_in_two_processes():
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4, random_state=3)
    pipe = make_pipeline(StandardScaler(), SKLearnClassifier(
        dynamic_model, model_kwargs={"loss": "categorical_crossentropy"},
        fit_kwargs={"epochs": 20, "verbose": 0}))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.6
    search = GridSearchCV(pipe, {"sklearnclassifier__model_kwargs": [
        {"loss": "categorical_crossentropy", "layers": [4]},
        {"loss": "categorical_crossentropy", "layers": [16, 16]}]}, cv=2, n_jobs=2)
    search.fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.best_estimator_.steps[-1][1].model_.layers[0].units in (4, 16)
    assert search.score(X, y) > 0.6


@pytest.mark.skipif(not HAVE_DASK, reason="dask[distributed] not installed (pip install "
                    "'.[dask]'); CI sets NEURAXIS_REQUIRE_DASK")
def test_grid_search_on_a_dask_local_cluster():
    import joblib
    from distributed import Client, LocalCluster

    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 1.5]) + 0.05 * rng.normal(size=80)
    template = Sequential([Input((4,)), Dense(8, activation="relu"), Dense(1)])
    template.compile(optimizer=Adam(0.05), loss="mse")
    search = GridSearchCV(SKLearnRegressor(template),
                          {"fit_kwargs": [{"epochs": 1, "verbose": 0},
                                          {"epochs": 40, "verbose": 0}]}, cv=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        with joblib.parallel_backend("dask"):
            search.fit(X, y)
    assert search.best_params_["fit_kwargs"]["epochs"] == 40  # more training fits better
    assert search.best_estimator_.model_ is not template


def test_docstring_example():
    assert doctest.testmod(wrappers).failed == 0


KERAS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    from keras.wrappers import SKLearnClassifier, SKLearnRegressor
    d = json.loads(sys.argv[1])
    X = np.array(d["X"]); W = [np.array(w) for w in d["W"]]
    def build(X, y, act, loss):
        m = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(y.shape[1], activation=act)])
        m.compile(optimizer="rmsprop", loss=loss)
        m.set_weights(W if act == "softmax" else W[:2] + [W[2][:, :1], W[3][:1]])
        return m
    fk = {"epochs": 3, "batch_size": 8, "shuffle": False, "verbose": 0}
    clf = SKLearnClassifier(build, model_kwargs={"act": "softmax",
                            "loss": "categorical_crossentropy"}, fit_kwargs=fk)
    clf.fit(X, np.array(d["labels"]))
    reg = SKLearnRegressor(build, model_kwargs={"act": "linear", "loss": "mse"}, fit_kwargs=fk)
    reg.fit(X, np.array(d["t"]))
    print(json.dumps({"classes": clf.classes_.tolist(), "pred": clf.predict(X).tolist(),
                      "dec": clf.decision_function(X).tolist(), "reg": reg.predict(X).tolist(),
                      "loss": clf.history_.history["loss"]}))
""")


@needs_keras
def test_same_training_run_as_real_keras_wrappers():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(24, 4))
    labels = rng.choice(np.array(["b", "a", "c"]), 24)
    t = X @ rng.normal(size=4) + 0.1
    W = [rng.normal(size=(4, 5)) * 0.5, rng.normal(size=5) * 0.1,
         rng.normal(size=(5, 3)) * 0.5, rng.normal(size=3) * 0.1]
    res = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, json.dumps(
        {"X": X.tolist(), "W": [w.tolist() for w in W], "labels": labels.tolist(),
         "t": t.tolist()})], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, KERAS_BACKEND="torch"))
    assert res.returncode == 0, res.stderr[-3000:]
    k = json.loads(res.stdout.strip().splitlines()[-1])

    def build(X, y, act, loss):
        m = Sequential([Input((X.shape[1],)), Dense(5, activation="tanh"),
                        Dense(y.shape[1], activation=act)])
        m.compile(optimizer="rmsprop", loss=loss)
        m.set_weights(W if act == "softmax" else W[:2] + [W[2][:, :1], W[3][:1]])
        return m

    fk = {"epochs": 3, "batch_size": 8, "shuffle": False, "verbose": 0}
    clf = SKLearnClassifier(build, model_kwargs={"act": "softmax",
                                                 "loss": "categorical_crossentropy"},
                            fit_kwargs=fk).fit(X, labels)
    reg = SKLearnRegressor(build, model_kwargs={"act": "linear", "loss": "mse"},
                           fit_kwargs=fk).fit(X, t)
    assert clf.classes_.tolist() == k["classes"]
    assert_allclose(clf.history_.history["loss"], k["loss"], rtol=1e-4)
    assert_allclose(clf.decision_function(X), k["dec"], rtol=1e-4, atol=1e-5)
    assert clf.predict(X).tolist() == k["pred"]
    assert_allclose(reg.predict(X), k["reg"], rtol=1e-4, atol=1e-5)
