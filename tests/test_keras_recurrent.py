"""SimpleRNN, LSTM and GRU in the Keras front: constructor, weights, config, variable-length
inputs (`Input((None, 1))`), Keras's published LSTM values, a NumPy reference, a task that
needs memory, errors, and real Keras 3 (torch backend, in a subprocess) with copied weights:
configs key for key, layer outputs, and two epochs of training."""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuraxis import initializers, layers as L
from neuraxis.layers import GRU, LSTM, Dense, Input, SimpleRNN
from neuraxis.models import Sequential, load_model
from neuraxis.optimizers import Adam
from neuraxis.utils import set_random_seed

from real_keras import HAVE_KERAS, needs_keras  # noqa: F401


# --- a NumPy reference of Keras's cells (float64) --------------------------------------------
def _sig(z):
    return 1 / (1 + np.exp(-z))


def _relu(z):
    return np.maximum(z, 0)


def rnn_reference(kind, x, weights, activation=np.tanh, return_sequences=False,
                  go_backwards=False, reset_after=True):
    """Keras 3's SimpleRNN / LSTM / GRU forward from zero states, written from its equations."""
    x = np.asarray(x, np.float64)
    K, R = (np.asarray(w, np.float64) for w in weights[:2])
    b = np.asarray(weights[2], np.float64) if len(weights) > 2 else None
    n, T, _ = x.shape
    u = R.shape[0]
    h, c, outs = np.zeros((n, u)), np.zeros((n, u)), []
    for t in (range(T - 1, -1, -1) if go_backwards else range(T)):
        xt = x[:, t]
        if kind == "simple_rnn":
            h = activation(xt @ K + (0 if b is None else b) + h @ R)
        elif kind == "lstm":
            i, f, g, o = np.split(xt @ K + h @ R + (0 if b is None else b), 4, axis=1)
            c = _sig(f) * c + _sig(i) * activation(g)
            h = _sig(o) * activation(c)
        else:
            bi = 0 if b is None else (b[0] if reset_after else b)
            xz = xt @ K + bi
            if reset_after:
                hr = h @ R + (0 if b is None else b[1])
                z = _sig(xz[:, :u] + hr[:, :u])
                r = _sig(xz[:, u:2 * u] + hr[:, u:2 * u])
                hh = activation(xz[:, 2 * u:] + r * hr[:, 2 * u:])
            else:
                z = _sig(xz[:, :u] + h @ R[:, :u])
                r = _sig(xz[:, u:2 * u] + h @ R[:, u:2 * u])
                hh = activation(xz[:, 2 * u:] + (r * h) @ R[:, 2 * u:])
            h = z * h + (1 - z) * hh
        outs.append(h)
    return np.stack(outs, axis=1) if return_sequences else h


def _uniform_weights(layer, rng, scale=0.5):
    return [rng.uniform(-scale, scale, w.shape).astype(np.float32) for w in layer.get_weights()]


# --- constructor, weights, shapes --------------------------------------------------------------
def test_lecture_models_summary():
    lines = []
    with pytest.warns(UserWarning, match="Do not pass an `input_shape`"):
        model = Sequential()
        model.add(LSTM(50, input_shape=(None, 1)))
    model.add(Dense(1, activation="sigmoid"))
    model.summary(print_fn=lines.append)
    text = lines[0]
    assert model.input_shape == (None, None, 1)
    assert [la.output_shape for la in model.layers] == [(None, 50), (None, 1)]
    assert [la.count_params() for la in model.layers] == [10400, 51]
    assert "│ (None, 50)" in text and "10,400 │" in text and "51 │" in text
    assert " Total params: 10,451 (40.82 KB)" in text

    model = Sequential([Input((None, 1)), SimpleRNN(50), Dense(1)])
    assert [la.count_params() for la in model.layers] == [2600, 51]
    assert model.output_shape == (None, 1)
    seq = Sequential([Input((None, 3)), GRU(4, return_sequences=True), Dense(2)])
    assert [la.output_shape for la in seq.layers] == [(None, None, 4), (None, None, 2)]
    assert seq.layers[0].count_params() == 3 * (3 * 4 + 4 * 4 + 2 * 4)
    deferred = Sequential([LSTM(4)])
    deferred.build((None, None, 2))
    assert deferred.output_shape == (None, 4) and deferred.count_params() == 4 * 4 * (2 + 4 + 1)
    # a layer first called eagerly on length 5 joins a variable-length model
    layer = LSTM(3, return_sequences=True)
    assert layer(np.zeros((2, 5, 2), np.float32)).shape == (2, 5, 3)
    assert Sequential([Input((None, 2)), layer]).output_shape == (None, None, 3)


