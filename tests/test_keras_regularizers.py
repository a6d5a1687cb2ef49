"""Weight regularizers (kernel / bias / recurrent / embeddings): objects, names and configs
as Keras's; training against a NumPy reference (penalty in the loss, its gradient in the
step); the real-Keras comparison of these models runs with the optimizer cases in
test_keras_optimizers_extra.py (REGULARIZER_CASES, one Keras subprocess for both).
"""
import doctest

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuraxis import layers as L
from neuraxis import optimizers, regularizers as R
from neuraxis._keras import penalties
from neuraxis.models import Sequential

# (layers source, optimizer, loss, id range or None): built with L = keras.layers and
# R = keras.regularizers in the Keras subprocess, with ours here.
REGULARIZER_CASES = [
    ("[L.Input((5,)), L.Dense(6, activation='tanh', kernel_regularizer='l2', "
     "bias_regularizer=R.L1(0.05)), L.Dense(3, kernel_regularizer=R.L1L2(0.01, 0.02))]",
     optimizers.SGD(0.05), "mse", None),
    ("[L.Input((8, 3)), L.Conv1D(4, 3, kernel_regularizer=R.L2(0.05), bias_regularizer='l1'),"
     " L.Flatten(), L.Dense(2, kernel_regularizer=R.L1(0.02))]",
     optimizers.Adam(0.01), "mse", None),
    ("[L.Input((6, 6, 2)), L.Conv2D(3, 3, padding='same', "
     "kernel_regularizer=R.L1L2(l1=0.01, l2=0.01)), L.Flatten(), L.Dense(2)]",
     optimizers.SGD(0.05, momentum=0.9), "mse", None),
    ("[L.Input((4, 4, 2)), L.Conv2DTranspose(2, 3, strides=2, kernel_regularizer='l2', "
     "bias_regularizer=R.L2(0.1)), L.Flatten(), L.Dense(2)]",
     optimizers.RMSprop(0.01), "mse", None),
    ("[L.Input((5, 3)), L.SimpleRNN(4, kernel_regularizer=R.L2(0.05), "
     "recurrent_regularizer=R.L1(0.02), bias_regularizer=R.L2(0.1)), L.Dense(2)]",
     optimizers.Adam(0.01), "mse", None),
    ("[L.Input((5, 3)), L.LSTM(4, kernel_regularizer=R.L2(0.05), "
     "recurrent_regularizer=R.L1(0.02), bias_regularizer=R.L2(0.1)), L.Dense(2)]",
     optimizers.AdamW(0.01, clipnorm=0.5), "mse", None),
    ("[L.Input((5, 3)), L.GRU(4, kernel_regularizer=R.L1L2(0.01, 0.05), "
     "recurrent_regularizer='l2', bias_regularizer=R.L1(0.1)), L.Dense(2)]",
     optimizers.Nadam(0.01, global_clipnorm=0.5), "mse", None),
    ("[L.Input((6,)), L.Embedding(10, 3, embeddings_regularizer=R.L2(0.05)), L.Flatten(), "
     "L.Dense(2, bias_regularizer='l2')]", optimizers.Adagrad(0.1), "mse", 10),
    ("[L.Input((5, 3)), L.Bidirectional(L.LSTM(3, kernel_regularizer='l2', "
     "recurrent_regularizer=R.L1(0.01))), L.Dense(2)]", optimizers.Adam(0.01), "mse", None),
    ("[L.Input((5,)), L.Dense(6, kernel_regularizer=R.L2(0.5), trainable=False), "
     "L.Dense(3, kernel_regularizer=R.L2(0.1))]", optimizers.SGD(0.05), "mse", None),
]


def test_objects_names_and_configs_as_keras():
    assert R.get("l2").get_config() == {"l2": 0.01}
    assert R.get("L1").get_config() == {"l1": float(np.float32(0.01))}
    assert R.get("l1l2").get_config() == {"l1": 0.0, "l2": 0.0}
    assert R.l1_l2 is R.L1L2 and R.l1 is R.L1 and R.l2 is R.L2
    assert R.get(R.L2).get_config() == {"l2": 0.01}
    reg = R.L1L2(l1=0.1, l2=0.2)
    assert R.get(reg) is reg and R.get(None) is None
    again = R.deserialize(R.serialize(reg))
    assert type(again) is R.L1L2 and again.get_config() == reg.get_config()
    assert R.serialize(reg) == {"module": "keras.regularizers", "class_name": "L1L2",
                                "config": {"l1": 0.1, "l2": 0.2}, "registered_name": None}
    with pytest.raises(ValueError, match="Could not interpret regularizer identifier"):
        R.get("l1_l2")  # as Keras: the snake_case of L1L2 is 'l1l2'
    with pytest.raises(ValueError, match="expected a non-negative float"):
        R.L2(-1.0)
    with pytest.raises(ValueError, match="expected a non-negative float"):
        R.L1(float("nan"))
    x = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)
    assert reg(x) == pytest.approx(0.1 * 3.5 + 0.2 * 5.25)


