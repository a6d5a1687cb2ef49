"""AUC, Precision, Recall, top-k accuracies and F1/F-beta of the Keras front: the standalone
objects against NumPy references written here (and scikit-learn's f1_score / roc_auc_score),
the engine's fit/evaluate values against the objects on the same predictions, and both
against real Keras 3 (torch backend, in a subprocess): the same metric objects on the same
arrays, and the history of small models with copied weights. Strings, configs, errors."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.metrics import f1_score, roc_auc_score

from neuraxis import layers as L
from neuraxis import metrics as M
from neuraxis.models import Sequential
from neuraxis.optimizers import SGD
from neuraxis.utils import set_random_seed

from real_keras import needs_keras


def data():
    rng = np.random.default_rng(0)
    n, k = 60, 6  # k > 5: torch Keras refuses top-k with k above the classes
    yb = (rng.random((n, 1)) > 0.4).astype(np.float32)
    pb = np.clip(0.35 * yb + 0.65 * rng.random((n, 1)), 0, 1).astype(np.float32)
    labels = rng.integers(0, k, n)
    Y = np.eye(k, dtype=np.float32)[labels]
    logits = rng.normal(size=(n, k)) + 1.2 * Y
    P = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    sw = rng.uniform(0.2, 2.0, n).astype(np.float32)
    return {"yb": yb, "pb": pb, "Y": Y, "P": P, "labels": labels.astype(np.float32), "sw": sw}


# (class, kwargs, y key, p key): every spelling the comparisons below run
CASES = [
    ("AUC", {}, "yb", "pb"),
    ("AUC", {"curve": "PR"}, "yb", "pb"),
    ("AUC", {"summation_method": "minoring", "num_thresholds": 17}, "yb", "pb"),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, "yb", "pb"),
    ("AUC", {"thresholds": [0.2, 0.5, 0.7]}, "yb", "pb"),
    ("AUC", {}, "Y", "P"),
    ("Precision", {}, "yb", "pb"),
    ("Precision", {"thresholds": [0.7, 0.3, 0.5]}, "yb", "pb"),
    ("Precision", {"top_k": 2}, "Y", "P"),
    ("Precision", {"class_id": 2, "thresholds": 0.3}, "Y", "P"),
    ("Recall", {}, "yb", "pb"),
    ("Recall", {"thresholds": [0.2, 0.6]}, "yb", "pb"),
    ("Recall", {"top_k": 1, "class_id": 1}, "Y", "P"),
    ("TopKCategoricalAccuracy", {}, "Y", "P"),
    ("TopKCategoricalAccuracy", {"k": 2}, "Y", "P"),
    ("SparseTopKCategoricalAccuracy", {"k": 1}, "labels", "P"),
    ("F1Score", {}, "Y", "P"),
    ("F1Score", {"average": "micro"}, "Y", "P"),
    ("F1Score", {"average": "macro", "threshold": 0.3}, "Y", "P"),
    ("F1Score", {"average": "weighted"}, "Y", "P"),
    ("FBetaScore", {"beta": 2.0, "average": "macro"}, "Y", "P"),
]


def standalone(d, weighted):
    """Each case's result after two update_state calls (halves of the data)."""
    out = []
    for cls, kw, yk, pk in CASES:
        m = getattr(M, cls)(**kw)
        for s in (slice(0, 25), slice(25, None)):
            m.update_state(d[yk][s], d[pk][s], d["sw"][s] if weighted else None)
        out.append(np.asarray(m.result(), np.float64))
    return out


# --- NumPy references -----------------------------------------------------------------
def counts(y, p, t, w):
    pos, pred = y.reshape(-1) != 0, p.reshape(-1) > np.float32(t)
    w = np.broadcast_to(w.reshape(len(y), 1), y.shape).reshape(-1)
    return (w * (pos & pred)).sum(), (w * (~pos & pred)).sum(), (w * (pos & ~pred)).sum(), \
        (w * (~pos & ~pred)).sum()


