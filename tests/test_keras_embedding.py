"""Embedding and TimeDistributed(Dense): the engine layer against NumPy (`E[ids]`, the
scatter-added table gradient) and central differences, float32 vs float64, one vs two
threads; the Keras layers' arguments, configs, errors and id checks; a text-like model
that must learn; save/load and variable lengths; and real Keras 3 (torch backend, in a
subprocess): configs key for key, eager outputs with copied weights and two epochs of
training of Embedding -> LSTM -> Dense and LSTM -> TimeDistributed(Dense)."""
import json
import os
import subprocess
import sys
import textwrap
import warnings
import zlib

import numpy as np
import pytest
from numpy.testing import assert_allclose

import neuraxis
from neuraxis import _core
from neuraxis import layers as L
from neuraxis.models import Sequential, load_model
from neuraxis.optimizers import Adam
from neuraxis.utils import set_random_seed

import reference as ref
from engine_checks import engine_grads, fd_check
from real_keras import HAVE_KERAS, needs_keras  # noqa: F401


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


@pytest.fixture
def restore_threads():
    n = neuraxis.get_num_threads()
    yield
    neuraxis.set_num_threads(n)


def emb(input_dim, output_dim, **kw):
    return {"kind": "embedding", "input_dim": input_dim, "output_dim": output_dim, **kw}


def dense(units, activation="identity"):
    return {"kind": "dense", "units": units, "activation": activation}


# ---- the engine layer --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(5,), (2, 3)])
def test_engine_forward_is_a_row_gather(dtype, shape, rng):
    cls = _core.Network64 if dtype == np.float64 else _core.Network32
    net = cls(list(shape), [emb(7, 4)], "mse", "batch_size")
    assert [tuple(s) for s in net.param_shapes] == [(7, 4)]
    assert tuple(net.output_shape) == shape + (4,)
    E = rng.normal(size=(7, 4)).astype(dtype)
    ids = rng.integers(0, 7, size=(9,) + shape)
    ids[0].flat[0], ids[-1].flat[-1] = 0, 6  # both ends of the table
    out, nonfinite = net.predict([E], ids.astype(dtype))
    assert not nonfinite
    assert out.dtype == dtype
    assert_allclose(out, E[ids], rtol=0, atol=0)


def test_engine_gradient_against_finite_differences(rng):
    """Embedding -> Flatten -> Dense(tanh): ids 0..3 of a table of 7, so ids repeat in every
    sample and across the batch (their rows must add up) and rows 4..6 get exactly zero."""
    net = _core.Network64([6], [emb(7, 3), {"kind": "flatten"}, dense(2, "tanh")], "mse",
                          "batch_size")
    params = [rng.normal(size=s) * 0.5 for s in net.param_shapes]
    X = rng.integers(0, 4, size=(5, 6)).astype(np.float64)
    Y = rng.normal(size=(5, 2))
    grads = fd_check(net, params, X, Y)
    assert np.all(grads[0][4:] == 0.0)
    assert np.all(np.abs(grads[0][:4]).sum(axis=1) > 0)


def test_engine_table_gradient_equals_numpy_scatter_add(rng):
    """Embedding -> GlobalAveragePooling1D -> Dense: the table gradient by np.add.at, the
    loss Keras's mean squared error (mean over outputs, then over the batch)."""
    n, T, V, D, k = 6, 5, 9, 4, 3
    net = _core.Network64([T], [emb(V, D), {"kind": "global_avg_pool"}, dense(k)], "mse",
                          "batch_size")
    E, W, b = rng.normal(size=(V, D)), rng.normal(size=(D, k)), rng.normal(size=k)
    ids = rng.integers(0, V - 2, size=(n, T))  # the last two rows unused
    ids[:, :2] = 3  # one id repeated inside every sample
    Y = rng.normal(size=(n, k))
    pooled = E[ids].mean(axis=1)
    P = pooled @ W + b
    loss = np.mean(np.mean((P - Y) ** 2, axis=1))
    dP = 2 * (P - Y) / (n * k)
    dpooled = dP @ W.T
    dE = np.zeros_like(E)
    np.add.at(dE, ids, np.repeat(dpooled[:, None, :] / T, T, axis=1))
    got_loss, grads = engine_grads(net, [E, W, b], ids.astype(np.float64), Y)
    assert got_loss == pytest.approx(loss, rel=1e-12)
    assert_allclose(grads[0], dE, rtol=1e-11, atol=1e-14)
    assert_allclose(grads[1], pooled.T @ dP, rtol=1e-11, atol=1e-14)
    assert np.all(grads[0][V - 2:] == 0.0)


