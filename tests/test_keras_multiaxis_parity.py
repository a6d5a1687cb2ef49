"""Training on outputs of more than one axis per sample (an image, a sequence of class
scores) against real Keras 3 (torch backend, in a subprocess) with copied weights: Keras
reduces a loss or metric over the last axis first and then averages over the positions.
Cases: a conv autoencoder (binary cross-entropy), per-step softmax classification with
one-hot targets, the same with integer labels (sparse), and per-step regression (mse, mae).
(Per-sample weights on per-step losses are checked against NumPy only: Keras's torch
backend cannot broadcast an (n,) sample_weight over (n, steps) losses.)"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuraxis import layers as L
from neuraxis.models import Sequential
from neuraxis.optimizers import Adam
from neuraxis.utils import set_random_seed

from real_keras import HAVE_KERAS, needs_keras  # noqa: F401

CASES = {
    "autoencoder": dict(
        input=(8, 8, 1), loss="binary_crossentropy", metrics=["accuracy"],
        layers=[("Conv2D", [4, 3], {"activation": "relu", "padding": "same"}),
                ("MaxPooling2D", [2], {}),
                ("Conv2D", [4, 3], {"activation": "relu", "padding": "same"}),
                ("UpSampling2D", [2], {}),
                ("Conv2D", [1, 3], {"activation": "sigmoid", "padding": "same"})]),
    "per_step_onehot": dict(
        input=(5, 4), loss="categorical_crossentropy", metrics=["accuracy"],
        layers=[("Dense", [8], {"activation": "relu"}),
                ("Dense", [3], {"activation": "softmax"})]),
    "per_step_sparse": dict(
        input=(5, 4), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
        layers=[("Conv1D", [6, 3], {"activation": "relu", "padding": "same"}),
                ("Dense", [3], {"activation": "softmax"})]),
    "per_step_regression": dict(
        input=(6, 3), loss="mse", metrics=["mae"],
        layers=[("Conv1D", [5, 2], {"activation": "tanh", "padding": "causal"}),
                ("Dense", [1], {})]),
}

KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    d = np.load(sys.argv[1])
    case = json.loads(sys.argv[2])
    model = keras.Sequential([keras.Input(tuple(case["input"]))] +
                             [getattr(keras.layers, c)(*a, **k) for c, a, k in case["layers"]])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss=case["loss"],
                  metrics=case["metrics"])
    model.set_weights([d[f"w{i}"] for i in range(len(model.get_weights()))])
    sw = d["sw"] if case.get("weighted") else None
    h = model.fit(d["X"], d["Y"], batch_size=8, epochs=2, shuffle=False, verbose=0,
                  sample_weight=sw)
    ev = model.evaluate(d["X"], d["Y"], verbose=0, sample_weight=sw)
    np.savez(sys.argv[3], *model.get_weights(), P=model.predict(d["X"], verbose=0))
    print(json.dumps({"history": h.history, "evaluate": ev}))
""")


def targets(name, case, rng, n, out_shape):
    if name == "autoencoder":
        return (rng.random((n,) + out_shape) > 0.5).astype(np.float32)
    if name == "per_step_onehot":
        return np.eye(3, dtype=np.float32)[rng.integers(0, 3, (n,) + out_shape[:-1])]
    if name == "per_step_sparse":
        return rng.integers(0, 3, (n,) + out_shape[:-1]).astype(np.int64)
    return rng.normal(size=(n,) + out_shape).astype(np.float32)


def build(case):
    set_random_seed(0)
    return Sequential([L.Input(case["input"])] +
                      [getattr(L, c)(*a, **k) for c, a, k in case["layers"]])


@needs_keras
@pytest.mark.parametrize("name", sorted(CASES))
def test_training_matches_keras(name, tmp_path):
    case = CASES[name]
    rng = np.random.default_rng(5)
    model = build(case)
    n = 32
    X = rng.normal(size=(n,) + case["input"]).astype(np.float32)
    Y = targets(name, case, rng, n, model.output_shape[1:])
    sw = rng.uniform(0.2, 2.0, n).astype(np.float32)
    init = [rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in model.get_weights()]
    np.savez(tmp_path / "in.npz", X=X, Y=Y, sw=sw, **{f"w{i}": w for i, w in enumerate(init)})
    out = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp_path / "in.npz"),
                          json.dumps(case), str(tmp_path / "out.npz")], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-2000:]
    ref = json.loads(out.stdout.strip().splitlines()[-1])
    theirs = np.load(tmp_path / "out.npz")

    model.compile(optimizer=Adam(learning_rate=0.01), loss=case["loss"], metrics=case["metrics"])
    model.set_weights(init)
    weights = sw if case.get("weighted") else None
    hist = model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                     sample_weight=weights)
    assert sorted(hist.history) == sorted(ref["history"])
    for key, values in ref["history"].items():
        assert_allclose(hist.history[key], values, rtol=2e-4, atol=2e-5, err_msg=key)
    for i, w in enumerate(model.get_weights()):
        assert_allclose(w, theirs[f"arr_{i}"], rtol=2e-4, atol=2e-5, err_msg=f"weight {i}")
    assert_allclose(model.predict(X, verbose=0), theirs["P"], rtol=2e-4, atol=2e-5)
    assert_allclose(model.evaluate(X, Y, verbose=0, sample_weight=weights), ref["evaluate"],
                    rtol=2e-4, atol=2e-5)


def test_per_step_losses_and_accuracy_against_numpy():
    # categorical cross-entropy: per step over the classes, then the mean over steps and rows;
    # accuracy: the fraction of (row, step) positions whose arg-max is the label
    model = build(CASES["per_step_onehot"])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(2)
    X = rng.normal(size=(12, 5, 4)).astype(np.float32)
    labels = rng.integers(0, 3, (12, 5))
    Y = np.eye(3, dtype=np.float32)[labels]
    P = model.predict(X, verbose=0).astype(np.float64)
    ce = -np.log(np.clip((P * Y).sum(-1), 1e-7, 1 - 1e-7))
    loss, acc = model.evaluate(X, Y, verbose=0)
    assert np.isclose(loss, ce.mean(), rtol=1e-5)
    assert np.isclose(acc, (P.argmax(-1) == labels).mean())
    # an (n,) sample weight weighs every step of its row (Keras's sum over batch size)
    w = rng.uniform(0.2, 2.0, 12)
    model.compile(optimizer="adam", loss="categorical_crossentropy",
                  weighted_metrics=["accuracy"])
    wloss, wacc = model.evaluate(X, Y, verbose=0, sample_weight=w)
    assert np.isclose(wloss, (w[:, None] * ce).mean(), rtol=1e-5)
    assert np.isclose(wacc, (w[:, None] * (P.argmax(-1) == labels)).sum() / (5 * w.sum()),
                      rtol=1e-5)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    sparse = build(CASES["per_step_onehot"])
    sparse.set_weights(model.get_weights())
    sparse.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert np.allclose(sparse.evaluate(X, labels, verbose=0), [loss, acc], rtol=1e-6)
    with pytest.raises(ValueError, match="looks one-hot encoded"):
        sparse.evaluate(X, Y, verbose=0)
    with pytest.raises(ValueError, match="integer class labels"):
        model.evaluate(X, labels, verbose=0)
    with pytest.raises(ValueError, match="class_weight"):
        model.fit(X, Y, class_weight={0: 1.0}, verbose=0)
