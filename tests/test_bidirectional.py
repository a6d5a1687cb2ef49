"""Bidirectional(SimpleRNN / LSTM / GRU): the engine layer against the NumPy loop-over-time
reference run both ways (float64, every merge mode, with and without return_sequences), its
gradient (parameters and inputs, through a Dense before it) against finite differences, and
the Keras layer against real Keras 3 (torch backend, in a subprocess) with copied weights:
config, outputs, and two epochs of training."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuraxis import _core
from neuraxis import layers as L
from neuraxis.models import Sequential
from neuraxis.optimizers import Adam
from neuraxis.utils import set_random_seed

from engine_checks import fd_check
import reference_rnn as rr
from real_keras import HAVE_KERAS, needs_keras  # noqa: F401

MODES = ["concat", "sum", "mul", "ave"]


def merge(a, b, mode):
    return {"concat": lambda: np.concatenate([a, b], -1), "sum": lambda: a + b,
            "mul": lambda: a * b, "ave": lambda: (a + b) / 2}[mode]()


def reference(kind, X, pf, pb, units, seq, mode, **kw):
    yf = rr.forward(kind, X, list(pf), return_sequences=seq, **kw)
    yb = rr.forward(kind, X, list(pb), return_sequences=seq, go_backwards=True, **kw)
    if seq:
        yb = yb[:, ::-1]
    return merge(yf, yb, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("kind,kw", [("simple_rnn", {}), ("lstm", {}), ("gru", {}),
                                     ("gru", {"reset_after": False})])
def test_engine_matches_the_reference_and_finite_differences(kind, kw, seq, mode):
    rng = np.random.default_rng(0)
    T, F, u, n = 4, 2, 3, 5
    spec = {"kind": "bidirectional", "layer": kind, "units": u, "return_sequences": seq,
            "merge_mode": mode, **kw}
    net = _core.Network64([T, F], [{"kind": "dense", "units": 3, "activation": "tanh"}, spec,
                                   {"kind": "flatten"}, {"kind": "dense", "units": 2}],
                          "mse", "batch_size")
    params = [rng.normal(size=s) * 0.5 for s in net.param_shapes]
    X, Y = rng.normal(size=(n, T, F)), rng.normal(size=(n, 2))
    h = np.tanh(X @ params[0] + params[1])
    k = (len(params) - 4) // 2
    y = reference(kind, h, params[2:2 + k], params[2 + k:2 + 2 * k], u, seq, mode, **kw)
    want = y.reshape(n, -1) @ params[-2] + params[-1]
    assert_allclose(net.predict(params, X)[0], want, rtol=1e-12, atol=1e-12)
    fd_check(net, params, X, Y)


def test_keras_layer_shapes_weights_and_errors():
    layer = L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="ave")
    assert layer.compute_output_shape((None, 6, 3)) == (None, 6, 4)
    layer.build((None, 6, 3))
    assert [w.shape for w in layer.get_weights()] == [(3, 16), (4, 16), (16,)] * 2
    assert layer.forward_layer.name.startswith("forward_")
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
    with pytest.raises(ValueError, match="Invalid merge mode"):
        L.Bidirectional(L.LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="keras.layers.Layer"):
        L.Bidirectional("lstm")
    with pytest.raises(NotImplementedError):
        L.Bidirectional(L.Dense(2))
    with pytest.raises(NotImplementedError):
        L.Bidirectional(L.LSTM(2), merge_mode=None)


def test_model_trains_and_round_trips(tmp_path):
    set_random_seed(0)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(256, 12, 2)).astype(np.float32)
    y = (X[:, -3:, 0].sum(1) + X[:, :3, 1].sum(1) > 0).astype(np.float32)  # both ends matter
    model = Sequential([L.Input((12, 2)), L.Bidirectional(L.GRU(12)),
                        L.Dense(1, activation="sigmoid")])
    model.compile(Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(X, y, epochs=15, batch_size=32, verbose=0)
    assert hist.history["accuracy"][-1] >= 0.9
    model.save(tmp_path / "bi.keras")
    from neuraxis.models import load_model
    loaded = load_model(tmp_path / "bi.keras")
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))


KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    L = keras.layers
    d = np.load(sys.argv[1])
    cases = json.loads(sys.argv[2])
    out, arrays = {"configs": []}, {}
    for i, (cell, kw, mode) in enumerate(cases):
        layer = L.Bidirectional(getattr(L, cell)(3, name=f"r{i}", **kw), merge_mode=mode,
                                name=f"b{i}")
        layer.build(d["X"].shape)
        layer.set_weights([d[f"c{i}_w{j}"] for j in range(len(layer.get_weights()))])
        arrays[f"c{i}"] = keras.ops.convert_to_numpy(layer(d["X"]))
        out["configs"].append(layer.get_config())
    model = keras.Sequential([keras.Input(d["X"].shape[1:]),
                              L.Bidirectional(L.LSTM(4, return_sequences=True)),
                              L.Bidirectional(L.SimpleRNN(3), merge_mode="mul"),
                              L.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.set_weights([d[f"m_w{j}"] for j in range(len(model.get_weights()))])
    h = model.fit(d["Xt"], d["yt"], batch_size=8, epochs=2, shuffle=False, verbose=0)
    out["history"] = h.history
    for j, w in enumerate(model.get_weights()):
        arrays[f"m_w{j}"] = w
    arrays["P"] = model.predict(d["Xt"], verbose=0)
    np.savez(sys.argv[3], **arrays)
    print(json.dumps(out))
""")