def test_weights_names_and_shapes():
    for layer, shapes in ((SimpleRNN(5), [(3, 5), (5, 5), (5,)]),
                          (SimpleRNN(5, use_bias=False), [(3, 5), (5, 5)]),
                          (LSTM(5), [(3, 20), (5, 20), (20,)]),
                          (GRU(5), [(3, 15), (5, 15), (2, 15)]),
                          (GRU(5, reset_after=False), [(3, 15), (5, 15), (15,)])):
        layer.build((None, 7, 3))
        assert [w.shape for w in layer.get_weights()] == shapes
        assert [n for n, _ in layer._weights] == ["kernel", "recurrent_kernel", "bias"][
            :len(shapes)]
        assert layer.kernel.shape == shapes[0] and layer.recurrent_kernel.shape == shapes[1]
    lstm = LSTM(50)
    lstm.build((None, None, 1))
    bias = lstm.bias
    assert bias[50:100].sum() == 50 and not bias[:50].any() and not bias[100:].any()
    off = LSTM(4, unit_forget_bias=False, bias_initializer="ones")
    off.build((None, 2, 1))
    assert (off.bias == 1).all()
    # the recurrent kernels start orthogonal (Keras's default)
    r = lstm.recurrent_kernel  # (50, 200): orthogonal rows
    assert_allclose(r @ r.T, np.eye(50), atol=1e-5)


def test_output_shapes():
    assert LSTM(7).compute_output_shape((None, 5, 3)) == (None, 7)
    assert LSTM(7, return_sequences=True).compute_output_shape((None, 5, 3)) == (None, 5, 7)
    assert GRU(2, return_sequences=True).compute_output_shape((4, None, 3)) == (4, None, 2)


def test_config_round_trip():
    layer = GRU(3, activation="relu", recurrent_activation="tanh", reset_after=False,
                return_sequences=True, go_backwards=True, seed=4, unroll=True,
                kernel_initializer=initializers.Orthogonal(gain=2.0, seed=1), name="g")
    config = layer.get_config()
    again = GRU.from_config(config)
    assert again.get_config() == config
    assert config["kernel_initializer"] == {
        "module": "keras.initializers", "class_name": "Orthogonal",
        "config": {"seed": 1, "gain": 2.0}, "registered_name": None}
    assert (config["activation"], config["recurrent_activation"]) == ("relu", "tanh")
    # in a saved model, with a variable steps axis
    model = Sequential([Input((None, 2)), LSTM(3, return_sequences=True), SimpleRNN(2)])
    restored = Sequential.from_config(model.get_config())
    assert restored.input_shape == (None, None, 2)
    assert [type(la).__name__ for la in restored.layers] == ["LSTM", "SimpleRNN"]


def test_engine_specs():
    assert SimpleRNN(4, activation="relu", go_backwards=True)._engine_spec() == {
        "kind": "simple_rnn", "units": 4, "activation": "relu", "use_bias": True,
        "return_sequences": False, "go_backwards": True, "trainable": True}
    assert LSTM(2, return_sequences=True, use_bias=False, trainable=False)._engine_spec() == {
        "kind": "lstm", "units": 2, "activation": "tanh", "recurrent_activation": "logistic",
        "use_bias": False, "return_sequences": True, "go_backwards": False, "trainable": False}
    assert GRU(2, reset_after=False)._engine_spec()["reset_after"] is False
    assert GRU(2)._engine_spec()["recurrent_activation"] == "logistic"


# --- the Orthogonal initializer --------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4), (2, 3, 5)])
def test_orthogonal(shape):
    w = initializers.get("orthogonal")(shape)
    assert w.shape == shape and w.dtype == np.float32
    m = w.reshape(-1, shape[-1]).astype(np.float64)
    small = min(m.shape)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    assert_allclose(gram, np.eye(small), atol=1e-5)
    assert_allclose(initializers.Orthogonal(gain=3.0, seed=2)(shape),
                    3 * initializers.Orthogonal(seed=2)(shape), rtol=1e-6)
    assert_allclose(initializers.Orthogonal(seed=5)(shape), initializers.Orthogonal(seed=5)(shape))
    assert not np.allclose(initializers.Orthogonal(seed=5)(shape),
                           initializers.Orthogonal(seed=6)(shape))


