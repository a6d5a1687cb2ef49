"""The scikit-learn front: estimator protocol, bad input, pickling, threads, Ctrl-C."""
import io
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from neuraxis.neural_network import MLPClassifier, MLPRegressor


@parametrize_with_checks([MLPClassifier(max_iter=50), MLPRegressor(max_iter=50)])
def test_sklearn_check_estimator(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=300, n_features=10, n_informative=5, n_classes=3,
                               random_state=0)
    return X, y


def test_lecture_example_learns():
    X, y = make_classification(n_samples=1000, n_features=20, n_classes=2, random_state=42)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=42)
    clf = MLPClassifier(hidden_layer_sizes=(100, 50), activation="relu", max_iter=300,
                        random_state=0)
    clf.fit(X_tr, y_tr)
    assert clf.score(X_te, y_te) > 0.8
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
    assert [c.shape for c in clf.coefs_] == [(20, 100), (100, 50), (50, 1)]
    assert clf.predict_proba(X_te).shape == (200, 2)
    np.testing.assert_allclose(clf.predict_proba(X_te).sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X_te)), clf.predict_proba(X_te),
                               rtol=1e-10)


@pytest.mark.parametrize("activation", ["leaky_relu", "elu", "softplus", "tanh", "logistic"])
def test_extra_and_standard_activations_learn(data, activation):
    X, y = data
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier(hidden_layer_sizes=(30,), activation=activation, max_iter=300,
                        learning_rate_init=0.01,
                        random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.8


def test_regressor_learns():
    X, y = make_regression(n_samples=400, n_features=5, noise=1.0, random_state=0)
    reg = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(50,), max_iter=500,
                                                        learning_rate_init=0.01, random_state=0))
    reg.fit(X, y / 100)
    assert reg.score(X, y / 100) > 0.95


# ---- bad input gets scikit-learn's errors ----------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_X_rejected(data, bad):
    X, y = data
    X = X.copy()
    X[3, 2] = bad
    with pytest.raises(ValueError, match="Input X contains"):
        MLPClassifier(max_iter=5).fit(X, y)
    clf = MLPClassifier(max_iter=5).fit(data[0], y)
    with pytest.raises(ValueError, match="Input X contains"):
        clf.predict(X)


def test_wrong_number_of_features_at_predict(data):
    X, y = data
    clf = MLPClassifier(max_iter=5).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :5])
    with pytest.raises(ValueError, match="features"):
        clf.predict_proba(np.ascontiguousarray(X[:, :5]))


def test_1d_and_empty_X_rejected(data):
    X, y = data
    with pytest.raises(ValueError, match="2D array"):
        MLPClassifier(max_iter=5).fit(X[:, 0], y)
    with pytest.raises(ValueError, match="0 sample"):
        MLPClassifier(max_iter=5).fit(X[:0], y[:0])
    clf = MLPClassifier(max_iter=5).fit(X, y)
    with pytest.raises(ValueError, match="2D array"):
        clf.predict(X[0])
    with pytest.raises(ValueError, match="0 sample"):
        clf.predict(X[:0])


@pytest.mark.parametrize("params, match", [
    (dict(solver="newton"), "solver"),
    (dict(activation="swish"), "activation"),
    (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes must be > 0"),
    (dict(hidden_layer_sizes=(-3,)), "hidden_layer_sizes must be > 0"),
    (dict(alpha=-1.0), "alpha"),
    (dict(learning_rate_init=0.0), "learning_rate_init"),
    (dict(max_iter=0), "max_iter"),
    (dict(batch_size=0), "batch_size"),
])
def test_bad_parameters(data, params, match):
    X, y = data
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_not_fitted():
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(np.ones((2, 3)))
    with pytest.raises(NotFittedError):
        MLPRegressor().predict(np.ones((2, 3)))


def test_predict_before_fit_and_partial_fit_lbfgs():
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert hasattr(MLPClassifier(solver="adam"), "partial_fit")


# ---- layouts and types that must work --------------------------------------------

def test_layouts_and_types_give_same_predictions(data):
    X, y = data
    clf = MLPClassifier(hidden_layer_sizes=(20,), max_iter=30, random_state=0).fit(X, y)
    p = clf.predict_proba(X)
    np.testing.assert_allclose(clf.predict_proba(np.asfortranarray(X)), p, rtol=1e-12)
    Xbig = np.zeros((X.shape[0], 2 * X.shape[1]))
    Xbig[:, ::2] = X
    np.testing.assert_allclose(clf.predict_proba(Xbig[:, ::2]), p, rtol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(sp.csr_matrix(X)), p, rtol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(X.tolist()), p, rtol=1e-12)
    Xi = np.round(X * 3).astype(np.int64)
    clf_i = MLPClassifier(hidden_layer_sizes=(20,), max_iter=30, random_state=0).fit(Xi, y)
    clf_f = MLPClassifier(hidden_layer_sizes=(20,), max_iter=30, random_state=0).fit(
        Xi.astype(float), y)
    np.testing.assert_array_equal(clf_i.loss_curve_, clf_f.loss_curve_)


def test_fit_on_fortran_sparse_noncontiguous_equal(data):
    X, y = data
    args = dict(hidden_layer_sizes=(15,), max_iter=8, random_state=0)
    ref = MLPClassifier(**args).fit(X, y).loss_curve_
    assert MLPClassifier(**args).fit(np.asfortranarray(X), y).loss_curve_ == ref
    assert MLPClassifier(**args).fit(sp.csr_matrix(X), y).loss_curve_ == pytest.approx(ref)
    assert MLPClassifier(**args).fit(sp.csc_matrix(X), y).loss_curve_ == pytest.approx(ref)


def test_string_labels(data):
    X, y = data
    labels = np.array(["cat", "dog", "emu"])[y]
    clf = MLPClassifier(max_iter=50, random_state=0).fit(X, labels)
    assert set(clf.predict(X)) <= {"cat", "dog", "emu"}
    assert list(clf.classes_) == ["cat", "dog", "emu"]


# ---- estimator protocol ----------------------------------------------------------

def test_clone_gridsearch_pipeline(data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=30, random_state=0))
    gs = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(5,), (20,)]}, cv=2)
    gs.fit(X, y)
    assert gs.best_params_["mlpclassifier__hidden_layer_sizes"] in [(5,), (20,)]
    c = clone(MLPClassifier(hidden_layer_sizes=(7, 3), alpha=0.5))
    assert c.get_params()["hidden_layer_sizes"] == (7, 3) and c.alpha == 0.5