CASES = [("LSTM", {}, "concat"), ("GRU", {"return_sequences": True}, "sum"),
         ("SimpleRNN", {"return_sequences": True}, "mul"), ("GRU", {"reset_after": False}, "ave")]


def keras_model():
    set_random_seed(0)
    return Sequential([L.Input((5, 2)), L.Bidirectional(L.LSTM(4, return_sequences=True)),
                       L.Bidirectional(L.SimpleRNN(3), merge_mode="mul"),
                       L.Dense(1, activation="sigmoid")])


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    if not HAVE_KERAS:
        pytest.skip("keras + torch not installed")
    rng = np.random.default_rng(2)
    tmp = tmp_path_factory.mktemp("bi")
    arrays = {"X": rng.normal(size=(3, 5, 2)).astype(np.float32),
              "Xt": rng.normal(size=(32, 5, 2)).astype(np.float32),
              "yt": (rng.random((32, 1)) > 0.5).astype(np.float32)}
    for i, (cell, kw, mode) in enumerate(CASES):
        layer = L.Bidirectional(getattr(L, cell)(3, **kw), merge_mode=mode)
        layer.build(arrays["X"].shape)
        for j, w in enumerate(layer.get_weights()):
            arrays[f"c{i}_w{j}"] = rng.uniform(-0.6, 0.6, w.shape).astype(np.float32)
    for j, w in enumerate(keras_model().get_weights()):
        arrays[f"m_w{j}"] = rng.uniform(-0.5, 0.5, w.shape).astype(np.float32)
    np.savez(tmp / "in.npz", **arrays)
    out = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp / "in.npz"),
                          json.dumps(CASES), str(tmp / "out.npz")], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-2000:]
    return arrays, json.loads(out.stdout.strip().splitlines()[-1]), dict(np.load(tmp / "out.npz"))


@needs_keras
def test_outputs_and_configs_equal_keras(keras_run):
    arrays, answers, theirs = keras_run
    for i, (cell, kw, mode) in enumerate(CASES):
        layer = L.Bidirectional(getattr(L, cell)(3, name=f"r{i}", **kw), merge_mode=mode,
                                name=f"b{i}")
        layer.build(arrays["X"].shape)
        layer.set_weights([arrays[f"c{i}_w{j}"] for j in range(len(layer.get_weights()))])
        assert_allclose(layer(arrays["X"]), theirs[f"c{i}"], rtol=1e-5, atol=1e-6)
        mine = json.loads(json.dumps(layer.get_config()))
        keras_config = answers["configs"][i]
        assert list(mine) == list(keras_config)
        assert mine["merge_mode"] == keras_config["merge_mode"]
        for key in ("layer", "backward_layer"):
            assert mine[key]["class_name"] == keras_config[key]["class_name"]
            assert mine[key]["config"]["name"] == keras_config[key]["config"]["name"]
            assert mine[key]["config"]["go_backwards"] == keras_config[key]["config"]["go_backwards"]
        again = L.Bidirectional.from_config(keras_config)  # Keras's own config loads here
        assert again.merge_mode == mode and again.backward_layer.go_backwards


@needs_keras
def test_training_matches_keras(keras_run):
    arrays, answers, theirs = keras_run
    model = keras_model()
    model.compile(Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    model.set_weights([arrays[f"m_w{j}"] for j in range(len(model.get_weights()))])
    hist = model.fit(arrays["Xt"], arrays["yt"], batch_size=8, epochs=2, shuffle=False,
                     verbose=0)
    for j, w in enumerate(model.get_weights()):
        assert_allclose(w, theirs[f"m_w{j}"], rtol=2e-4, atol=2e-5, err_msg=f"weight {j}")
    assert_allclose(model.predict(arrays["Xt"], verbose=0), theirs["P"], rtol=2e-4, atol=2e-5)
    for key, values in answers["history"].items():
        assert_allclose(hist.history[key], values, rtol=2e-4, atol=2e-5)