@pytest.mark.parametrize("weighted", [False, True])
def test_precision_recall_auc_against_numpy(weighted):
    d = data()
    w = d["sw"] if weighted else np.ones(60, np.float32)
    sw = d["sw"] if weighted else None
    for t in (0.3, 0.5, 0.8):
        tp, fp, fn, tn = counts(d["yb"], d["pb"], t, w)
        p, r = M.Precision(thresholds=t), M.Recall(thresholds=t)
        p.update_state(d["yb"], d["pb"], sw)
        r.update_state(d["yb"], d["pb"], sw)
        assert_allclose(p.result(), tp / (tp + fp), rtol=1e-6)
        assert_allclose(r.result(), tp / (tp + fn), rtol=1e-6)
    # ROC, trapezoids between Keras's thresholds (eps endpoints), written out here
    n = 30
    ts = [-1e-7] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1 + 1e-7]
    c = np.array([counts(d["yb"], d["pb"], np.float32(t), w) for t in ts])
    tpr, fpr = c[:, 0] / (c[:, 0] + c[:, 2]), c[:, 1] / (c[:, 1] + c[:, 3])
    ref = sum((fpr[i] - fpr[i + 1]) * (tpr[i] + tpr[i + 1]) / 2 for i in range(n - 1))
    a = M.AUC(num_thresholds=n)
    a.update_state(d["yb"], d["pb"], sw)
    assert_allclose(a.result(), ref, rtol=1e-6)
    # with many thresholds, the exact area (scikit-learn's)
    a = M.AUC(num_thresholds=20001)
    a.update_state(d["yb"], d["pb"], sw)
    assert_allclose(a.result(), roc_auc_score(d["yb"].ravel(), d["pb"].ravel(),
                                              sample_weight=sw), atol=1e-4)


def test_no_positives_give_zero():
    p, r = M.Precision(), M.Recall()
    p.update_state([1, 0], [0.1, 0.2])
    r.update_state([0, 0], [0.9, 0.2])
    assert float(p.result()) == 0.0 and float(r.result()) == 0.0


def test_top_k_and_f1_against_references():
    d = data()
    rank = (d["P"] > d["P"][np.arange(60), d["labels"].astype(int)][:, None]).sum(1)
    for k in (1, 2, 3):
        m = M.TopKCategoricalAccuracy(k=k)
        m.update_state(d["Y"], d["P"], d["sw"])
        assert_allclose(m.result(), np.average(rank < k, weights=d["sw"]), rtol=1e-6)
        s = M.SparseTopKCategoricalAccuracy(k=k)
        s.update_state(d["labels"], d["P"])
        assert_allclose(s.result(), np.mean(rank < k), rtol=1e-6)
    pred = d["P"].argmax(1)
    for average in (None, "micro", "macro", "weighted"):
        m = M.F1Score(average=average)
        m.update_state(d["Y"], d["P"])
        assert_allclose(m.result(), f1_score(d["labels"], pred, average=average), rtol=1e-5)
    m = M.F1Score(average="macro", threshold=0.3)
    m.update_state(d["Y"], d["P"])
    assert_allclose(m.result(), f1_score(d["Y"], d["P"] > 0.3, average="macro"), rtol=1e-5)


# --- the engine's values during evaluate / fit ----------------------------------------------
def engine_models():
    set_random_seed(0)
    binary = Sequential([L.Input((5,)), L.Dense(1, activation="sigmoid")])
    multi = Sequential([L.Input((5,)), L.Dense(6, activation="softmax")])
    return binary, multi


BIN_METRICS = lambda: ["auc", "precision", "Recall", M.Precision(thresholds=[0.6, 0.3], name="p2"),  # noqa
                       M.AUC(curve="PR", num_thresholds=50, name="pr"),
                       M.AUC(thresholds=[0.25, 0.5, 0.75], summation_method="majoring",
                             name="auc3")]
