"""Keras front: layers, Sequential structure, weights, config and summary() text."""
import warnings

import numpy as np
import pytest

from neuraxis import activations, initializers
from neuraxis._keras.session import clear_session, set_random_seed
from neuraxis.layers import (ELU, Activation, Dense, Dropout, Flatten, Input, InputLayer,
                             LeakyReLU, ReLU, Reshape, Softmax)
from neuraxis.models import Sequential

INPUT_WARNING = "Do not pass an `input_shape`/`input_dim` argument to a layer"


@pytest.fixture(autouse=True)
def _fresh_session():
    clear_session()
    set_random_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=INPUT_WARNING)
        warnings.filterwarnings("ignore", message="Argument `alpha` is deprecated")
        yield


def lecture_model(input_dim=64, output_dim=10):
    return Sequential([Dense(100, input_dim=input_dim), LeakyReLU(alpha=0.01),
                       Dense(output_dim, activation="softmax")])


# --- the reference's exact summary text ------------------------------------------------
SUMMARY_88 = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┓
┃ Layer (type)                         ┃ Output Shape                ┃         Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━┩
│ dense (Dense)                        │ (None, 100)                 │           2,100 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ leaky_re_lu (LeakyReLU)              │ (None, 100)                 │               0 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ dense_1 (Dense)                      │ (None, 3)                   │             303 │
└──────────────────────────────────────┴─────────────────────────────┴─────────────────┘
 Total params: 2,403 (9.39 KB)
 Trainable params: 2,403 (9.39 KB)
 Non-trainable params: 0 (0.00 B)
