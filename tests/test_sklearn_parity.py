"""Same hyperparameters and random_state as scikit-learn -> the same training run."""
import numpy as np
import pytest
import sklearn.neural_network as sk
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression

import neuraxis.neural_network as nx


def _clf_data(n_classes=3, n=300):
    return make_classification(n_samples=n, n_features=12, n_informative=6, n_classes=n_classes,
                               random_state=7)


STOCHASTIC = [
    dict(solver="adam"),
    dict(solver="adam", activation="tanh", alpha=1e-2, batch_size=32),
    dict(solver="sgd"),
    dict(solver="sgd", nesterovs_momentum=False, momentum=0.5, activation="logistic"),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.05),
    dict(solver="sgd", learning_rate="adaptive", n_iter_no_change=2, tol=1e-1),
    dict(solver="adam", shuffle=False, activation="identity"),
    dict(solver="adam", early_stopping=True, n_iter_no_change=3),
]


@pytest.mark.parametrize("kw", STOCHASTIC)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifier_loss_curve_matches_sklearn(kw, n_classes):
    X, y = _clf_data(n_classes)
    args = dict(hidden_layer_sizes=(15, 9), max_iter=10, random_state=3, **kw)
    ref = sk.MLPClassifier(**args).fit(X, y)
    got = nx.MLPClassifier(**args).fit(X, y)
    assert got.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(got.loss_curve_[:10], ref.loss_curve_[:10], rtol=1e-6)
    np.testing.assert_allclose(got.predict_proba(X), ref.predict_proba(X), rtol=1e-5, atol=1e-8)
    if kw.get("early_stopping"):
        np.testing.assert_allclose(got.validation_scores_, ref.validation_scores_)
        assert got.best_loss_ is None and ref.best_loss_ is None
    else:
        assert got.best_loss_ == pytest.approx(ref.best_loss_, rel=1e-6)
    assert got.t_ == ref.t_
    for a, b in zip(got.coefs_, ref.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("kw", STOCHASTIC[:5])
def test_regressor_loss_curve_matches_sklearn(kw):
    X, y = make_regression(n_samples=250, n_features=8, n_targets=2, noise=0.1, random_state=1)
    y = y / 100
    args = dict(hidden_layer_sizes=(12,), max_iter=10, random_state=0, **kw)
    if kw.get("solver") == "sgd":
        args["learning_rate_init"] = 1e-3
    ref = sk.MLPRegressor(**args).fit(X, y)
    got = nx.MLPRegressor(**args).fit(X, y)
    np.testing.assert_allclose(got.loss_curve_, ref.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(got.predict(X), ref.predict(X), rtol=1e-5, atol=1e-8)


def test_poisson_regressor_matches_sklearn():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 5))
    y = rng.poisson(np.exp(0.3 * X[:, 0] + 0.2))
    args = dict(loss="poisson", hidden_layer_sizes=(8,), max_iter=10, random_state=0)
    ref = sk.MLPRegressor(**args).fit(X, y)
    got = nx.MLPRegressor(**args).fit(X, y)
    assert got.out_activation_ == "exp"
    np.testing.assert_allclose(got.loss_curve_, ref.loss_curve_, rtol=1e-6)


def test_multilabel_matches_sklearn():
    X, Y = make_multilabel_classification(n_samples=200, n_features=10, n_classes=4,
                                          random_state=0)
    args = dict(hidden_layer_sizes=(16,), max_iter=10, random_state=0)
    ref = sk.MLPClassifier(**args).fit(X, Y)
    got = nx.MLPClassifier(**args).fit(X, Y)
    np.testing.assert_allclose(got.loss_curve_, ref.loss_curve_, rtol=1e-6)
    assert got.out_activation_ == "logistic"
    np.testing.assert_array_equal(got.predict(X), ref.predict(X))
    assert got.predict_proba(X).shape == (200, 4)


def test_sample_weight_matches_sklearn():
    X, y = _clf_data(3)
    sw = np.random.RandomState(0).uniform(0.1, 2.0, size=len(y))
    args = dict(hidden_layer_sizes=(10,), max_iter=10, random_state=0)
    ref = sk.MLPClassifier(**args).fit(X, y, sample_weight=sw)
    got = nx.MLPClassifier(**args).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(got.loss_curve_, ref.loss_curve_, rtol=1e-6)


@pytest.mark.parametrize("est", ["clf", "reg"])
def test_lbfgs_matches_sklearn(est):
    if est == "clf":
        X, y = _clf_data(3)
        cls_ref, cls_got = sk.MLPClassifier, nx.MLPClassifier
    else:
        X, y = make_regression(n_samples=200, n_features=6, random_state=0)
        y = y / 50
        cls_ref, cls_got = sk.MLPRegressor, nx.MLPRegressor
    args = dict(solver="lbfgs", hidden_layer_sizes=(10,), max_iter=60, random_state=0,
                alpha=1e-3)
    ref = cls_ref(**args).fit(X, y)
    got = cls_got(**args).fit(X, y)
    assert got.loss_ == pytest.approx(ref.loss_, rel=1e-4)
    assert got.n_iter_ == ref.n_iter_
    assert not hasattr(got, "loss_curve_")
    assert got.coefs_[0].dtype == np.float64


def test_lecture_example_matches_sklearn_to_convergence():
    X, y = make_classification(n_samples=1000, n_features=20, n_classes=2, random_state=42)
    args = dict(hidden_layer_sizes=(100, 50), activation="relu", max_iter=300, random_state=42)
    ref = sk.MLPClassifier(**args).fit(X, y)
    got = nx.MLPClassifier(**args).fit(X, y)
    np.testing.assert_allclose(got.loss_curve_[:10], ref.loss_curve_[:10], rtol=1e-6)
    assert got.n_iter_ == ref.n_iter_
    assert got.score(X, y) == pytest.approx(ref.score(X, y), abs=0.01)


def test_float32_stays_float32_and_tracks_float64():
    X, y = _clf_data(3)
    X32 = X.astype(np.float32)
    args = dict(hidden_layer_sizes=(10,), max_iter=10, random_state=0)
    got = nx.MLPClassifier(**args).fit(X32, y)
    ref = sk.MLPClassifier(**args).fit(X32, y)
    assert all(c.dtype == np.float32 for c in got.coefs_ + got.intercepts_)
    assert got.predict_proba(X32).dtype == np.float32
    assert got.predict_proba(X).dtype == np.float64  # float64 input upcasts, as in sklearn
    np.testing.assert_allclose(got.loss_curve_, ref.loss_curve_, rtol=1e-4)