def test_orthogonal_names_and_errors():
    assert type(initializers.get("Orthogonal")) is initializers.Orthogonal
    init = initializers.get({"class_name": "Orthogonal", "config": {"gain": 0.5, "seed": 3}})
    assert (init.gain, init.seed) == (0.5, 3)
    assert initializers.serialize(init)["config"] == {"seed": 3, "gain": 0.5}
    with pytest.raises(ValueError, match="at least two-dimensional"):
        init((5,))


# --- Keras's golden values and the NumPy reference ---------------------------------------------
@pytest.mark.parametrize("go_backwards, expected", [
    (False, [0.6288687, 0.86899155, 0.9460773]),
    (True, [0.35622165, 0.74789524, 0.8872726])])
def test_lstm_keras_golden(go_backwards, expected):
    # keras/src/layers/rnn/lstm_test.py::test_correctness
    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    layer = LSTM(3, kernel_initializer=initializers.Constant(0.01),
                 recurrent_initializer=initializers.Constant(0.02),
                 bias_initializer=initializers.Constant(0.03), go_backwards=go_backwards)
    out = layer(sequence)
    assert_allclose(out, np.repeat(np.array(expected)[:, None], 3, axis=1), rtol=1e-5,
                    atol=1e-5)
    # unroll: same math
    layer = LSTM(3, kernel_initializer=initializers.Constant(0.01),
                 recurrent_initializer=initializers.Constant(0.02),
                 bias_initializer=initializers.Constant(0.03), go_backwards=go_backwards,
                 unroll=True)
    assert_allclose(layer(sequence), out)


REF_CASES = [
    (SimpleRNN, {}), (SimpleRNN, {"activation": "relu", "return_sequences": True}),
    (SimpleRNN, {"use_bias": False, "go_backwards": True}),
    (LSTM, {}), (LSTM, {"return_sequences": True, "go_backwards": True}),
    (LSTM, {"use_bias": False, "activation": "relu"}),
    (GRU, {}), (GRU, {"reset_after": False, "return_sequences": True}),
    (GRU, {"go_backwards": True, "return_sequences": True, "use_bias": False}),
    (GRU, {"reset_after": False, "go_backwards": True, "activation": "relu"}),
]


@pytest.mark.parametrize("cls, kw", REF_CASES,
                         ids=[f"{c.__name__}-{k}" for c, k in REF_CASES])
def test_layer_matches_numpy_reference(cls, kw):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 9, 3)).astype(np.float32)
    layer = cls(4, **kw)
    layer.build(x.shape)
    weights = _uniform_weights(layer, rng)
    layer.set_weights(weights)
    act = _relu if kw.get("activation") == "relu" else np.tanh
    expected = rnn_reference(layer._kind, x, weights, act, layer.return_sequences,
                             layer.go_backwards, kw.get("reset_after", True))
    got = layer(x)
    assert got.shape == expected.shape
    assert_allclose(got, expected, rtol=2e-5, atol=2e-6)
    # a longer sequence through the same built layer
    x2 = rng.normal(size=(2, 13, 3)).astype(np.float32)
    assert_allclose(layer(x2), rnn_reference(layer._kind, x2, weights, act,
                                             layer.return_sequences, layer.go_backwards,
                                             kw.get("reset_after", True)),
                    rtol=2e-5, atol=2e-6)


