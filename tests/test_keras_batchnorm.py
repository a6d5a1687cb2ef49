"""BatchNormalization in the Keras front: weights, config, modes, training, saving, errors,
and parity with real Keras 3 (torch backend, in a subprocess) with copied weights:
inference output, and whole training runs (moving statistics included)."""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuraxis import layers as layers_mod
from neuraxis.layers import BatchNormalization, Conv2D, Dense, Flatten, Input, MaxPooling2D
from neuraxis.models import Sequential, load_model
from neuraxis.utils import set_random_seed

from real_keras import HAVE_KERAS, needs_keras  # noqa: F401
from test_batch_norm import bn_reference


@pytest.fixture(autouse=True)
def _seed():
    set_random_seed(0)


def mlp(**bn_kw):
    return Sequential([Input((6,)), Dense(8), BatchNormalization(**bn_kw),
                       Dense(3, activation="softmax")])


def cnn():
    return Sequential([Input((8, 8, 2)), Conv2D(4, 3, activation="relu"), BatchNormalization(),
                       MaxPooling2D(), Flatten(), Dense(3, activation="softmax")])


def data(rng, shape=(6,), n=64, k=3):
    X = rng.normal(size=(n,) + shape).astype(np.float32) + 0.5
    Y = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    return X, Y


# ---- weights and config --------------------------------------------------------------------
def test_weights_order_shapes_and_trainability():
    model = mlp()
    bn = model.layers[1]
    assert [w.shape for w in bn.get_weights()] == [(8,)] * 4
    assert [w.tolist() for w in bn.get_weights()] == [[1.0] * 8, [0.0] * 8, [0.0] * 8, [1.0] * 8]
    assert bn.trainable_weights[0] is bn.gamma and bn.trainable_weights[1] is bn.beta
    assert bn.non_trainable_weights[0] is bn.moving_mean
    assert len(model.trainable_weights) == 6 and len(model.non_trainable_weights) == 2
    bn.trainable = False
    assert bn.trainable_weights == [] and len(bn.non_trainable_weights) == 4
    bare = BatchNormalization(center=False, scale=False)
    bare.build((None, 5, 3))
    assert [w.shape for w in bare.get_weights()] == [(3,), (3,)]


def test_summary_counts_the_moving_statistics_as_non_trainable(capsys):
    cnn().summary()
    text = capsys.readouterr().out
    assert " Total params: 203 (812.00 B)" in text
    assert " Trainable params: 195 (780.00 B)" in text
    assert " Non-trainable params: 8 (32.00 B)" in text


def test_the_optimizer_has_no_slots_for_the_moving_statistics(capsys,
                                                                rng=np.random.default_rng(8)):
    model = cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    X, Y = data(rng, (8, 8, 2), n=32)
    model.fit(X, Y, epochs=1, verbose=0)
    model.summary()
    text = capsys.readouterr().out
    # Adam: m and v per trainable weight, plus its iterations and learning rate (as Keras)
    assert f" Optimizer params: {2 * 195 + 2:,} " in text
    assert f" Total params: {203 + 2 * 195 + 2:,} " in text