BIN_WEIGHTED = lambda: [M.AUC(name="wauc"), M.Recall(thresholds=0.4, name="wrec")]  # noqa
MULTI_METRICS = lambda: ["top_k_categorical_accuracy", M.TopKCategoricalAccuracy(k=2, name="top2"),  # noqa
                         M.Precision(top_k=2, name="p_top2"),
                         M.Recall(class_id=1, name="r_c1"), "f1_score",
                         M.F1Score(average="macro", name="f1m"),
                         M.F1Score(average="weighted", threshold=0.3, name="f1w"),
                         M.FBetaScore(beta=0.5, average="micro", name="fb")]
MULTI_WEIGHTED = lambda: [M.F1Score(average="macro", name="wf1"),  # noqa
                          M.TopKCategoricalAccuracy(k=2, name="wtop2")]


def xy():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 5)).astype(np.float32)
    yb = (X[:, :1] + 0.7 * rng.normal(size=(50, 1)) > 0).astype(np.float32)
    Y = np.eye(6, dtype=np.float32)[(X[:, 1] > 0) * 3 + (X[:, 2] > 0) + (X[:, 3] > 0)]
    sw = rng.uniform(0.3, 2.0, 50).astype(np.float32)
    return X, yb, Y, sw


def test_evaluate_equals_the_objects_on_the_predictions():
    X, yb, Y, sw = xy()
    binary, multi = engine_models()
    for model, y, mets, wmets, loss in ((binary, yb, BIN_METRICS, BIN_WEIGHTED,
                                         "binary_crossentropy"),
                                        (multi, Y, MULTI_METRICS, MULTI_WEIGHTED,
                                         "categorical_crossentropy")):
        model.compile(SGD(0.1), loss, metrics=mets(), weighted_metrics=wmets())
        logs = model.evaluate(X, y, sample_weight=sw, batch_size=7, verbose=0, return_dict=True)
        P = model.predict(X, verbose=0)
        for objs, weights in ((mets(), None), (wmets(), sw)):
            for m in objs:
                obj = M.check(m) if isinstance(m, M.Metric) else \
                    M.resolve(m, y.shape, model.output_shape)[1]
                obj = obj() if isinstance(obj, type) else obj
                obj.update_state(y, P, weights)
                name = m if isinstance(m, str) else m.name
                assert_allclose(logs[name], obj.result(), rtol=1e-5, atol=1e-7, err_msg=name)


def test_strings_and_objects_spell_the_same_metrics():
    for s, cls in (("auc", M.AUC), ("AUC", M.AUC), ("precision", M.Precision),
                   ("recall", M.Recall), ("top_k_categorical_accuracy",
                                          M.TopKCategoricalAccuracy),
                   ("sparse_top_k_categorical_accuracy", M.SparseTopKCategoricalAccuracy),
                   ("f1_score", M.F1Score), ("F1Score", M.F1Score),
                   ("f_beta_score", M.FBetaScore)):
        name, obj = M.resolve(M.check(s), (10, 4), (None, 4))
        assert name == s and isinstance(obj, cls)
    assert M.AUC().name == "auc" and M.FBetaScore().name == "fbeta_score"
    assert M.SparseTopKCategoricalAccuracy().name == "sparse_top_k_categorical_accuracy"


def test_sparse_top_k_in_fit_needs_integer_labels():
    X, _, Y, _ = xy()
    _, multi = engine_models()
    multi.compile(SGD(0.1), "sparse_categorical_crossentropy",
                  metrics=["sparse_top_k_categorical_accuracy",
                           M.SparseTopKCategoricalAccuracy(k=1, name="top1")])
    labels = Y.argmax(1)
    logs = multi.evaluate(X, labels, verbose=0, return_dict=True)
    P = multi.predict(X, verbose=0)
    rank = (P > P[np.arange(50), labels][:, None]).sum(1)
    assert_allclose(logs["sparse_top_k_categorical_accuracy"], np.mean(rank < 5), rtol=1e-6)
    assert_allclose(logs["top1"], np.mean(rank < 1), rtol=1e-6)
    multi.compile(SGD(0.1), "categorical_crossentropy",
                  metrics=["sparse_top_k_categorical_accuracy"])
    with pytest.raises(ValueError, match="integer labels"):
        multi.evaluate(X, Y, verbose=0)


