"""Parity with real Keras 3 (torch backend), when it is installed (optional extra
`compare`); without it these tests are skipped, as heavy frameworks are never
dependencies. Keras runs in a subprocess so its backend and threads stay apart."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from neuraxis.layers import Dense, Dropout, Input, LeakyReLU
from neuraxis.models import Sequential

from real_keras import HAVE_KERAS, needs_keras  # noqa: F401

pytestmark = needs_keras

KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    d = np.load(sys.argv[1])
    cfg = json.loads(sys.argv[2])
    layers = [keras.Input((d["X"].shape[1],)), keras.layers.Dense(cfg["hidden"])]
    layers += [keras.layers.LeakyReLU(negative_slope=0.01),
               keras.layers.Dense(d["Y"].shape[1], activation=cfg["out"])]
    model = keras.Sequential(layers)
    opt = {"adam": keras.optimizers.Adam(learning_rate=cfg["lr"]),
           "sgd": keras.optimizers.SGD(learning_rate=cfg["lr"], momentum=0.9, nesterov=True),
           "rmsprop": keras.optimizers.RMSprop(learning_rate=cfg["lr"])}[cfg["opt"]]
    model.compile(optimizer=opt, loss=cfg["loss"], metrics=["accuracy"])
    model.set_weights([d["W0"], d["b0"], d["W1"], d["b1"]])
    sw = d["sw"] if cfg["weighted"] else None
    h = model.fit(d["X"], d["Y"], batch_size=cfg["batch"], epochs=cfg["epochs"], shuffle=False,
                  verbose=0, sample_weight=sw)
    ev = model.evaluate(d["X"], d["Y"], verbose=0, sample_weight=sw)
    np.savez(sys.argv[3], *model.get_weights(), P=model.predict(d["X"], verbose=0))
    print(json.dumps({"history": h.history, "evaluate": ev}))
""")


@pytest.mark.parametrize("cfg", [
    dict(opt="adam", loss="categorical_crossentropy", out="softmax", lr=0.01, weighted=False),
    dict(opt="sgd", loss="categorical_crossentropy", out="softmax", lr=0.05, weighted=True),
    dict(opt="rmsprop", loss="binary_crossentropy", out="sigmoid", lr=0.005, weighted=False),
    dict(opt="adam", loss="mse", out="linear", lr=0.01, weighted=True),
])
def test_training_matches_keras(cfg, tmp_path):
    rng = np.random.default_rng(0)
    n, d, h, k = 96, 7, 12, 3
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    sw = rng.uniform(0.2, 2.0, n).astype(np.float32)
    init = dict(W0=rng.uniform(-0.5, 0.5, (d, h)).astype(np.float32),
                b0=rng.uniform(-0.1, 0.1, h).astype(np.float32),
                W1=rng.uniform(-0.5, 0.5, (h, k)).astype(np.float32),
                b1=rng.uniform(-0.1, 0.1, k).astype(np.float32))
    cfg = dict(cfg, hidden=h, batch=16, epochs=3)
    np.savez(tmp_path / "data.npz", X=X, Y=Y, sw=sw, **init)
    env = dict(os.environ, KERAS_BACKEND="torch")
    out = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp_path / "data.npz"),
                          json.dumps(cfg), str(tmp_path / "keras.npz")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    ref = json.loads(out.stdout.strip().splitlines()[-1])
    kw = np.load(tmp_path / "keras.npz")

    model = Sequential([Input((d,)), Dense(h), LeakyReLU(negative_slope=0.01),
                        Dense(k, activation=cfg["out"])])
    from neuraxis import optimizers
    opt = {"adam": optimizers.Adam(learning_rate=cfg["lr"]),
           "sgd": optimizers.SGD(learning_rate=cfg["lr"], momentum=0.9, nesterov=True),
           "rmsprop": optimizers.RMSprop(learning_rate=cfg["lr"])}[cfg["opt"]]
    model.compile(optimizer=opt, loss=cfg["loss"], metrics=["accuracy"])
    model.set_weights([init["W0"], init["b0"], init["W1"], init["b1"]])
    hist = model.fit(X, Y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                     sample_weight=sw if cfg["weighted"] else None)
    for ours, theirs in zip(model.get_weights(), [kw[f"arr_{i}"] for i in range(4)]):
        np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(model.predict(X, verbose=0), kw["P"], rtol=2e-4, atol=2e-5)
    assert sorted(hist.history) == sorted(ref["history"])
    for key, values in ref["history"].items():
        np.testing.assert_allclose(hist.history[key], values, rtol=2e-4, atol=2e-5)
    ev = model.evaluate(X, Y, verbose=0, sample_weight=sw if cfg["weighted"] else None)
    np.testing.assert_allclose(ev, ref["evaluate"], rtol=2e-4, atol=2e-5)