def test_config_defaults_and_round_trip():
    bn = BatchNormalization(name="bn")
    config = bn.get_config()
    assert {k: config[k] for k in ("axis", "momentum", "epsilon", "center", "scale")} == {
        "axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True}
    clone = BatchNormalization.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    again = layers_mod.deserialize(layers_mod.serialize(bn))
    assert type(again) is BatchNormalization and again.get_config() == config


@pytest.mark.parametrize("kwargs,shape,error", [
    (dict(axis=1), (None, 4, 4, 3), NotImplementedError),   # channels_first
    (dict(axis=5), (None, 4, 3), ValueError),
    (dict(axis=0), (None, 4), ValueError),
    (dict(renorm=True), (None, 4), NotImplementedError),
    (dict(gamma_regularizer="l2"), (None, 4), NotImplementedError),
    (dict(synchronized=True), (None, 4), ValueError),
    (dict(axis="x"), (None, 4), TypeError),
])
def test_unsupported_or_bad_arguments_raise(kwargs, shape, error):
    with pytest.raises(error):
        BatchNormalization(**kwargs).build(shape)


def test_axis_naming_the_last_axis_is_accepted():
    model = Sequential([Input((4, 4, 3)), BatchNormalization(axis=3)])
    assert model.output_shape == (None, 4, 4, 3)


# ---- modes -------------------------------------------------------------------------------
def test_eager_calls_training_and_inference(rng=np.random.default_rng(3)):
    bn = BatchNormalization(momentum=0.8)
    x = rng.normal(size=(10, 4, 3)).astype(np.float32) * 3 + 1
    bn.build((None, 4, 3))
    bn.set_weights([np.full(3, 2.0), np.full(3, 0.5), np.zeros(3), np.ones(3)])
    y = bn(x, training=True)
    want, mean, var = bn_reference(x, 2.0, 0.5)
    assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    assert_allclose(bn.moving_mean, 0.2 * mean, rtol=1e-5, atol=1e-6)
    assert_allclose(bn.moving_variance, 0.8 + 0.2 * var, rtol=1e-5)
    mm, mv = bn.moving_mean.copy(), bn.moving_variance.copy()
    assert_allclose(bn(x), bn_reference(x, 2.0, 0.5, mm, mv)[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(bn.moving_mean, mm)  # inference moves nothing


def test_fit_moves_the_statistics_and_predict_uses_them(rng=np.random.default_rng(4)):
    model = mlp(momentum=0.5)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    X, Y = data(rng)
    model.fit(X, Y, epochs=3, batch_size=16, verbose=0)
    W0, b0, g, b, mm, mv, W1, b1 = model.get_weights()
    h = X @ W0 + b0
    assert_allclose(mm, h.mean(0), atol=0.3)  # momentum 0.5 over 12 batches: near the data's
    assert_allclose(mv, h.var(0), rtol=0.3)
    z = bn_reference(h, g, b, mm, mv)[0] @ W1 + b1
    P = np.exp(z - z.max(1, keepdims=True))
    assert_allclose(model.predict(X, verbose=0), P / P.sum(1, keepdims=True), rtol=1e-4,
                    atol=1e-6)


def test_a_frozen_layer_keeps_its_weights_and_runs_in_inference_mode(
        rng=np.random.default_rng(5)):
    model = mlp()
    model.layers[1].trainable = False
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.layers[1].set_weights([np.full(8, 1.5), np.full(8, 0.1), np.full(8, 0.2),
                                 np.full(8, 2.0)])
    before = model.layers[1].get_weights()
    X, Y = data(rng)
    model.fit(X, Y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(model.layers[1].get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_the_cnn_learns_and_survives_save_and_load(tmp_path, rng=np.random.default_rng(6)):
    # a brighter top half, bottom half or neither: three classes
    y = rng.integers(0, 3, 256)
    X = rng.normal(size=(256, 8, 8, 2)).astype(np.float32) * 0.5
    X[y == 0, :4] += 1.0
    X[y == 1, 4:] += 1.0
    Y = np.eye(3, dtype=np.float32)[y]
    model = cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(X, Y, epochs=10, batch_size=32, verbose=0)
    assert hist.history["accuracy"][-1] >= 0.9
    assert model.evaluate(X, Y, verbose=0)[1] >= 0.9  # inference: the moving statistics
    model.save(tmp_path / "bn.keras")
    loaded = load_model(tmp_path / "bn.keras")
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))


# ---- real Keras ------------------------------------------------------------------------------
KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    L = keras.layers
    d = np.load(sys.argv[1])
    out = {}
    configs = [L.BatchNormalization(name="b1").get_config(),
               L.BatchNormalization(axis=3, momentum=0.9, epsilon=0.01, center=False,
                                    gamma_initializer="random_normal", name="b2").get_config()]
    out["configs"] = configs
    bn = L.BatchNormalization(epsilon=0.01)
    bn.build(d["Xc"].shape)
    bn.set_weights([d["g"], d["b"], d["mm"], d["mv"]])
    arrays = {"inference": keras.ops.convert_to_numpy(bn(d["Xc"], training=False))}
    models = {
        "mlp": keras.Sequential([keras.Input((6,)), L.Dense(8), L.BatchNormalization(momentum=0.9),
                                 L.Dense(3, activation="softmax")]),
        "cnn": keras.Sequential([keras.Input((8, 8, 2)), L.Conv2D(4, 3, activation="relu"),
                                 L.BatchNormalization(), L.MaxPooling2D(), L.Flatten(),
                                 L.Dense(3, activation="softmax")]),
    }
    for name, model in models.items():
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
                      loss="categorical_crossentropy", metrics=["accuracy"])
        model.set_weights([d[f"{name}_w{i}"] for i in range(len(model.get_weights()))])
        X, Y = d[f"{name}_X"], d[f"{name}_Y"]
        h = model.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        out[name] = {"history": h.history, "evaluate": model.evaluate(X, Y, verbose=0)}
        for i, w in enumerate(model.get_weights()):
            arrays[f"{name}_w{i}"] = w
        arrays[f"{name}_P"] = model.predict(X, verbose=0)
    np.savez(sys.argv[2], **arrays)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    if not HAVE_KERAS:
        pytest.skip("keras + torch not installed")
    rng = np.random.default_rng(7)
    tmp = tmp_path_factory.mktemp("bn")
    arrays = dict(Xc=rng.normal(size=(5, 4, 3, 6)).astype(np.float32) * 2 + 3,
                  g=rng.uniform(0.5, 1.5, 6).astype(np.float32),
                  b=rng.normal(size=6).astype(np.float32),
                  mm=rng.normal(size=6).astype(np.float32),
                  mv=rng.uniform(0.5, 2, 6).astype(np.float32))
    for name, make, shape in (("mlp", mlp, (6,)), ("cnn", cnn, (8, 8, 2))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = make()
        X, Y = data(rng, shape, n=64)
        arrays[f"{name}_X"], arrays[f"{name}_Y"] = X, Y
        weights = [rng.uniform(-0.5, 0.5, w.shape).astype(np.float32)
                   for w in model.get_weights()]
        bn_index = 2  # gamma, beta, moving mean, moving variance follow the first kernel, bias
        weights[bn_index] = rng.uniform(0.5, 1.5, weights[bn_index].shape).astype(np.float32)
        weights[bn_index + 3] = rng.uniform(0.5, 2, weights[bn_index + 3].shape).astype(
            np.float32)
        for i, w in enumerate(weights):
            arrays[f"{name}_w{i}"] = w
    np.savez(tmp / "in.npz", **arrays)
    out = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp / "in.npz"),
                          str(tmp / "out.npz")], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-2000:]
    return arrays, json.loads(out.stdout.strip().splitlines()[-1]), dict(np.load(tmp / "out.npz"))