def test_configs_round_trip():
    objs = [M.AUC(num_thresholds=50, curve="PR", summation_method="minoring", name="a"),
            M.AUC(thresholds=[0.7, 0.2]), M.Precision(thresholds=[0.2, 0.4], top_k=2),
            M.Recall(class_id=3), M.TopKCategoricalAccuracy(k=3),
            M.SparseTopKCategoricalAccuracy(k=2), M.F1Score(average="macro", threshold=0.4),
            M.FBetaScore(beta=2.0)]
    for m in objs:
        again = type(m).from_config(m.get_config())
        assert again.get_config() == m.get_config()
        ser = M.serialize(m)
        assert ser["class_name"] == type(m).__name__
        assert M.check(ser).get_config() == m.get_config()
    assert M.AUC(thresholds=[0.7, 0.2]).get_config()["thresholds"] == [0.2, 0.7]
    assert M.AUC().get_config() == {
        "name": "auc", "dtype": "float32", "num_thresholds": 200, "curve": "ROC",
        "summation_method": "interpolation", "multi_label": False, "num_labels": None,
        "label_weights": None, "from_logits": False}
    assert M.Precision().get_config() == {"name": "precision", "dtype": "float32",
                                          "thresholds": None, "top_k": None, "class_id": None}
    assert M.F1Score().get_config() == {"name": "f1_score", "dtype": "float32",
                                        "average": None, "threshold": None}


@pytest.mark.parametrize("make, match", [
    (lambda: M.AUC(curve="XY"), 'Invalid AUC curve value: "XY"'),
    (lambda: M.AUC(summation_method="mid"), "Invalid AUC summation method value"),
    (lambda: M.AUC(num_thresholds=1), "must be an integer > 1"),
    (lambda: M.AUC(num_labels=3), "only when `multi_label` is True"),
    (lambda: M.Precision(thresholds=[0.5, 1.5]), r"Threshold values must be in \[0, 1\]"),
    (lambda: M.Recall(thresholds=-0.1), r"Threshold values must be in \[0, 1\]"),
    (lambda: M.F1Score(average="samples"), "Invalid `average` argument value"),
    (lambda: M.F1Score(threshold=1), "It should be a Python float"),
    (lambda: M.F1Score(threshold=0.0), "0 < threshold <= 1"),
    (lambda: M.FBetaScore(beta=1), "It should be a Python float"),
    (lambda: M.FBetaScore(beta=-1.0), "It should be > 0"),
])
def test_bad_arguments_raise_as_keras(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_f1_needs_two_dimensional_outputs():
    with pytest.raises(ValueError, match="expects 2D inputs"):
        M.F1Score().update_state(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))