def test_pickle_round_trip_keeps_optimizer_state(data):
    X, y = data
    a = MLPClassifier(hidden_layer_sizes=(10,), max_iter=5, random_state=0).fit(X, y)
    b = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert b._optimizer.t == a._optimizer.t > 0
    a.partial_fit(X, y)
    b.partial_fit(X, y)
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    for ca, cb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(ca, cb)


def test_warm_start_and_partial_fit(data):
    X, y = data
    clf = MLPClassifier(hidden_layer_sizes=(10,), max_iter=3, warm_start=True, random_state=0)
    clf.fit(X, y)
    clf.fit(X, y)
    assert len(clf.loss_curve_) == 6 and clf.n_iter_ == 3 and clf.t_ == 6 * len(X)
    with pytest.raises(ValueError, match="warm_start can only be used"):
        clf.fit(X[y < 2], y[y < 2])
    p = MLPClassifier(hidden_layer_sizes=(10,), random_state=0)
    p.partial_fit(X[:100], y[:100], classes=np.unique(y))
    p.partial_fit(X[100:], y[100:])
    assert p.n_iter_ == 1 and p.t_ == len(X)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=np.unique(y))


def test_verbose_prints_to_python_stdout(data, capsys):
    X, y = data
    MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, verbose=True, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 3, loss = " in out


def test_same_seed_bit_identical(data):
    X, y = data
    a = MLPClassifier(hidden_layer_sizes=(30, 10), max_iter=20, random_state=1).fit(X, y)
    b = MLPClassifier(hidden_layer_sizes=(30, 10), max_iter=20, random_state=1).fit(X, y)
    assert a.loss_curve_ == b.loss_curve_
    for ca, cb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(ca, cb)


def test_predict_from_many_threads(data):
    X, y = data
    clf = MLPClassifier(hidden_layer_sizes=(40,), max_iter=20, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(clf.predict_proba(X))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 80
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_non_finite_weights_error():
    X, y = make_regression(n_samples=50, n_features=3, random_state=0)
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MLPRegressor(solver="sgd", learning_rate_init=10.0, max_iter=20,
                         random_state=0).fit(X, y * 1e10)


def test_keyboard_interrupt_stops_fit_and_leaves_model_usable(tmp_path):
    script = tmp_path / "long_fit.py"
    script.write_text(textwrap.dedent("""
        import signal, sys, warnings
        import numpy as np
        # A background CI job may start us with SIGINT ignored; an interactive
        # session has Python's own handler, which raises KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from neuraxis.neural_network import MLPClassifier
        rng = np.random.RandomState(0)
        X = rng.normal(size=(20000, 200)).astype(np.float32)
        y = (X[:, 0] > 0).astype(int)
        clf = MLPClassifier(hidden_layer_sizes=(256, 256), batch_size=16, max_iter=10000,
                            tol=0, n_iter_no_change=10**9, random_state=0)
        print("ready", flush=True)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            clf.fit(X, y)
        print("interrupted:", any("interrupted" in str(x.message) for x in w), flush=True)
        print("accuracy:", (clf.predict(X[:500]) == y[:500]).mean(), flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # an editable install may print its rebuild first
            if line.strip() == "ready":
                break
        else:
            pytest.fail("the subprocess never became ready: " + proc.stderr.read())
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "interrupted: True" in out
    assert time.monotonic() - t0 < 20  # stops at the next batch, not at the end of fit
    acc = float(out.split("accuracy:")[1])
    assert 0.0 <= acc <= 1.0


def test_sparse_input_is_densified_block_by_block(data, monkeypatch):
    from neuraxis.neural_network import _base as mlp

    X, y = data
    X = np.where(np.abs(X) > 1.0, X, 0.0)  # a genuinely sparse pattern
    args = dict(hidden_layer_sizes=(12,), max_iter=5, random_state=0, batch_size=16)
    dense = MLPClassifier(**args).fit(X, y)
    # blocks of one batch: the epoch runs as many engine calls
    monkeypatch.setattr(mlp, "_SPARSE_BLOCK_BYTES", 16 * X.shape[1] * 8)
    sparse = MLPClassifier(**args).fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(sparse.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X),
                               rtol=1e-12)


def test_overflowing_finite_input_does_not_raise(data):
    X, y = data
    X32 = X.astype(np.float32)
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X32, y)
    big = np.full((3, X.shape[1]), 3e38, dtype=np.float32)  # finite, but X W overflows
    assert np.isfinite(big).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = reg.predict(big)  # as in scikit-learn: no error, non-finite output
    assert out.shape == (3,)
    assert not np.isfinite(out).all()