# 64 rows of 20 ids x 16 dims: enough work per row that a batch gets two threads
TRAIN_NET = [emb(50, 16), {"kind": "flatten"}, dense(3, "tanh")]


@pytest.mark.parametrize("nt", [1, 2])
def test_one_sgd_step_is_the_loss_gradient_step(nt, rng, restore_threads):
    """Training takes the table gradient by slices of rows (param_grad), loss_grad by rows
    (backward): both must be the same sums."""
    neuraxis.set_num_threads(nt)
    n, lr = 64, 0.1
    net = _core.Network64([20], TRAIN_NET, "mse", "batch_size")
    params = [rng.normal(size=s) * 0.3 for s in net.param_shapes]
    X = rng.integers(0, 30, size=(n, 20)).astype(np.float64)
    Y = rng.normal(size=(n, 3))
    _, grads = engine_grads(net, params, X, Y)
    expect = [p - lr * g for p, g in zip(params, grads)]
    opt = _core.OptConfig()
    opt.kind, opt.learning_rate, opt.momentum = "sgd", lr, 0.0
    net.train_batches(params, opt, [np.zeros_like(p) for p in params], [], X, Y, None, None, n,
                      0, 1, [], 0)
    for p, e in zip(params, expect):
        assert_allclose(p, e, rtol=1e-11, atol=1e-13)
    assert_allclose(params[0][30:], expect[0][30:], rtol=0, atol=0)  # unused rows unchanged


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_trains_the_same_on_one_and_two_threads(dtype, rng, restore_threads):
    cls = _core.Network64 if dtype == np.float64 else _core.Network32
    net = cls([20], TRAIN_NET, "mse", "batch_size")
    params = [(rng.normal(size=s) * 0.3).astype(dtype) for s in net.param_shapes]
    X = rng.integers(0, 50, size=(128, 20)).astype(dtype)
    Y = rng.normal(size=(128, 3)).astype(dtype)
    out = []
    for nt in (1, 2):
        neuraxis.set_num_threads(nt)
        ps = [p.copy() for p in params]
        m, v = [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
        tot = net.train_batches(ps, _core.OptConfig(), m, v, X, Y, None, None, 64, 0, -1, [], 0)
        out.append((ps, tot["loss_sum"]))
    (a, la), (b, lb) = out
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6)
    assert la == pytest.approx(lb, rel=tol["rtol"])
    for x, y, p in zip(a, b, params):
        assert not np.array_equal(x, p)
        assert_allclose(x, y, **tol)


