"""Keras front: compile / fit / evaluate / predict on the engine, checked against NumPy."""
import math
import warnings

import numpy as np
import pytest

from neuraxis import losses, optimizers
from neuraxis._keras.session import clear_session, set_random_seed
from neuraxis.callbacks import Callback
from neuraxis.layers import Dense, Dropout, Input, LeakyReLU
from neuraxis.models import Sequential

import reference as ref


@pytest.fixture(autouse=True)
def _fresh_session():
    clear_session()
    set_random_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Do not pass an `input_shape`")
        warnings.filterwarnings("ignore", message="Argument `alpha` is deprecated")
        yield


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Y = np.eye(10)[y]
    return train_test_split(X, Y, test_size=0.2, random_state=0, stratify=y)


def blobs(n=120, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X, y


def test_lecture_example_reaches_95_percent_on_digits(digits):
    X_train, X_test, y_train, y_test = digits
    input_dim, output_dim = X_train.shape[1], y_train.shape[1]
    model = Sequential([
        Dense(100, input_dim=input_dim),
        LeakyReLU(alpha=0.01),
        Dense(output_dim, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X_train, y_train, epochs=30, verbose=0)
    assert list(history.history) == ["accuracy", "loss"]
    assert len(history.history["loss"]) == 30
    assert history.history["loss"][-1] < history.history["loss"][0] / 5
    loss, acc = model.evaluate(X_test, y_test, verbose=0)
    assert acc >= 0.95
    pred_acc = (model.predict(X_test, verbose=0).argmax(1) == y_test.argmax(1)).mean()
    assert pred_acc == pytest.approx(acc)


def test_history_keys_params_and_validation_split_takes_last_rows():
    X, y = blobs(100)
    model = Sequential([Input((5,)), Dense(4, activation="tanh"), Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["acc"])
    h = model.fit(X, y, epochs=2, validation_split=0.2, verbose=0)
    assert list(h.history) == ["acc", "loss", "val_acc", "val_loss"]
    assert h.params == {"verbose": 0, "epochs": 2, "steps": 3}  # 80 rows / 32
    assert h.epoch == [0, 1] and model.history is h
    # Validation ran on the last 20 rows (split before shuffling) with the final weights.
    val_loss, val_acc = model.evaluate(X[80:], y[80:], verbose=0)
    assert h.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-6)
    assert h.history["val_acc"][-1] == pytest.approx(val_acc)


def test_validation_data_and_freq():
    X, y = blobs(64)
    model = Sequential([Input((5,)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    h = model.fit(X, y, epochs=4, validation_data=(X[:10], y[:10]), validation_freq=2, verbose=0)
    assert len(h.history["loss"]) == 4 and len(h.history["val_loss"]) == 2


def _reference_step(kind, cfg, w, b, X, Y, state):
    """One Keras optimizer step on a linear Dense with MSE, in float64."""
    n, k = Y.shape
    dP = 2 * (X @ w + b - Y) / (n * k)
    grads = [X.T @ dP, dP.sum(0)]
    out = []
    for i, (p, g) in enumerate(zip((w, b), grads)):
        s = state.setdefault(i, {"m": np.zeros_like(p), "v": np.zeros_like(p)})
        lr = cfg["learning_rate"]
        if kind == "sgd":
            s["m"] = cfg["momentum"] * s["m"] - lr * g
            p = p + (cfg["momentum"] * s["m"] - lr * g if cfg["nesterov"] else s["m"])
        elif kind == "adam":
            t = state["t"] + 1
            lr_t = lr * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            s["m"] += (g - s["m"]) * 0.1
            s["v"] += (g * g - s["v"]) * 0.001
            p = p - lr_t * s["m"] / (np.sqrt(s["v"]) + cfg.get("epsilon", 1e-7))
        else:  # Keras: epsilon inside the square root; momentum accumulates the step
            s["m"] = cfg["rho"] * s["m"] + (1 - cfg["rho"]) * g * g
            step = lr * g / np.sqrt(s["m"] + cfg.get("epsilon", 1e-7))
            s["v"] = cfg.get("momentum", 0.0) * s["v"] + step
            p = p - s["v"]
        out.append(p)
    state["t"] += 1
    return out


@pytest.mark.parametrize("opt, kind, cfg", [
    (optimizers.SGD(learning_rate=0.1), "sgd", {"learning_rate": 0.1, "momentum": 0.0,
                                                 "nesterov": False}),
    (optimizers.SGD(0.05, momentum=0.9), "sgd", {"learning_rate": 0.05, "momentum": 0.9,
                                                  "nesterov": False}),
    (optimizers.SGD(0.05, momentum=0.8, nesterov=True), "sgd",
     {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True}),
    (optimizers.Adam(learning_rate=0.01), "adam", {"learning_rate": 0.01}),
    (optimizers.RMSprop(learning_rate=0.01, rho=0.8), "rmsprop",
     {"learning_rate": 0.01, "rho": 0.8}),
    (optimizers.RMSprop(learning_rate=0.01, momentum=0.5), "rmsprop",
     {"learning_rate": 0.01, "rho": 0.9, "momentum": 0.5}),
    # A large epsilon shows where it goes: inside the sqrt (RMSprop), outside (Adam).
    (optimizers.RMSprop(learning_rate=0.01, epsilon=0.5), "rmsprop",
     {"learning_rate": 0.01, "rho": 0.9, "epsilon": 0.5}),
    (optimizers.Adam(learning_rate=0.01, epsilon=0.5), "adam",
     {"learning_rate": 0.01, "epsilon": 0.5}),
])
def test_optimizer_steps_match_keras_update_rules(opt, kind, cfg):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12, 4)).astype(np.float32)
    Y = rng.normal(size=(12, 3)).astype(np.float32)
    model = Sequential([Input((4,)), Dense(3)])
    model.set_weights([rng.normal(size=(4, 3)), rng.normal(size=(3,))])
    w, b = (a.astype(np.float64) for a in model.get_weights())
    model.compile(optimizer=opt, loss="mse")
    model.fit(X, Y, batch_size=12, epochs=3, shuffle=False, verbose=0)
    state = {"t": 0}
    for _ in range(3):
        w, b = _reference_step(kind, cfg, w, b, X.astype(np.float64), Y.astype(np.float64), state)
    got = model.get_weights()
    np.testing.assert_allclose(got[0], w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[1], b, rtol=1e-4, atol=1e-6)
    assert model.optimizer.iterations == 3


# (loss, output activation, targets from labels, the reference's loss on one-hot targets)
@pytest.mark.parametrize("loss, act, make_y, ref_loss", [
    ("categorical_crossentropy", "softmax", lambda y: np.eye(3)[y], "categorical_crossentropy"),
    ("sparse_categorical_crossentropy", "softmax", lambda y: y, "categorical_crossentropy"),
    ("binary_crossentropy", "sigmoid", lambda y: np.eye(3)[y], "binary_crossentropy"),
    ("mse", "linear", lambda y: np.eye(3)[y] * 2.0, "mse"),
    ("mae", "linear", lambda y: np.eye(3)[y] * 2.0, "mae"),
])
def test_evaluate_loss_and_metric_values_match_numpy(loss, act, make_y, ref_loss):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    Y = make_y(y)
    sw = rng.uniform(0.5, 2.0, 50)
    model = Sequential([Input((4,)), Dense(3, activation=act)])
    model.compile(optimizer="adam", loss=loss, metrics=["mae"])
    P = model.predict(X, verbose=0).astype(np.float64)
    result = model.evaluate(X, Y, batch_size=16, sample_weight=sw, verbose=0, return_dict=True)
    onehot = np.eye(3)[y] if loss.startswith("sparse") else Y
    per_sample = ref.keras_loss_per_row(ref_loss, P, onehot)
    assert result["loss"] == pytest.approx(np.sum(per_sample * sw) / 50, rel=1e-5)
    mae = np.abs(onehot - P).mean(1)
    # `metrics` ignore sample weights in Keras 3 (only `weighted_metrics` use them)
    assert result["mae"] == pytest.approx(mae.mean(), rel=1e-5)


def test_compile_metrics_ignore_sample_weight_like_keras_3():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    Y = rng.normal(size=(50, 3))
    model = Sequential([Input((4,)), Dense(3)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    mae = np.abs(Y - model.predict(X, verbose=0)).mean()
    sw = rng.uniform(0.1, 3.0, 50)
    result = model.evaluate(X, Y, sample_weight=sw, verbose=0, return_dict=True)
    assert result["mae"] == pytest.approx(mae, rel=1e-5)
    # weighted_metrics do use the weights
    model.compile(optimizer="adam", loss="mse", weighted_metrics=["mae"])
    per_row = np.abs(Y - model.predict(X, verbose=0)).mean(axis=1)
    result = model.evaluate(X, Y, sample_weight=sw, verbose=0, return_dict=True)
    assert result["mae"] == pytest.approx(np.average(per_row, weights=sw), rel=1e-5)


def test_accuracy_is_resolved_from_shapes_like_keras_3():
    X, y = blobs(40)
    # (output, loss, targets, the reference metric and the one-hot targets it sees)
    cases = [(Dense(1, activation="sigmoid"), "binary_crossentropy", y, "binary_accuracy",
              y[:, None]),
             (Dense(2, activation="softmax"), "sparse_categorical_crossentropy", y,
              "categorical_accuracy", np.eye(2)[y]),
             (Dense(2, activation="softmax"), "categorical_crossentropy", np.eye(2)[y],
              "categorical_accuracy", np.eye(2)[y]),
             # Keras 3 picks by shape, not by loss: BCE on a 2-unit softmax -> categorical.
             (Dense(2, activation="softmax"), "binary_crossentropy", np.eye(2)[y],
              "categorical_accuracy", np.eye(2)[y])]
    for out, loss, target, metric, onehot in cases:
        model = Sequential([Input((5,)), Dense(3), out])
        model.compile(loss=loss, metrics=["accuracy"])
        _, acc = model.evaluate(X, target, verbose=0)
        expect = ref.metric_per_row(metric, model.predict(X, verbose=0), onehot).mean()
        assert acc == pytest.approx(expect), loss


def test_same_seed_same_run_and_chunking_does_not_change_dropout():
    X, y = blobs(200)

    def run(callbacks=None, verbose=0, seed=11):
        set_random_seed(seed)
        model = Sequential([Input((5,)), Dense(16, activation="relu"), Dropout(0.5),
                            Dense(2, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        h = model.fit(X, y, batch_size=16, epochs=3, callbacks=callbacks, verbose=verbose)
        return model.get_weights(), h.history["loss"]

    class EveryBatch(Callback):  # forces one engine call per batch
        def on_train_batch_end(self, batch, logs=None):
            pass

    w1, l1 = run()
    w2, l2 = run([EveryBatch()])
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    w3, _ = run(seed=12)
    assert not np.array_equal(w1[0], w3[0])


def test_seeded_dropout_ignores_the_global_seed():
    X, y = blobs(64)
    runs = []
    for global_seed in (1, 2):
        set_random_seed(global_seed)
        model = Sequential([Input((5,)), Dense(16, activation="relu"), Dropout(0.5, seed=5),
                            Dense(2, activation="softmax")])
        model.set_weights([np.full(w.shape, 0.1) for w in model.get_weights()])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        model.fit(X, y, epochs=2, shuffle=False, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_dropout_only_during_training():
    X, y = blobs(64)
    model = Sequential([Input((5,)), Dense(32, activation="relu"), Dropout(0.5), Dense(2)])
    w = model.get_weights()
    expected = np.maximum(X @ w[0] + w[1], 0) @ w[2] + w[3]
    np.testing.assert_allclose(model.predict(X, verbose=0), expected, rtol=1e-5, atol=1e-5)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="mse")
    Y = np.zeros((64, 2))
    train_loss = model.fit(X, Y, batch_size=64, verbose=0).history["loss"][0]
    assert train_loss != pytest.approx(model.evaluate(X, Y, verbose=0), rel=1e-3)


def test_class_weight_equals_matching_sample_weight():
    X, y = blobs(90)
    results = []
    for kw in ({"class_weight": {0: 1.0, 1: 3.0}}, {"sample_weight": np.where(y == 1, 3.0, 1.0)}):
        set_random_seed(2)
        model = Sequential([Input((5,)), Dense(2, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(X, y, epochs=2, verbose=0, **kw)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_shuffle_and_initial_epoch():
    X, y = blobs(100)

    def run(**kw):
        set_random_seed(4)
        model = Sequential([Input((5,)), Dense(2, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        h = model.fit(X, y, batch_size=10, verbose=0, **kw)
        return model.get_weights()[0], h

    a, _ = run(epochs=2, shuffle=False)
    b, _ = run(epochs=2, shuffle=False)
    c, _ = run(epochs=2, shuffle=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    _, h = run(epochs=5, initial_epoch=3)
    assert h.epoch == [3, 4]


def test_frozen_layer_is_not_updated():
    X, y = blobs(64)
    model = Sequential([Input((5,)), Dense(8, activation="relu"), Dense(2, activation="softmax")])
    model.layers[0].trainable = False
    first = model.layers[0].get_weights()
    last = model.layers[1].get_weights()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, y, epochs=2, verbose=0)
    for a, b in zip(first, model.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(last[0], model.layers[1].get_weights()[0])
    # the frozen layer's optimizer moments never moved; the step count did
    assert not any(a.any() for a in model.optimizer._m[:2] + model.optimizer._v[:2])
    assert all(a.any() for a in model.optimizer._m[2:])
    assert int(model.optimizer.iterations) == 4


def test_unfreezing_after_training_trains_that_layer_again():
    X, y = blobs(64)
    model = Sequential([Input((5,)), Dense(8, activation="relu"), Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.trainable = False
    before = model.get_weights()
    model.fit(X, y, epochs=1, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.trainable = True
    model.fit(X, y, epochs=1, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_train_and_test_on_batch_accumulate_like_keras():
    X, y = blobs(64)
    model = Sequential([Input((5,)), Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    first = model.train_on_batch(X[:32], y[:32])
    assert isinstance(first, list) and len(first) == 2
    before = model.get_weights()
    second = model.train_on_batch(X[32:], y[32:], return_dict=True)
    assert set(second) == {"loss", "accuracy"} and model.optimizer.iterations == 2
    assert not np.array_equal(before[0], model.get_weights()[0])
    model.reset_metrics()
    loss, acc = model.test_on_batch(X, y)
    assert (loss, acc) == pytest.approx(model.evaluate(X, y, verbose=0))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert isinstance(model.evaluate(X, y, verbose=0), float)  # scalar when there are no metrics


def test_predict_batching_and_on_batch_agree():
    X, _ = blobs(1000, d=5)
    model = Sequential([Input((5,)), Dense(7, activation="tanh"), Dense(3)])
    full = model.predict(X, batch_size=64, verbose=0)
    assert full.shape == (1000, 3) and full.dtype == np.float32
    np.testing.assert_allclose(model.predict_on_batch(X), full, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model(X[:3]), full[:3], rtol=1e-6, atol=1e-7)


def test_predictions_do_not_depend_on_verbose_or_batch_size(capsys):
    X, _ = blobs(3001, d=5)
    model = Sequential([Input((5,)), Dense(64, activation="relu"), Dense(3)])
    ref = model.predict(X, verbose=0)
    for kw in ({"verbose": 1}, {"verbose": 2, "batch_size": 7}, {"verbose": 0}):
        np.testing.assert_array_equal(model.predict(X, **kw), ref)
    np.testing.assert_array_equal(model.predict_on_batch(X), ref)


def test_label_smoothing_matches_numpy_loss():
    X, y = blobs(40)
    Y = np.eye(2)[y]
    model = Sequential([Input((5,)), Dense(2, activation="softmax")])
    model.compile(loss=losses.CategoricalCrossentropy(label_smoothing=0.2), metrics=["accuracy"])
    loss, acc = model.evaluate(X, Y, verbose=0)
    P = model.predict(X, verbose=0)
    smoothed = Y * (1 - 0.2) + 0.2 / 2  # Keras's label smoothing over 2 classes
    assert loss == pytest.approx(ref.keras_loss_per_row("categorical_crossentropy", P,
                                                        smoothed).mean(), rel=1e-5)
    assert acc == pytest.approx(ref.metric_per_row("categorical_accuracy", P, Y).mean())