def test_layers_take_and_serialize_regularizers():
    d = L.Dense(2, kernel_regularizer="l2", bias_regularizer=R.L1(0.5))
    cfg = d.get_config()
    assert cfg["kernel_regularizer"]["class_name"] == "L2"
    assert cfg["bias_regularizer"]["config"] == {"l1": 0.5}
    again = L.Dense.from_config(cfg)
    assert isinstance(again.kernel_regularizer, R.L2)
    lstm = L.LSTM(3, recurrent_regularizer="l1")
    assert lstm.get_config()["recurrent_regularizer"]["class_name"] == "L1"
    assert lstm.get_config()["kernel_regularizer"] is None
    conv = L.Conv2D(2, 3, kernel_regularizer=R.L1L2(0.1, 0.1))
    assert conv.get_config()["kernel_regularizer"]["class_name"] == "L1L2"
    emb = L.Embedding(5, 2, embeddings_regularizer="l2")
    assert emb.get_config()["embeddings_regularizer"]["class_name"] == "L2"
    with pytest.raises(ValueError, match="Could not interpret regularizer"):
        L.Dense(2, kernel_regularizer="l3")
    with pytest.raises(NotImplementedError, match="activity_regularizer"):
        L.Dense(2, activity_regularizer="l2")


def test_training_matches_a_numpy_reference():
    """Linear Dense with L1L2 on the kernel and L2 on the bias, SGD: each step's gradient
    is the data gradient plus l1 sign(W) + 2 l2 W; the history loss adds the penalty of the
    weights before each step; evaluate adds that of the final weights."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    y = rng.normal(size=(30, 2)).astype(np.float32)
    W0 = rng.normal(size=(4, 2)).astype(np.float32)
    b0 = rng.normal(size=2).astype(np.float32)
    l1, l2, lb = 0.05, 0.1, 0.2
    model = Sequential([L.Input((4,)), L.Dense(2, kernel_regularizer=R.L1L2(l1, l2),
                                               bias_regularizer=R.L2(lb))])
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    model.set_weights([W0, b0])
    h = model.fit(X, y, batch_size=10, epochs=2, shuffle=False, verbose=0)
    W, b = W0.astype(np.float64), b0.astype(np.float64)
    losses, epoch = [], []
    for t in range(6):
        xb, yb = X[t % 3 * 10:(t % 3 + 1) * 10], y[t % 3 * 10:(t % 3 + 1) * 10]
        r = xb @ W + b - yb
        pen = l1 * np.abs(W).sum() + l2 * (W ** 2).sum() + lb * (b ** 2).sum()
        epoch.append((r ** 2).mean() + pen)
        d = 2 * r / r.size
        gW = xb.T @ d + l1 * np.sign(W) + 2 * l2 * W
        gb = d.sum(0) + 2 * lb * b
        W, b = W - 0.1 * gW, b - 0.1 * gb
        if t % 3 == 2:
            losses.append(np.mean(epoch))
            epoch = []
    assert_allclose(model.get_weights()[0], W, rtol=1e-5, atol=1e-6)
    assert_allclose(model.get_weights()[1], b, rtol=1e-5, atol=1e-6)
    assert_allclose(h.history["loss"], losses, rtol=1e-5)
    r = X @ W + b - y
    ev = (r ** 2).mean() + l1 * np.abs(W).sum() + l2 * (W ** 2).sum() + lb * (b ** 2).sum()
    assert model.evaluate(X, y, verbose=0) == pytest.approx(ev, rel=1e-5)


def test_a_frozen_layer_has_no_penalty():
    model = Sequential([L.Input((3,)), L.Dense(2, kernel_regularizer=R.L2(1.0)), L.Dense(1)])
    model.layers[0].trainable = False
    assert penalties.engine_penalties(model) == (None, None)
    assert penalties.penalty(model) == 0.0
    model.layers[0].trainable = True
    W = model.layers[0].get_weights()[0]
    assert penalties.penalty(model) == pytest.approx(float((W.astype(np.float64) ** 2).sum()),
                                                     rel=1e-6)


@pytest.mark.parametrize("kind", ["dense", "conv1d"])
def test_penalty_and_global_norm_do_not_depend_on_threads(kind, restore_threads):
    """A batch split across two threads (Dense: gradients by slices; Conv1D: per-thread
    partial gradients added up): the same weights and losses as one thread."""
    import neuraxis
    rng = np.random.default_rng(2)
    if kind == "dense":
        shape, layer = (64,), L.Dense(32, kernel_regularizer=R.L1L2(0.01, 0.05))
    else:
        shape, layer = (16, 8), L.Conv1D(8, 3, kernel_regularizer=R.L1L2(0.01, 0.05),
                                          bias_regularizer="l2")
    X = rng.normal(size=(256,) + shape).astype(np.float32)
    out = []
    for threads in (1, 2):
        neuraxis.set_num_threads(threads)
        model = Sequential([L.Input(shape), layer.__class__.from_config(layer.get_config()),
                            L.Flatten(), L.Dense(4)])
        y = rng.normal(size=(256, 4)).astype(np.float32) if not out else y
        model.compile(optimizer=optimizers.Adam(0.01, global_clipnorm=0.5), loss="mse")
        model.set_weights([np.linspace(-0.3, 0.3, w.size, dtype=np.float32).reshape(w.shape)
                           for w in model.get_weights()])
        h = model.fit(X, y, batch_size=128, epochs=2, shuffle=False, verbose=0)
        out.append((model.get_weights(), h.history["loss"]))
    for a, b in zip(out[0][0], out[1][0]):
        assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert_allclose(out[0][1], out[1][1], rtol=1e-6)


def test_docstring_examples():
    for mod in (R, penalties):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert res.failed == 0