def test_float32_matches_float64(rng):
    n64 = _core.Network64([6], [emb(7, 3), {"kind": "flatten"}, dense(2, "tanh")], "mse",
                          "batch_size")
    n32 = _core.Network32([6], [emb(7, 3), {"kind": "flatten"}, dense(2, "tanh")], "mse",
                          "batch_size")
    params = [rng.normal(size=s) * 0.5 for s in n64.param_shapes]
    X = rng.integers(0, 7, size=(8, 6)).astype(np.float64)
    Y = rng.normal(size=(8, 2))
    l64, g64 = engine_grads(n64, params, X, Y)
    l32, g32 = engine_grads(n32, [p.astype(np.float32) for p in params],
                            X.astype(np.float32), Y.astype(np.float32))
    assert l32 == pytest.approx(l64, rel=1e-5)
    for a, b in zip(g32, g64):
        assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_layer_below_gets_no_gradient_and_odd_ids_stay_in_the_table(rng):
    """Dense -> Embedding: the Dense's outputs are arbitrary values (negative, fractional,
    huge, NaN-free here); the engine clamps them into the table instead of reading outside it
    or throwing inside its parallel region, and the Dense gets a zero gradient."""
    net = _core.Network64([3], [dense(4), emb(5, 2), {"kind": "flatten"}, dense(1)], "mse",
                          "batch_size")
    params = [rng.normal(size=s) * 10 for s in net.param_shapes]
    X, Y = rng.normal(size=(7, 3)), rng.normal(size=(7, 1))
    loss, grads = engine_grads(net, params, X, Y)
    assert np.isfinite(loss)
    assert np.all(grads[0] == 0) and np.all(grads[1] == 0)
    assert np.all(np.isfinite(grads[2]))
    z = X @ params[0] + params[1]
    rows = np.clip(np.trunc(z), 0, 4).astype(int)  # truncate as a cast, clamp as JAX's take
    h = params[2][rows].reshape(7, -1)
    out, _ = net.predict(params, X)
    assert_allclose(out, h @ params[3] + params[4], rtol=1e-12)


@pytest.mark.parametrize("spec, match", [(emb(0, 3), "input_dim"), (emb(3, 0), "output_dim")])
def test_engine_refuses_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        _core.Network32([4], [spec], "mse", "batch_size")


# ---- the Keras layers --------------------------------------------------------------------

def test_embedding_arguments_and_config():
    layer = L.Embedding(10, 4, name="e")
    assert layer.embeddings_initializer.get_config() == {"minval": -0.05, "maxval": 0.05,
                                                         "seed": None}
    layer.build((None, 3))
    E = layer.embeddings
    assert E.shape == (10, 4) and E.dtype == np.float32
    assert -0.05 <= E.min() and E.max() <= 0.05 and E.std() > 0.01
    assert layer.output_shape == (None, 3, 4) and layer.count_params() == 40
    config = layer.get_config()
    assert list(config) == ["name", "trainable", "dtype", "input_dim", "output_dim",
                            "embeddings_initializer", "embeddings_regularizer",
                            "activity_regularizer", "embeddings_constraint", "mask_zero",
                            "quantization_config"]
    assert config["mask_zero"] is False
    assert config["embeddings_initializer"]["class_name"] == "RandomUniform"
    assert L.Embedding.from_config(config).get_config() == config
    assert L.deserialize(L.serialize(layer)).get_config() == config
    assert layer._engine_spec() == {"kind": "embedding", "input_dim": 10, "output_dim": 4,
                                    "trainable": True}


def test_embedding_weights_argument_and_eager_call():
    table = np.arange(12, dtype=np.float64).reshape(4, 3)
    for weights in (table, [table]):
        layer = L.Embedding(4, 3, weights=weights)
        assert_allclose(layer.get_weights()[0], table)
        ids = np.array([[[3, 0], [1, 1]], [[2, 3], [0, 0]]])  # (2, 2, 2): ids of rank 2
        assert_allclose(layer(ids), table[ids])
        # the given table survives the model's build
        model = Sequential([L.Input((5,)), L.Embedding(4, 3, weights=weights)])
        assert_allclose(model.get_weights()[0], table)
    with pytest.raises(ValueError, match="shape"):
        L.Embedding(4, 3, weights=[np.zeros((3, 3))])


def test_embedding_argument_errors():
    with pytest.raises(ValueError, match=r"`input_dim` must be a positive integer. "
                                         r"Received: input_dim=0 \(of type int\)"):
        L.Embedding(0, 3)
    with pytest.raises(ValueError, match="`output_dim` must be a positive integer"):
        L.Embedding(3, 2.0)
    assert L.Embedding(3, 2, mask_zero=True).get_config()["mask_zero"] is True
    for kw in ({"embeddings_constraint": "non_neg"}, {"lora_rank": 2}):
        with pytest.raises(NotImplementedError):
            L.Embedding(3, 2, **kw)
    with pytest.warns(UserWarning, match="`input_length` is deprecated"):
        L.Embedding(3, 2, input_length=5)