# --- real Keras -------------------------------------------------------------------------
KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    M = keras.metrics
    d = np.load(sys.argv[1])
    cases = json.loads(sys.argv[2])
    out = {"standalone": {}}
    for weighted in (False, True):
        res = []
        for cls, kw, yk, pk in cases:
            m = getattr(M, cls)(**kw)
            for s in (slice(0, 25), slice(25, None)):
                m.update_state(d[yk][s], d[pk][s], d["sw"][s] if weighted else None)
            res.append(np.asarray(m.result()).tolist())
        out["standalone"][str(weighted)] = res
    BIN = lambda: ["auc", "precision", "Recall", M.Precision(thresholds=[0.6, 0.3], name="p2"),
                   M.AUC(curve="PR", num_thresholds=50, name="pr"),
                   M.AUC(thresholds=[0.25, 0.5, 0.75], summation_method="majoring",
                         name="auc3")]
    BINW = lambda: [M.AUC(name="wauc"), M.Recall(thresholds=0.4, name="wrec")]
    MUL = lambda: ["top_k_categorical_accuracy", M.TopKCategoricalAccuracy(k=2, name="top2"),
                   M.Precision(top_k=2, name="p_top2"), M.Recall(class_id=1, name="r_c1"),
                   "f1_score", M.F1Score(average="macro", name="f1m"),
                   M.F1Score(average="weighted", threshold=0.3, name="f1w"),
                   M.FBetaScore(beta=0.5, average="micro", name="fb")]
    MULW = lambda: [M.F1Score(average="macro", name="wf1"),
                    M.TopKCategoricalAccuracy(k=2, name="wtop2")]
    L = keras.layers
    for name, units, act, loss, mets, wmets, y in (
            ("binary", 1, "sigmoid", "binary_crossentropy", BIN, BINW, d["xy_yb"]),
            ("multi", 6, "softmax", "categorical_crossentropy", MUL, MULW, d["xy_Y"])):
        model = keras.Sequential([keras.Input((5,)), L.Dense(units, activation=act)])
        model.compile(keras.optimizers.SGD(0.1), loss, metrics=mets(), weighted_metrics=wmets())
        model.set_weights([d[name + "_w0"], d[name + "_w1"]])
        h = model.fit(d["xy_X"], y, sample_weight=d["xy_sw"], batch_size=8, epochs=2,
                      shuffle=False, verbose=0)
        out[name] = {k: [np.asarray(v).tolist() for v in vs] for k, vs in h.history.items()}
        ev = model.evaluate(d["xy_X"], y, sample_weight=d["xy_sw"], batch_size=8, verbose=0,
                            return_dict=True)
        out[name + "_eval"] = {k: np.asarray(v).tolist() for k, v in ev.items()}
    print(json.dumps(out))
""")


@needs_keras
def test_matches_real_keras(tmp_path):
    d = data()
    X, yb, Y, sw = xy()
    arrays = dict(d, xy_X=X, xy_yb=yb, xy_Y=Y, xy_sw=sw)
    rng = np.random.default_rng(9)
    binary, multi = engine_models()
    for name, model in (("binary", binary), ("multi", multi)):
        for j, w in enumerate(model.get_weights()):
            arrays[f"{name}_w{j}"] = rng.uniform(-0.8, 0.8, w.shape).astype(np.float32)
    np.savez(tmp_path / "in.npz", **arrays)
    out = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp_path / "in.npz"),
                          json.dumps(CASES)], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-3000:]
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    for weighted in (False, True):
        for case, ours, ref in zip(CASES, standalone(d, weighted),
                                   theirs["standalone"][str(weighted)]):
            assert_allclose(ours, ref, rtol=1e-5, atol=1e-6, err_msg=f"{case} {weighted}")
    for name, model, y, mets, wmets, loss in (
            ("binary", binary, yb, BIN_METRICS, BIN_WEIGHTED, "binary_crossentropy"),
            ("multi", multi, Y, MULTI_METRICS, MULTI_WEIGHTED, "categorical_crossentropy")):
        model.compile(SGD(0.1), loss, metrics=mets(), weighted_metrics=wmets())
        model.set_weights([arrays[f"{name}_w0"], arrays[f"{name}_w1"]])
        hist = model.fit(X, y, sample_weight=sw, batch_size=8, epochs=2, shuffle=False,
                         verbose=0).history
        assert sorted(hist) == sorted(theirs[name])
        for key, values in theirs[name].items():
            assert_allclose(np.array(hist[key], np.float64), np.array(values), rtol=1e-4,
                            atol=1e-5, err_msg=f"{name} {key}")
        ev = model.evaluate(X, y, sample_weight=sw, batch_size=8, verbose=0, return_dict=True)
        assert sorted(ev) == sorted(theirs[name + "_eval"])
        for key, value in theirs[name + "_eval"].items():
            assert_allclose(ev[key], value, rtol=1e-4, atol=1e-5, err_msg=f"{name} eval {key}")