"""


def test_summary_matches_keras_at_88_columns(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    lecture_model(20, 3).summary()
    assert capsys.readouterr().out == SUMMARY_88


def test_summary_at_76_columns_without_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # shutil's fallback width -> 76 as in Keras
    lines = []
    lecture_model(20, 3).summary(print_fn=lines.append)
    text = lines[0].splitlines()
    assert [len(s) for s in text[1].split("┳")] == [34, 24, 16]  # inner 33/24/15 + borders
    assert text[4] == "│ dense (Dense)                   │ (None, 100)            │         2,100 │"
    assert all(len(s) == 76 for s in text[1:-3])


def test_lecture_model_param_counts_and_summary(capsys):
    model = lecture_model()
    model.summary(line_length=88)
    out = capsys.readouterr().out
    assert "│ dense (Dense)                        │ (None, 100)                 │           6,500 │" in out
    assert "│ dense_1 (Dense)                      │ (None, 10)                  │           1,010 │" in out
    assert " Total params: 7,510 (29.34 KB)\n" in out
    assert model.count_params() == 7510
    assert [la.count_params() for la in model.layers] == [6500, 0, 1010]


def test_summary_counts_optimizer_after_training(capsys):
    model = lecture_model(20, 3)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(8, 20))
    model.fit(x, np.eye(3)[np.arange(8) % 3], verbose=0)
    model.summary(line_length=88)
    out = capsys.readouterr().out
    assert " Optimizer params: 4,808 (18.78 KB)\n" in out  # 2 x 2,403 + iterations + lr
    assert " Total params: 7,211 (28.17 KB)\n" in out


def test_summary_of_unbuilt_model_and_long_names(capsys):
    model = Sequential([Dense(4, name="a_really_long_layer_name_that_will_not_fit_in_col")])
    model.summary(line_length=60)
    out = capsys.readouterr().out
    # Same wrapping as rich: the name is cut with an ellipsis, "0 (unbuilt)" wraps.
    assert "│ a_really_long_layer_nam… │ ?                 │         0 │" in out
    assert "│ (Dense)                  │                   │ (unbuilt) │" in out
    assert all(len(s) == 60 for s in out.splitlines()[1:-3])


# --- structure ---------------------------------------------------------------------------
def test_input_dim_warns_like_keras_and_builds_eagerly():
    with pytest.warns(UserWarning, match="prefer using an `Input\\(shape\\)` object"):
        layer = Dense(100, input_dim=64)
    model = Sequential([layer])
    assert model.built and model.input_shape == (None, 64)
    assert len(model.layers) == 1  # the auto InputLayer is not listed
    assert isinstance(model._layers[0], InputLayer)


def test_leaky_relu_alpha_is_deprecated_and_default_slope_is_0_3():
    with pytest.warns(UserWarning, match="Argument `alpha` is deprecated. Use `negative_slope`"):
        layer = LeakyReLU(alpha=0.01)
    assert layer.negative_slope == 0.01
    assert LeakyReLU().negative_slope == 0.3
    assert "alpha" not in layer.get_config()
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(negative_slope=-1)


def test_auto_names_follow_keras():
    names = [Dense(1).name, Dense(1).name, LeakyReLU().name, ReLU().name, ELU().name,
             Softmax().name, Sequential().name, Sequential().name]
    assert names == ["dense", "dense_1", "leaky_re_lu", "re_lu", "elu", "softmax", "sequential",
                     "sequential_1"]


def test_deferred_build_on_first_data_and_explicit_build():
    model = Sequential([Dense(5), Dense(2)])
    assert not model.built
    with pytest.raises(ValueError, match="isn't built"):
        model.get_weights() or model.count_params()
    out = model.predict(np.ones((3, 7)), verbose=0)
    assert out.shape == (3, 2) and model.input_shape == (None, 7)
    model2 = Sequential([Dense(5)])
    model2.build((None, 4))
    assert [w.shape for w in model2.get_weights()] == [(4, 5), (5,)]


def test_add_pop_input_and_errors():
    model = Sequential()
    model.add(Input(shape=(16,)))
    model.add(Dense(8, name="hidden"))
    assert model.built and model.output_shape == (None, 8)
    model.add(Dense(3))
    assert model.output_shape == (None, 3)
    popped = model.pop()
    assert isinstance(popped, Dense) and model.output_shape == (None, 8)
    with pytest.raises(ValueError, match="already been configured to use input shape"):
        model.add(Input(shape=(4,)))
    with pytest.raises(ValueError, match="unique names"):
        model.add(Dense(2, name="hidden"))
    with pytest.raises(ValueError, match="Only instances of"):
        model.add("dense")
    with pytest.raises(AttributeError, match="reserved"):
        model.layers = []
    with pytest.raises(ValueError, match="already been configured"):
        model.build((None, 5))


def test_unknown_kwargs_and_strings():
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to Dense"):
        Dense(3, foo=1)
    with pytest.raises(ValueError, match="softplus"):  # the message lists the valid names
        Dense(3, activation="swishy")
    with pytest.raises(ValueError, match="glorot_uniform"):
        Dense(3, kernel_initializer="nope")
    with pytest.raises(ValueError, match="positive integer"):
        Dense(0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(1.5)


def test_perceptron_worked_example():
    model = Sequential([Dense(1, activation="sigmoid", input_dim=2)])
    model.set_weights([np.array([[5.], [-3.]]), np.array([1.])])
    p = model.predict(np.array([[-3, 2]]), verbose=0)
    # z = 1 + 5*(-3) - 3*2 = -20
    assert p.dtype == np.float32 and p.shape == (1, 1)
    np.testing.assert_allclose(p[0, 0], 1 / (1 + np.exp(20.0)), rtol=1e-5)
    assert abs(p[0, 0] - 2.06e-9) < 0.01e-9


def test_set_weights_checks_everything_first():
    model = Sequential([Input((2,)), Dense(3), Dense(1)])
    before = model.get_weights()
    with pytest.raises(ValueError, match="expecting 4 weights"):
        model.set_weights(before[:3])
    bad = [w.copy() for w in before]
    bad[3] = np.zeros((2,))
    with pytest.raises(ValueError, match=r"shape \(1,\) is not compatible .* \(2,\)"):
        model.set_weights([np.ones_like(w) for w in before[:3]] + [np.zeros(2)])
    for a, b in zip(before, model.get_weights()):  # nothing changed
        np.testing.assert_array_equal(a, b)


def test_weights_are_float32_glorot_and_seeded():
    set_random_seed(7)
    a = Sequential([Input((64,)), Dense(100)]).get_weights()
    set_random_seed(7)
    b = Sequential([Input((64,)), Dense(100)]).get_weights()
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].dtype == np.float32 and a[0].shape == (64, 100)
    limit = np.sqrt(6 / 164)
    assert np.abs(a[0]).max() <= limit and np.abs(a[0]).max() > 0.9 * limit
    assert not a[1].any()
    seeded = initializers.GlorotUniform(seed=3)
    np.testing.assert_array_equal(seeded((3, 4)), seeded((3, 4)))


def test_flatten_reshape_and_shapes():
    model = Sequential([Input((4, 3)), Flatten(), Dense(6), Reshape((2, 3))])
    assert [la.output_shape for la in model.layers] == [(None, 12), (None, 6), (None, 2, 3)]
    out = model.predict(np.ones((5, 4, 3)), verbose=0)
    assert out.shape == (5, 2, 3)
    with pytest.raises(ValueError, match="total size of new array must be unchanged"):
        Sequential([Input((5,)), Reshape((2, 2))])


@pytest.mark.parametrize("layer, fn", [
    (Activation("tanh"), np.tanh),
    (ReLU(), lambda z: np.maximum(z, 0)),
    (ReLU(negative_slope=0.1), lambda z: np.where(z > 0, z, 0.1 * z)),
    (LeakyReLU(), lambda z: np.where(z > 0, z, 0.3 * z)),
    (ELU(alpha=0.5), lambda z: np.where(z > 0, z, 0.5 * np.expm1(z))),
    (Softmax(), lambda z: np.exp(z) / np.exp(z).sum(1, keepdims=True)),
    (Activation("softplus"), lambda z: np.log1p(np.exp(z))),
    (Activation("sigmoid"), lambda z: 1 / (1 + np.exp(-z))),
])
def test_activation_layers_fused_or_not_match_numpy(layer, fn):
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    fused = Sequential([Input((4,)), Dense(5), layer])  # fused into the Dense
    w = fused.get_weights()
    z = x @ w[0] + w[1]
    np.testing.assert_allclose(fused.predict(x, verbose=0), fn(z), rtol=1e-5, atol=1e-6)
    alone = Sequential([Input((4,)), type(layer).from_config(
        {**layer.get_config(), "name": layer.name + "_2"})])
    np.testing.assert_allclose(alone.predict(x, verbose=0), fn(x), rtol=1e-5, atol=1e-6)


def test_stack_with_dropouts_and_chained_activations_matches_numpy():
    # Dropout first and between layers, an activation fused into a linear Dense, two
    # activations in a row: inference is the plain composition, training updates the
    # model's own arrays in place.
    model = Sequential([Dropout(0.1, input_shape=(4,)), Dense(8), LeakyReLU(0.2), Dropout(0.3),
                        Dropout(0.2), Dense(3), Activation("sigmoid"), Activation("tanh")])
    x = np.random.default_rng(3).normal(size=(16, 4)).astype(np.float32)
    W0, b0, W1, b1 = [w.astype(np.float64) for w in model.get_weights()]
    z = x @ W0 + b0
    h = np.where(z > 0, z, 0.2 * z)
    expect = np.tanh(1 / (1 + np.exp(-(h @ W1 + b1))))
    np.testing.assert_allclose(model.predict(x, verbose=0), expect, rtol=1e-5, atol=1e-6)
    arrays = model.weights
    before = [a.copy() for a in arrays]
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.zeros((16, 3), np.float32), epochs=1, batch_size=8, verbose=0)
    assert all(a is b for a, b in zip(arrays, model.weights))
    assert all(not np.array_equal(a, b) for a, b in zip(arrays, before))


def test_dense_without_bias_trains_like_keras():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    Y = X @ np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]], dtype=np.float32)
    model = Sequential([Input((3,)), Dense(2, use_bias=False)])
    assert model.count_params() == 6 and len(model.get_weights()) == 1
    np.testing.assert_allclose(model.predict(X, verbose=0), X @ model.get_weights()[0],
                               rtol=1e-5, atol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    w0 = model.get_weights()[0].astype(np.float64)
    model.fit(X, Y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    # one SGD step on mean over outputs and rows of (p - y)^2: grad = 2 X^T (XW - Y) / (n k)
    grad = 2 * X.T.astype(np.float64) @ (X @ w0 - Y) / (64 * 2)
    np.testing.assert_allclose(model.get_weights()[0], w0 - 0.01 * grad, rtol=1e-4, atol=1e-6)


def test_unsupported_features_say_so():
    with pytest.raises(NotImplementedError, match="max_value"):
        Sequential([Input((3,)), ReLU(max_value=6.0)]).predict(np.ones((1, 3)), verbose=0)


def test_get_config_round_trip():
    model = Sequential([Input((6,)), Dense(4, activation="relu"), Dropout(0.25, seed=3),
                        LeakyReLU(0.05), Dense(2, activation="softmax")], name="net")
    config = model.get_config()
    assert config["name"] == "net" and config["build_input_shape"] == [None, 6]
    assert [c["class_name"] for c in config["layers"]] == [
        "InputLayer", "Dense", "Dropout", "LeakyReLU", "Dense"]
    assert config["layers"][1]["config"]["activation"] == "relu"
    assert config["layers"][1]["build_config"] == {"input_shape": [None, 6]}
    clone = Sequential.from_config(config)
    assert clone.get_config() == config
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]


def test_numpy_activation_functions():
    x = np.array([-2.0, 0.5])
    np.testing.assert_allclose(activations.get("leaky_relu")(x), [-0.4, 0.5])  # function: 0.2
    np.testing.assert_allclose(activations.get(None)(x), x)
    with pytest.raises(ValueError, match="Could not interpret activation"):
        activations.get("nope")


def test_to_categorical_like_keras():
    from neuraxis.utils import to_categorical

    out = to_categorical(np.array([[1], [0], [3]]))
    assert out.shape == (3, 4) and out.dtype == np.float64
    np.testing.assert_array_equal(out.argmax(1), [1, 0, 3])
    assert to_categorical([0, 1], num_classes=5).shape == (2, 5)
    with pytest.raises(ValueError, match="labels must be in"):
        to_categorical([0, 7], num_classes=3)


def test_layers_are_callable_on_arrays_like_keras():
    from neuraxis import layers as L

    x = np.array([[-3.0, -1.0, 0.0, 2.0]], dtype=np.float32)
    # the values of Keras's own layer docstrings / tests
    np.testing.assert_allclose(L.LeakyReLU(negative_slope=0.5)(x), [[-1.5, -0.5, 0.0, 2.0]])
    np.testing.assert_allclose(L.ReLU()(x), [[0.0, 0.0, 0.0, 2.0]])
    np.testing.assert_allclose(L.ELU()(x), [[np.expm1(-3.0), np.expm1(-1.0), 0.0, 2.0]],
                               rtol=1e-6)
    e = np.exp(x - x.max())
    np.testing.assert_allclose(L.Softmax()(x), e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(L.Activation("tanh")(x), np.tanh(x), rtol=1e-6)
    d = L.Dense(3, activation="relu", kernel_initializer="ones", bias_initializer="zeros")
    out = d(np.ones((2, 5, 4), dtype=np.float32))  # Dense acts on the last axis
    assert out.shape == (2, 5, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 4.0)
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        d(np.ones((1, 5)))
    assert L.Flatten()(np.ones((2, 3, 4))).shape == (2, 12)
    assert L.Reshape((2, -1))(np.ones((3, 4))).shape == (3, 2, 2)
    drop = L.Dropout(0.5)
    np.testing.assert_array_equal(drop(x), x)  # inference: identity
    y = drop(np.ones((4, 1000), dtype=np.float32), training=True)
    assert set(np.unique(y)) == {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6


def test_dense_on_sequence_inputs_applies_over_the_last_axis():
    # Keras's Dense on (batch, steps, features): the same kernel on every step
    model = Sequential([Input((3, 4)), Dense(5, activation="relu"), Dense(2)])
    assert model.output_shape == (None, 3, 2)
    assert model.count_params() == 4 * 5 + 5 + 5 * 2 + 2
    x = np.random.default_rng(0).normal(size=(6, 3, 4)).astype(np.float32)
    W0, b0, W1, b1 = [w.astype(np.float64) for w in model.get_weights()]
    expect = np.maximum(x @ W0 + b0, 0) @ W1 + b1
    np.testing.assert_allclose(model.predict(x, verbose=0), expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.layers[0](x), np.maximum(x @ W0 + b0, 0), rtol=1e-5,
                               atol=1e-6)
    # losses over per-step outputs: Keras's mse is the mean over every output
    model.compile(optimizer="adam", loss="mse")
    y = np.random.default_rng(1).normal(size=(6, 3, 2)).astype(np.float32)
    P = model.predict(x, verbose=0).astype(np.float64)
    assert np.isclose(model.evaluate(x, y, verbose=0), np.mean((P - y) ** 2), rtol=1e-5)
    model.fit(x, y, epochs=2, verbose=0)


def test_variance_scaling_fans_from_given_axes_as_keras():
    # Keras 3: with input_axes and output_axes the fans are the products of those axes
    init = initializers.GlorotUniform(seed=1, input_axes=[0], output_axes=[1, 2])
    w = init((4, 6, 5))
    limit = np.sqrt(6.0 / (4 + 30))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit
    assert init.get_config() == {"seed": 1, "input_axes": [0], "output_axes": [1, 2]}
    # a Keras-written config (axes None) loads
    again = initializers.get({"class_name": "GlorotUniform", "config": init.get_config()})
    np.testing.assert_array_equal(again((4, 6, 5)), w)