def test_input_shape_argument_starts_the_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Sequential([L.Embedding(10, 4, input_shape=(6,)), L.Flatten(), L.Dense(2)])
    assert model.input_shape == (None, 6)
    assert model.output_shape == (None, 2)
    assert model.count_params() == 40 + 24 * 2 + 2
    # Keras 3 ignores input_length (a warning): the model builds on its first data
    with pytest.warns(UserWarning, match="input_length"):
        model = Sequential([L.Embedding(10, 4, input_length=6), L.Flatten(), L.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.zeros((4, 6)), np.zeros((4, 2)), verbose=0)
    assert model.input_shape == (None, 6) and model.count_params() == 40 + 24 * 2 + 2


@pytest.mark.parametrize("bad, match", [
    (10, r"indices\[1,2\] = 10 is not in \[0, 10\)"),
    (-1, r"indices\[1,2\] = -1 is not in \[0, 10\)"),
    (2.5, r"ids must be integers in \[0, 10\), got indices\[1,2\] = 2.5"),
    (np.nan, r"ids must be integers"),
])
def test_bad_ids_are_refused_before_the_engine(bad, match):
    model = Sequential([L.Input((4,)), L.Embedding(10, 3), L.GlobalAveragePooling1D(),
                        L.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    X = np.ones((3, 4))
    X[1, 2] = bad
    y = np.zeros(3)
    before = model.get_weights()
    for call in (lambda: model.predict(X, verbose=0), lambda: model.fit(X, y, verbose=0),
                 lambda: model.evaluate(X, y, verbose=0), lambda: model.train_on_batch(X, y),
                 lambda: model.fit(np.ones((3, 4)), y, validation_data=(X, y), verbose=0),
                 lambda: model.layers[0](X)):
        with pytest.raises(ValueError, match=match):
            call()
    for a, b in zip(model.get_weights(), before):
        assert_allclose(a, b)


def test_integer_input_dtype_is_accepted():
    model = Sequential([L.Input((3,), dtype="int32"), L.Embedding(5, 2)])
    ids = np.array([[4, 0, 2]], dtype=np.int32)
    assert_allclose(model.predict(ids, verbose=0), model.get_weights()[0][ids])


def test_time_distributed_dense():
    inner = L.Dense(3, activation="relu", name="inner")
    layer = L.TimeDistributed(inner, name="td")
    layer.build((None, 5, 4))
    assert layer.output_shape == (None, 5, 3)
    assert inner._build_shape == (None, 4)
    assert [w.shape for w in layer.get_weights()] == [(4, 3), (3,)]
    assert layer.count_params() == 15
    assert layer.weights[0] is inner.kernel  # the inner layer's arrays themselves
    rng = np.random.default_rng(0)
    k, b = rng.normal(size=(4, 3)), rng.normal(size=3)
    layer.set_weights([k, b])
    x = rng.normal(size=(2, 5, 4)).astype(np.float32)
    assert_allclose(layer(x), np.maximum(x @ k + b, 0), rtol=1e-5, atol=1e-6)
    config = layer.get_config()
    assert list(config) == ["name", "trainable", "dtype", "layer"]
    assert config["layer"]["class_name"] == "Dense"
    assert config["layer"]["build_config"] == {"input_shape": [None, 4]}
    again = L.TimeDistributed.from_config(config)
    assert again.get_config()["layer"]["config"] == config["layer"]["config"]
    assert again._engine_spec() == inner._engine_spec()
    assert L.TimeDistributed(L.Dense(2), trainable=False)._engine_spec()["trainable"] is False


def test_time_distributed_errors():
    with pytest.raises(ValueError, match="Please initialize `TimeDistributed` layer with a "
                                         "`keras.layers.Layer` instance. Received: 3"):
        L.TimeDistributed(3)
    with pytest.raises(NotImplementedError, match=r"TimeDistributed\(LSTM\).*must be a Dense"):
        L.TimeDistributed(L.LSTM(2))
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        L.TimeDistributed(L.Dense(2)).build((None, 4))
    built = L.Dense(2)
    built.build((None, 3))
    with pytest.raises(ValueError, match="incompatible with its inner layer"):
        L.TimeDistributed(built).build((None, 5, 4))


def test_summary_shows_keras_rows(capsys):
    model = Sequential([L.Input((None,)), L.Embedding(10, 4, name="embedding"),
                        L.LSTM(3, return_sequences=True, name="lstm"),
                        L.TimeDistributed(L.Dense(1), name="time_distributed")])
    model.summary()
    out = capsys.readouterr().out
    # Keras 3.15's table for the same model (line_length 79, torch backend)
    assert "│ embedding (Embedding)           │ (None, None, 4)        │            40 │" in out
    assert "│ time_distributed                │ (None, None, 1)        │             4 │" in out
    assert "│ (TimeDistributed)               │                        │               │" in out
    assert "Total params: 140 (560.00 B)" in out


# ---- models ------------------------------------------------------------------------------

def text_data(rng, n, T=20, vocab=20, target=7):
    """Sequences of ids with and without `target`, half each; label: does it appear?"""
    X = rng.integers(0, vocab - 1, size=(n, T))
    X[X >= target] += 1  # no target anywhere yet
    y = np.zeros(n)
    pos = rng.permutation(n)[: n // 2]
    X[pos, rng.integers(0, T, size=len(pos))] = target
    y[pos] = 1
    return X, y


def text_model(input_shape=(20,)):
    return Sequential([L.Input(input_shape), L.Embedding(20, 8), L.LSTM(16),
                       L.Dense(1, activation="sigmoid")])


def test_text_model_learns_whether_an_id_appears(tmp_path):
    rng = np.random.default_rng(0)
    X, y = text_data(rng, 1024)
    Xt, yt = text_data(rng, 256)
    set_random_seed(1)
    model = text_model()
    model.compile(optimizer=Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(X, y, batch_size=32, epochs=12, verbose=0)
    _, acc = model.evaluate(Xt, yt, verbose=0)
    assert acc >= 0.9
    # save -> load: the same predictions
    path = tmp_path / "text.keras"
    model.save(path)
    again = load_model(path)
    assert [type(la).__name__ for la in again.layers] == ["Embedding", "LSTM", "Dense"]
    assert_allclose(again.predict(Xt, verbose=0), model.predict(Xt, verbose=0), rtol=0, atol=0)
    again.fit(X[:64], y[:64], epochs=1, verbose=0)  # and it trains on


def test_variable_length_ids_between_fit_and_predict():
    rng = np.random.default_rng(3)
    set_random_seed(2)
    model = text_model((None,))
    assert model.input_shape == (None, None)
    assert model.layers[0].output_shape == (None, None, 8)
    model.compile(optimizer=Adam(0.01), loss="binary_crossentropy")
    X, y = text_data(rng, 128)
    model.fit(X, y, batch_size=32, epochs=1, verbose=0)
    X2, y2 = text_data(rng, 64, T=11)
    model.fit(X2, y2, batch_size=32, epochs=1, verbose=0)  # another length, same weights
    for T in (5, 30):
        Xp, _ = text_data(rng, 9, T=T)
        fixed = text_model((T,))
        fixed.set_weights(model.get_weights())
        assert_allclose(model.predict(Xp, verbose=0), fixed.predict(Xp, verbose=0),
                        rtol=1e-6, atol=1e-7)
    # the ids of every length are checked
    bad = np.full((2, 7), 20)
    with pytest.raises(ValueError, match=r"is not in \[0, 20\)"):
        model.predict(bad, verbose=0)
    restored = Sequential.from_config(model.get_config())
    assert restored.input_shape == (None, None)


def test_lstm_time_distributed_sequence_model_trains():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(64, 10, 2)).astype(np.float32)
    y = np.cumsum(X[..., :1], axis=1) * 0.3  # a running sum: needs memory
    set_random_seed(3)
    model = Sequential([L.Input((None, 2)), L.LSTM(16, return_sequences=True),
                        L.TimeDistributed(L.Dense(1))])
    model.compile(optimizer=Adam(0.02), loss="mse")
    h = model.fit(X, y, batch_size=16, epochs=30, verbose=0).history["loss"]
    assert h[-1] < 0.2 * h[0]
    assert model.predict(X[:, :4], verbose=0).shape == (64, 4, 1)


# ---- real Keras --------------------------------------------------------------------------

CONFIG_CASES = [
    ("Embedding", [10, 4], {}),
    ("Embedding", [7, 3], {"embeddings_initializer": "glorot_uniform", "trainable": False}),
]

KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    d = np.load(sys.argv[1])
    config_cases = json.loads(sys.argv[2])
    out, res = {}, {"configs": []}
    for i, (cls, args, kw) in enumerate(config_cases):
        res["configs"].append(getattr(keras.layers, cls)(*args, name=f"c{i}", **kw).get_config())
    td = keras.layers.TimeDistributed(keras.layers.Dense(3, activation="relu", name="inner"),
                                      name="td")
    td.build((None, 5, 6))
    res["td_config"] = td.get_config()
    # eager outputs with copied weights
    e = keras.layers.Embedding(11, 4)
    e.build((None, 3, 2))
    e.set_weights([d["E"]])
    out["emb_out"] = keras.ops.convert_to_numpy(e(d["ids"]))
    td.set_weights([d["td_k"], d["td_b"]])
    out["td_out"] = keras.ops.convert_to_numpy(td(d["Xs"]))
    # two epochs of training, each model from the same weights as ours
    def train(model, X, Y, loss, name):
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss=loss)
        model.set_weights([d[f"{name}_w{j}"] for j in range(len(model.get_weights()))])
        h = model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        for j, w in enumerate(model.get_weights()):
            out[f"{name}_trained{j}"] = w
        out[f"{name}_P"] = model.predict(X, verbose=0)
        res[f"{name}_history"] = h.history
    train(keras.Sequential([keras.Input((9,), dtype="int32"), keras.layers.Embedding(12, 5),
                            keras.layers.LSTM(6), keras.layers.Dense(1, activation="sigmoid")]),
          d["text_X"], d["text_y"], "binary_crossentropy", "text")
    train(keras.Sequential([keras.Input((7, 3)), keras.layers.LSTM(5, return_sequences=True),
                            keras.layers.TimeDistributed(keras.layers.Dense(1))]),
          d["seq_X"], d["seq_Y"], "mse", "seq")
    np.savez(sys.argv[3], **out)
    print(json.dumps(res))
""")


def text_parity_model():
    return Sequential([L.Input((9,)), L.Embedding(12, 5), L.LSTM(6),
                       L.Dense(1, activation="sigmoid")])


def seq_parity_model():
    return Sequential([L.Input((7, 3)), L.LSTM(5, return_sequences=True),
                       L.TimeDistributed(L.Dense(1))])


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    rng = np.random.default_rng(11)
    arrays = {"E": rng.normal(size=(11, 4)).astype(np.float32),
              "ids": rng.integers(0, 11, size=(4, 3, 2)).astype(np.int32),
              "td_k": rng.normal(size=(6, 3)).astype(np.float32),
              "td_b": rng.normal(size=3).astype(np.float32),
              "Xs": rng.normal(size=(4, 5, 6)).astype(np.float32),
              "text_X": rng.integers(0, 12, size=(32, 9)).astype(np.int32),
              "text_y": rng.integers(0, 2, size=(32, 1)).astype(np.float32),
              "seq_X": rng.normal(size=(24, 7, 3)).astype(np.float32),
              "seq_Y": rng.normal(size=(24, 7, 1)).astype(np.float32)}
    for name, make in (("text", text_parity_model), ("seq", seq_parity_model)):
        set_random_seed(5)
        for j, w in enumerate(make().get_weights()):
            arrays[f"{name}_w{j}"] = w
    d = tmp_path_factory.mktemp("keras_embedding")
    src, dst = d / "in.npz", d / "out.npz"
    np.savez(src, **arrays)
    proc = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(src), json.dumps(CONFIG_CASES),
                           str(dst)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, KERAS_BACKEND="torch", OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(dst) as f:
        theirs = dict(f)
    return arrays, res, theirs


@needs_keras
@pytest.mark.parametrize("i", range(len(CONFIG_CASES)))
def test_embedding_config_equals_keras(keras_run, i):
    _, res, _ = keras_run
    cls, args, kw = CONFIG_CASES[i]
    ours = getattr(L, cls)(*args, name=f"c{i}", **kw).get_config()
    theirs = res["configs"][i]
    assert list(ours) == list(theirs)
    assert json.loads(json.dumps(ours)) == theirs
    assert getattr(L, cls).from_config(dict(theirs)).get_config() == ours


@needs_keras
def test_time_distributed_config_equals_keras(keras_run):
    _, res, _ = keras_run
    theirs = res["td_config"]
    layer = L.TimeDistributed(L.Dense(3, activation="relu", name="inner"), name="td")
    layer.build((None, 5, 6))
    ours = json.loads(json.dumps(layer.get_config()))
    assert list(ours) == list(theirs)
    assert {k: v for k, v in ours.items() if k != "layer"} == \
        {k: v for k, v in theirs.items() if k != "layer"}
    inner_ours, inner_theirs = dict(ours["layer"]), dict(theirs["layer"])
    assert list(inner_ours) == list(inner_theirs)
    c_ours, c_theirs = inner_ours.pop("config"), dict(inner_theirs.pop("config"))
    assert inner_ours == inner_theirs  # module, class_name, registered_name, build_config
    assert c_ours == c_theirs  # quantization_config (None) included, as Keras 3.15
    # and Keras's config builds the same layer here
    assert L.TimeDistributed.from_config(dict(theirs)).get_config()["layer"]["config"] == \
        layer.get_config()["layer"]["config"]


@needs_keras
def test_layer_outputs_equal_keras(keras_run):
    arrays, _, theirs = keras_run
    e = L.Embedding(11, 4, weights=[arrays["E"]])
    assert_allclose(e(arrays["ids"]), theirs["emb_out"], rtol=0, atol=0)
    td = L.TimeDistributed(L.Dense(3, activation="relu"))
    td.build((None, 5, 6))
    td.set_weights([arrays["td_k"], arrays["td_b"]])
    assert_allclose(td(arrays["Xs"]), theirs["td_out"], rtol=1e-5, atol=1e-6)


@needs_keras
@pytest.mark.parametrize("name", ["text", "seq"])
def test_two_epochs_of_training_equal_keras(keras_run, name):
    arrays, res, theirs = keras_run
    make, loss = {"text": (text_parity_model, "binary_crossentropy"),
                  "seq": (seq_parity_model, "mse")}[name]
    model = make()
    model.compile(optimizer=Adam(learning_rate=0.01), loss=loss)
    n = len(model.get_weights())
    model.set_weights([arrays[f"{name}_w{j}"] for j in range(n)])
    X, Y = arrays[f"{name}_X"], arrays[f"{name}_Y" if name == "seq" else "text_y"]
    h = model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert_allclose(h.history["loss"], res[f"{name}_history"]["loss"], rtol=2e-4)
    for j, w in enumerate(model.get_weights()):
        assert_allclose(w, theirs[f"{name}_trained{j}"], rtol=2e-4, atol=2e-6,
                        err_msg=f"weight {j}")
    assert_allclose(model.predict(X, verbose=0), theirs[f"{name}_P"], rtol=2e-4, atol=2e-6)


def test_frozen_embedding_keeps_its_table():
    rng = np.random.default_rng(5)
    model = Sequential([L.Input((6,)), L.Embedding(10, 3, trainable=False), L.Flatten(),
                        L.Dense(1)])
    model.compile(optimizer=Adam(0.05), loss="mse")
    table, kernel = model.get_weights()[0], model.get_weights()[1]
    assert model.layers[0].trainable_weights == [] and len(model.trainable_weights) == 2
    model.fit(rng.integers(0, 10, (32, 6)), rng.normal(size=32), epochs=2, verbose=0)
    assert_allclose(model.get_weights()[0], table, rtol=0, atol=0)
    assert not np.allclose(model.get_weights()[1], kernel)