# --- variable-length inputs --------------------------------------------------------------
def test_variable_length_fit_predict_evaluate(tmp_path):
    set_random_seed(0)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = Sequential()
        model.add(LSTM(8, input_shape=(None, 1)))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    X30 = rng.normal(size=(64, 30, 1)).astype(np.float32)
    y = (X30[:, 0, 0] > 0).astype(np.float32)
    hist = model.fit(X30, y, epochs=2, batch_size=16, verbose=0,
                     validation_data=(X30[:16, :12], y[:16]))
    assert sorted(hist.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert model.input_shape == (None, None, 1)
    X50 = rng.normal(size=(5, 50, 1)).astype(np.float32)
    p = model.predict(X50, verbose=0)
    assert p.shape == (5, 1)
    lstm, dense = model.layers
    h = rnn_reference("lstm", X50, lstm.get_weights())
    expected = _sig(h @ dense.get_weights()[0].astype(np.float64) + dense.get_weights()[1])
    assert_allclose(p, expected, rtol=1e-4, atol=1e-6)
    assert_allclose(model.predict(X30[:5], verbose=0), model.predict_on_batch(X30[:5]))
    loss, acc = model.evaluate(X50, np.ones(5), verbose=0)
    assert_allclose(loss, -np.log(np.clip(expected, 1e-7, 1)).mean(), rtol=1e-4)
    # the saved model keeps the variable steps axis
    model.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    assert again.input_shape == (None, None, 1)
    assert_allclose(again.predict(X50, verbose=0), p)


def test_variable_length_sequences_out():
    rng = np.random.default_rng(1)
    model = Sequential([Input((None, 2)), GRU(3, return_sequences=True, go_backwards=True),
                        Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    for T in (4, 7):
        X = rng.normal(size=(6, T, 2)).astype(np.float32)
        model.fit(X, rng.integers(0, 2, (6, T)), epochs=1, verbose=0)
        assert model.predict(X, verbose=0).shape == (6, T, 2)
    model.train_on_batch(X[:, :5], rng.integers(0, 2, (6, 5)))
    model.test_on_batch(X[:, :3], rng.integers(0, 2, (6, 3)))
    # Dense straight on a variable-length sequence works over the last axis
    dense = Sequential([Input((None, 2)), Dense(3)])
    out = dense.predict(X, verbose=0)
    k, b = dense.layers[0].get_weights()
    assert_allclose(out, X @ k + b, rtol=1e-5, atol=1e-6)


def test_variable_length_refused_where_it_cannot_work():
    # (None,): variable-length ids for an Embedding; a Dense on it has no known last axis
    with pytest.raises(ValueError, match="known last input dimension"):
        Sequential([Input((None,)), Dense(3)])
    with pytest.raises(ValueError, match="only the steps axis"):
        Input((5, None))
    with pytest.raises(ValueError, match="only the steps axis"):
        Input((None, None, 3))
    with pytest.raises(ValueError, match="known last input dimension"):
        Sequential([Input((None, 2)), L.Flatten(), Dense(3)])
    with pytest.raises(ValueError, match="known shape"):
        Sequential([Input((None, 2)), L.Reshape((-1,))])
    model = Sequential([Input((None, 2)), LSTM(3)])
    with pytest.raises(ValueError,
                       match=r"expected shape=\(None, None, 2\), found shape=\(4, 5, 3\)"):
        model.predict(np.zeros((4, 5, 3)), verbose=0)
    with pytest.raises(ValueError, match=r"expected shape=\(None, None, 2\)"):
        model.predict(np.zeros((4, 0, 2)), verbose=0)


# --- learning with memory ----------------------------------------------------------------------
def _memory_task(rng, n, steps=30):
    # the label is the majority sign of the first 5 steps (each ±1); noise follows
    X = (0.5 * rng.normal(size=(n, steps, 1))).astype(np.float32)
    X[:, :5, 0] = rng.choice([-1.0, 1.0], size=(n, 5))
    return X, (X[:, :5, 0].sum(axis=1) > 0).astype(np.float32)


def test_lstm_learns_a_task_that_needs_memory():
    set_random_seed(1)
    rng = np.random.default_rng(1)
    X, y = _memory_task(rng, 1000)
    Xt, yt = _memory_task(rng, 500)
    model = Sequential([Input((None, 1)), LSTM(32), Dense(1, activation="sigmoid")])
    model.compile(Adam(0.002), "binary_crossentropy", metrics=["accuracy"])
    model.fit(X, y, epochs=6, batch_size=16, verbose=0)
    assert model.evaluate(Xt, yt, verbose=0)[1] >= 0.9
    # the same length is not needed
    Xl, yl = _memory_task(rng, 500, steps=40)
    assert model.evaluate(Xl, yl, verbose=0)[1] >= 0.85
    # without memory (the last step only) nothing can be learned
    last = Sequential([Input((1,)), Dense(16, activation="relu"), Dense(1, activation="sigmoid")])
    last.compile(Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    last.fit(X[:, -1], y, epochs=6, batch_size=16, verbose=0)
    assert last.evaluate(Xt[:, -1], yt, verbose=0)[1] < 0.6


# --- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{"return_state": True}, {"stateful": True},
                                {"recurrent_constraint": "nonneg"},
                                {"activity_regularizer": "l1"}])
@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_unsupported_options(cls, kw):
    with pytest.raises(NotImplementedError):
        cls(3, **kw)


def test_gru_recurrent_dropout_with_reset_before_reaches_the_engine():
    layer = GRU(3, recurrent_dropout=0.2, reset_after=False)
    assert layer.get_config()["recurrent_dropout"] == 0.2
    assert layer._engine_spec()["recurrent_dropout"] == 0.2
    assert "recurrent_dropout" not in GRU(3, dropout=0.2, recurrent_dropout=1.0)._engine_spec()


@pytest.mark.parametrize("cls,kw", [(SimpleRNN, {"dropout": 0.3, "recurrent_dropout": 0.4}),
                                    (LSTM, {"dropout": 0.3, "recurrent_dropout": 0.4}),
                                    (GRU, {"dropout": 0.5}),
                                    (GRU, {"dropout": 0.3, "recurrent_dropout": 0.3}),
                                    (GRU, {"dropout": 0.3, "recurrent_dropout": 0.3,
                                           "reset_after": False})])
def test_dropout_is_training_only_one_mask_per_sequence(cls, kw):
    # inference ignores dropout; training masks each sequence's inputs (and h_{t-1}) with
    # one mask for all its steps: a feature dropped for a row is dropped at every step
    rng = np.random.default_rng(3)
    layer = cls(4, **kw)
    plain = cls(4, **{k: v for k, v in kw.items() if "dropout" not in k})
    x = rng.normal(size=(64, 6, 3)).astype(np.float32)
    layer.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(layer.get_weights())
    np.testing.assert_array_equal(layer(x), plain(x))
    trained = layer(x, training=True)
    assert not np.allclose(trained, plain(x))
    # dropping a whole input feature of a row for every step = zeroing it: find rows where
    # the training output equals the plain output on an input with that feature zeroed
    matches = 0
    for f in range(3):
        xz = x.copy()
        xz[:, :, f] = 0
        scale = 1.0 / (1.0 - kw["dropout"])
        if "recurrent_dropout" in kw:
            continue  # h_{t-1} masked too: no closed form here (the engine test covers it)
        others = [g for g in range(3) if g != f]
        xs = xz.copy()
        xs[:, :, others] *= scale
        matches += int(np.isclose(layer(x, training=True), plain(xs), atol=1e-5).all(1).sum())
    if "recurrent_dropout" not in kw:
        assert matches > 0


def test_lstm_with_dropout_trains():
    set_random_seed(0)  # its own initial weights, whatever ran before it
    rng = np.random.default_rng(4)
    X = rng.normal(size=(256, 12, 2)).astype(np.float32)
    y = (X[:, :3, 0].sum(1) > 0).astype(np.float32)
    model = Sequential([Input((12, 2)), LSTM(16, dropout=0.2, recurrent_dropout=0.2),
                        Dense(1, activation="sigmoid")])
    model.compile(Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(X, y, epochs=12, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.7 * hist.history["loss"][0]
    assert model.evaluate(X, y, verbose=0)[1] >= 0.85


def test_errors():
    for cls in (SimpleRNN, LSTM, GRU):
        with pytest.raises(ValueError, match="Received an invalid value for argument `units`"):
            cls(0)
        with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
            cls(2, bogus=1)
        with pytest.raises(ValueError, match="expected ndim=3, found ndim=2"):
            Sequential([Input((5,)), cls(3)])
        with pytest.raises(ValueError, match="expected ndim=3, found ndim=4"):
            cls(3)(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="use_cudnn"):
        LSTM(2, use_cudnn="yes")
    with pytest.raises(ValueError, match="Could not interpret activation"):
        GRU(2, recurrent_activation="nope")
    # dropout 0 and implementation= (Keras pops it) are fine
    LSTM(2, dropout=0.0, implementation=1, use_cudnn=False)
    layer = LSTM(3)
    layer.build((None, 4, 2))
    with pytest.raises(ValueError, match="incompatible"):
        layer(np.zeros((1, 4, 3), np.float32))


# --- against real Keras ------------------------------------------------------------------------
KERAS_LAYER_CASES = [
    ("SimpleRNN", [5], {}),
    ("SimpleRNN", [4], {"activation": "relu", "return_sequences": True, "go_backwards": True}),
    ("SimpleRNN", [3], {"use_bias": False, "go_backwards": True}),
    ("LSTM", [5], {}),
    ("LSTM", [3], {"return_sequences": True, "go_backwards": True}),
    ("LSTM", [4], {"activation": "relu", "use_bias": False, "return_sequences": True}),
    ("GRU", [5], {}),
    ("GRU", [4], {"reset_after": False}),
    ("GRU", [3], {"return_sequences": True, "go_backwards": True}),
    ("GRU", [4], {"reset_after": False, "go_backwards": True, "return_sequences": True,
                  "activation": "relu"}),
    ("GRU", [3], {"use_bias": False}),
]
KERAS_CONFIG_CASES = KERAS_LAYER_CASES + [
    ("LSTM", [2], {"unit_forget_bias": False, "recurrent_activation": "tanh", "seed": 3,
                   "unroll": True, "trainable": False}),
    ("GRU", [2], {"seed": 7, "kernel_initializer": "orthogonal",
                  "recurrent_initializer": "glorot_uniform", "bias_initializer": "ones"}),
    ("SimpleRNN", [2], {"seed": 1, "activation": "sigmoid", "recurrent_initializer": {
        "class_name": "Orthogonal", "config": {"gain": 2.0, "seed": 3}}}),
]
# (input shape, layers, loss, output activation, length to predict on)
KERAS_MODELS = [
    ((9, 3), [("LSTM", [6], {"return_sequences": True}), ("GRU", [4], {"go_backwards": True}),
              ("Dense", [1], {"activation": "sigmoid"})], "binary_crossentropy", 9),
    ((None, 2), [("SimpleRNN", [5], {"return_sequences": True}),
                 ("GRU", [3], {"reset_after": False}), ("Dense", [2], {})], "mse", 11),
    ((9, 3), [("LSTM", [5], {"return_sequences": True, "go_backwards": True}),
              ("Dense", [1], {})], "mse", 9),
]

KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    d = np.load(sys.argv[1])
    layer_cases, config_cases, models = json.loads(sys.argv[2])
    out, configs = {}, []
    for i, (cls, args, kw) in enumerate(layer_cases):
        layer = getattr(keras.layers, cls)(*args, **kw)
        layer.build(d["X"].shape)
        layer.set_weights([d[f"case{i}_w{j}"] for j in range(len(layer.weights))])
        out[f"case{i}"] = keras.ops.convert_to_numpy(layer(d["X"]))
    for i, (cls, args, kw) in enumerate(config_cases):
        if "recurrent_initializer" in kw and isinstance(kw["recurrent_initializer"], dict):
            kw = dict(kw, recurrent_initializer=keras.initializers.get(
                kw["recurrent_initializer"]))
        configs.append(getattr(keras.layers, cls)(*args, name=f"r{i}", **kw).get_config())
    histories = []
    for m, (shape, spec, loss, predict_len) in enumerate(models):
        model = keras.Sequential([keras.Input(tuple(shape))] +
                                 [getattr(keras.layers, c)(*a, **k) for c, a, k in spec])
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss=loss)
        model.set_weights([d[f"m{m}_w{j}"] for j in range(len(model.weights))])
        h = model.fit(d[f"m{m}_X"], d[f"m{m}_Y"], batch_size=8, epochs=2, shuffle=False,
                      verbose=0)
        histories.append(h.history)
        for j, w in enumerate(model.get_weights()):
            out[f"m{m}_trained_w{j}"] = w
        out[f"m{m}_P"] = model.predict(d[f"m{m}_Xp"], verbose=0)
    np.savez(sys.argv[3], **out)
    print(json.dumps([configs, histories]))
""")


def _model(shape, spec):
    set_random_seed(0)
    return Sequential([Input(shape)] + [getattr(L, c)(*a, **k) for c, a, k in spec])


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    if not HAVE_KERAS:
        pytest.skip("keras + torch not installed")
    rng = np.random.default_rng(21)
    tmp = tmp_path_factory.mktemp("rnn")
    arrays = {"X": rng.normal(size=(3, 7, 4)).astype(np.float32)}
    for i, (cls, args, kw) in enumerate(KERAS_LAYER_CASES):
        layer = getattr(L, cls)(*args, **kw)
        layer.build(arrays["X"].shape)
        for j, w in enumerate(_uniform_weights(layer, rng)):
            arrays[f"case{i}_w{j}"] = w
    for m, (shape, spec, loss, predict_len) in enumerate(KERAS_MODELS):
        T, F = 8 if shape[0] is None else shape[0], shape[1]
        arrays[f"m{m}_X"] = rng.normal(size=(32, T, F)).astype(np.float32)
        arrays[f"m{m}_Xp"] = rng.normal(size=(6, predict_len, F)).astype(np.float32)
        model = _model(shape, spec)
        k = model.output_shape[1:]
        arrays[f"m{m}_Y"] = (rng.integers(0, 2, (32,) + k) if loss == "binary_crossentropy"
                             else rng.normal(size=(32,) + k)).astype(np.float32)
        for j, w in enumerate(_uniform_weights(model, rng, 0.4)):
            arrays[f"m{m}_w{j}"] = w
    np.savez(tmp / "in.npz", **arrays)
    out = subprocess.run(
        [sys.executable, "-c", KERAS_SCRIPT, str(tmp / "in.npz"),
         json.dumps([KERAS_LAYER_CASES, KERAS_CONFIG_CASES, KERAS_MODELS]), str(tmp / "out.npz")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-3000:]
    configs, histories = json.loads(out.stdout.strip().splitlines()[-1])
    return arrays, configs, histories, dict(np.load(tmp / "out.npz"))


@needs_keras
@pytest.mark.parametrize("i", range(len(KERAS_CONFIG_CASES)),
                         ids=[f"{c}-{k}" for c, a, k in KERAS_CONFIG_CASES])
def test_config_equals_keras(keras_run, i):
    _, configs, _, _ = keras_run
    cls, args, kw = KERAS_CONFIG_CASES[i]
    ours = getattr(L, cls)(*args, name=f"r{i}", **kw).get_config()
    theirs = configs[i]
    assert list(ours) == list(theirs)
    assert json.loads(json.dumps(ours)) == theirs
    # and Keras's config builds the same layer here
    assert getattr(L, cls).from_config(dict(theirs)).get_config() == ours


@needs_keras
@pytest.mark.parametrize("i", range(len(KERAS_LAYER_CASES)),
                         ids=[f"{c}-{a}-{k}" for c, a, k in KERAS_LAYER_CASES])
def test_layer_output_equals_keras(keras_run, i):
    arrays, _, _, theirs = keras_run
    cls, args, kw = KERAS_LAYER_CASES[i]
    layer = getattr(L, cls)(*args, **kw)
    layer.build(arrays["X"].shape)
    layer.set_weights([arrays[f"case{i}_w{j}"] for j in range(len(layer.get_weights()))])
    got = layer(arrays["X"])
    assert got.shape == theirs[f"case{i}"].shape
    assert_allclose(got, theirs[f"case{i}"], rtol=1e-5, atol=1e-6)


@needs_keras
@pytest.mark.parametrize("m", range(len(KERAS_MODELS)),
                         ids=[f"{m[0]}-{m[2]}" for m in KERAS_MODELS])
def test_training_matches_keras(keras_run, m):
    arrays, _, histories, theirs = keras_run
    shape, spec, loss, _ = KERAS_MODELS[m]
    model = _model(shape, spec)
    model.compile(optimizer=Adam(learning_rate=0.01), loss=loss)
    n = len(model.get_weights())
    model.set_weights([arrays[f"m{m}_w{j}"] for j in range(n)])
    h = model.fit(arrays[f"m{m}_X"], arrays[f"m{m}_Y"], batch_size=8, epochs=2, shuffle=False,
                  verbose=0)
    assert_allclose(h.history["loss"], histories[m]["loss"], rtol=2e-4)
    for j, w in enumerate(model.get_weights()):
        assert_allclose(w, theirs[f"m{m}_trained_w{j}"], rtol=2e-4, atol=2e-5,
                        err_msg=f"weight {j}")
    assert_allclose(model.predict(arrays[f"m{m}_Xp"], verbose=0), theirs[f"m{m}_P"],
                    rtol=2e-4, atol=2e-5)


def test_docstring_examples():
    import doctest

    import neuraxis.layers.recurrent as module
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