@needs_keras
def test_config_matches_keras(keras_run):
    _, answers, _ = keras_run
    ours = [BatchNormalization(name="b1").get_config(),
            BatchNormalization(axis=3, momentum=0.9, epsilon=0.01, center=False,
                               gamma_initializer="random_normal", name="b2").get_config()]
    for mine, theirs in zip(ours, answers["configs"]):
        mine = json.loads(json.dumps(mine))
        assert list(mine) == list(theirs)
        assert mine == theirs
        assert layers_mod.deserialize({"class_name": "BatchNormalization",
                                       "config": theirs}).get_config() == mine


@needs_keras
def test_inference_output_equals_keras(keras_run):
    arrays, _, theirs = keras_run
    bn = BatchNormalization(epsilon=0.01)
    bn.build(arrays["Xc"].shape)
    bn.set_weights([arrays[k] for k in ("g", "b", "mm", "mv")])
    assert_allclose(bn(arrays["Xc"]), theirs["inference"], rtol=1e-6, atol=1e-6)


@needs_keras
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_training_matches_keras(keras_run, name):
    from neuraxis.optimizers import SGD
    arrays, answers, theirs = keras_run
    model = mlp(momentum=0.9) if name == "mlp" else cnn()
    model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    n_weights = len(model.get_weights())
    model.set_weights([arrays[f"{name}_w{i}"] for i in range(n_weights)])
    X, Y = arrays[f"{name}_X"], arrays[f"{name}_Y"]
    hist = model.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for i, w in enumerate(model.get_weights()):
        assert_allclose(w, theirs[f"{name}_w{i}"], rtol=2e-4, atol=2e-5, err_msg=f"weight {i}")
    assert_allclose(model.predict(X, verbose=0), theirs[f"{name}_P"], rtol=2e-4, atol=2e-5)
    for key, values in answers[name]["history"].items():
        assert_allclose(hist.history[key], values, rtol=2e-4, atol=2e-5)
    assert_allclose(model.evaluate(X, Y, verbose=0), answers[name]["evaluate"], rtol=2e-4,
                    atol=2e-5)
