"""Convolution and pooling layers against real Keras 3 (torch backend, in a subprocess) with
copied weights: eager layer outputs for strides, 'same' padding, dilation and non-square
windows, and two epochs of training of a small CNN (weights, history, predictions)."""
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

pytestmark = needs_keras

# (class, args, kwargs) of the eager cases: each layer on a (3, 11, 10, 2) batch
LAYER_CASES = [
    ("Conv2D", [4, 3], {}),
    ("Conv2D", [4, [3, 2]], {"strides": 2, "padding": "same", "activation": "relu"}),
    ("Conv2D", [3, 3], {"dilation_rate": 2, "padding": "same", "activation": "tanh"}),
    ("Conv2D", [5, [2, 4]], {"strides": [1, 3], "use_bias": False}),
    ("MaxPooling2D", [], {}),
    ("MaxPooling2D", [3], {"strides": 2, "padding": "same"}),
    # 'same' average pooling only where the padding is symmetric: where it is not, Keras's
    # torch backend pads by replicating the edge and averages the copies too, unlike its
    # TensorFlow and JAX backends (and neuraxis), which average the real inputs only
    ("AveragePooling2D", [3], {"strides": 1, "padding": "same"}),
    ("AveragePooling2D", [3], {"strides": [1, 2]}),
]

MODEL = [("Conv2D", [6, 3], {"activation": "relu", "padding": "same"}),
         ("MaxPooling2D", [2], {}),
         ("Conv2D", [5, [3, 2]], {"strides": [1, 2], "activation": "relu"}),
         ("AveragePooling2D", [3], {"strides": 1, "padding": "same"}),
         ("Flatten", [], {}),
         ("Dense", [3], {"activation": "softmax"})]

KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    d = np.load(sys.argv[1])
    cases, model_spec = json.loads(sys.argv[2])
    out = {}
    for i, (cls, args, kw) in enumerate(cases):
        layer = getattr(keras.layers, cls)(*args, **kw)
        layer.build(d["X"].shape)
        if layer.weights:
            layer.set_weights([d[f"case{i}_w{j}"] for j in range(len(layer.weights))])
        out[f"case{i}"] = keras.ops.convert_to_numpy(layer(d["X"]))
    model = keras.Sequential([keras.Input(d["X"].shape[1:])] +
                             [getattr(keras.layers, c)(*a, **k) for c, a, k in model_spec])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    n = len(model.get_weights())
    model.set_weights([d[f"model_w{j}"] for j in range(n)])
    h = model.fit(d["Xt"], d["Yt"], batch_size=8, epochs=2, shuffle=False, verbose=0)
    for j, w in enumerate(model.get_weights()):
        out[f"trained_w{j}"] = w
    out["P"] = model.predict(d["Xt"], verbose=0)
    np.savez(sys.argv[3], **out)
    print(json.dumps(h.history))
""")


def build(spec, input_shape):
    set_random_seed(0)
    return Sequential([L.Input(input_shape)] + [getattr(L, c)(*a, **k) for c, a, k in spec])


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    if not HAVE_KERAS:
        pytest.skip("keras + torch not installed")
    rng = np.random.default_rng(11)
    tmp = tmp_path_factory.mktemp("cnn")
    arrays = {"X": rng.normal(size=(3, 11, 10, 2)).astype(np.float32),
              "Xt": rng.normal(size=(32, 11, 10, 2)).astype(np.float32),
              "Yt": np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)]}
    for i, (cls, args, kw) in enumerate(LAYER_CASES):
        layer = getattr(L, cls)(*args, **kw)
        layer.build(arrays["X"].shape)
        for j, w in enumerate(layer.get_weights()):
            arrays[f"case{i}_w{j}"] = rng.uniform(-0.5, 0.5, w.shape).astype(np.float32)
    for j, w in enumerate(build(MODEL, (11, 10, 2)).get_weights()):
        arrays[f"model_w{j}"] = rng.uniform(-0.4, 0.4, w.shape).astype(np.float32)
    np.savez(tmp / "in.npz", **arrays)
    out = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp / "in.npz"),
                          json.dumps([LAYER_CASES, MODEL]), str(tmp / "out.npz")],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-2000:]
    return arrays, json.loads(out.stdout.strip().splitlines()[-1]), dict(np.load(tmp / "out.npz"))


@pytest.mark.parametrize("i", range(len(LAYER_CASES)),
                         ids=[f"{c}-{a}-{k}" for c, a, k in LAYER_CASES])
def test_layer_output_equals_keras(keras_run, i):
    arrays, _, theirs = keras_run
    cls, args, kw = LAYER_CASES[i]
    layer = getattr(L, cls)(*args, **kw)
    layer.build(arrays["X"].shape)
    n = len(layer.get_weights())
    if n:
        layer.set_weights([arrays[f"case{i}_w{j}"] for j in range(n)])
    got = layer(arrays["X"])
    assert got.shape == theirs[f"case{i}"].shape
    assert_allclose(got, theirs[f"case{i}"], rtol=1e-5, atol=1e-6)


def test_training_matches_keras(keras_run):
    arrays, history, theirs = keras_run
    model = build(MODEL, (11, 10, 2))
    model.compile(optimizer=Adam(learning_rate=0.01), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    n = len(model.get_weights())
    model.set_weights([arrays[f"model_w{j}"] for j in range(n)])
    hist = model.fit(arrays["Xt"], arrays["Yt"], batch_size=8, epochs=2, shuffle=False, verbose=0)
    for j, w in enumerate(model.get_weights()):
        assert_allclose(w, theirs[f"trained_w{j}"], rtol=2e-4, atol=2e-5, err_msg=f"weight {j}")
    assert_allclose(model.predict(arrays["Xt"], verbose=0), theirs["P"], rtol=2e-4, atol=2e-5)
    for key, values in history.items():
        assert_allclose(hist.history[key], values, rtol=2e-4, atol=2e-5)
