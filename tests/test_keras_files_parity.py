"""Real Keras 3 (torch backend, in a subprocess) and neuraxis read each other's files.

One Keras run loads the `.keras` and `.weights.h5` files neuraxis wrote (the lecture MLP,
CNN and LSTM, a model with Embedding / Bidirectional(GRU) / TimeDistributed /
BatchNormalization, and a zoo of the other layer kinds), predicts, and continues
training from the restored optimizer state (Adam, SGD with momentum, RMSprop with
momentum); it also builds the same models in Keras code, trains them one epoch, saves
its own files and trains on. neuraxis then loads Keras's files and trains on too.
Predictions and the weights after the continued epoch must agree both ways.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuraxis import layers as L
from neuraxis.models import Sequential, load_model, model_from_json
from neuraxis import optimizers
from neuraxis.optimizers import SGD, Adam, RMSprop
from neuraxis.utils import set_random_seed

from real_keras import needs_keras

N = 24


def _data(rng):
    """{name: (x, y)} for the models below."""
    return {
        "mlp": (rng.normal(size=(N, 6)).astype(np.float32), np.eye(3)[rng.integers(0, 3, N)]),
        "cnn": (rng.random((N, 28, 28, 1)).astype(np.float32), np.eye(10)[rng.integers(0, 10, N)]),
        "lstm": (rng.normal(size=(N, 9, 1)).astype(np.float32),
                 rng.integers(0, 2, (N, 1)).astype(np.float32)),
        "mix": (rng.integers(0, 20, (N, 7)), rng.normal(size=(N, 1)).astype(np.float32)),
        "zoo": (rng.normal(size=(N, 10, 10, 1)).astype(np.float32), None),
        "rnn": (rng.normal(size=(N, 6, 2)).astype(np.float32), None),
    }


# The MLP again with each other optimizer (and options): their slots in Keras's order.
OPTIMIZERS = {"nadam": "O.Nadam(0.01)", "amsgrad": "O.Adam(0.01, amsgrad=True)",
              "centered": "O.RMSprop(0.005, momentum=0.5, centered=True)",
              "adagrad": "O.Adagrad(0.05)", "adadelta": "O.Adadelta(1.0)",
              "adamax": "O.Adamax(0.01)", "adamw": "O.AdamW(0.01, weight_decay=0.01)",
              "schedule": "O.Adam(O.schedules.ExponentialDecay(0.01, 4, 0.5))"}


def _with_optimizer_variants(data):
    return {**data, **{f"mlp_{k}": data["mlp"] for k in OPTIMIZERS}}


# The same architectures, in neuraxis and in Keras code (for Keras's own files).
def _ours():
    return {
        "mlp": (Sequential([L.Input((6,)), L.Dense(16, activation="relu"),
                            L.Dense(3, activation="softmax")]),
                Adam(0.01), "categorical_crossentropy"),
        "cnn": (Sequential([L.Input((28, 28, 1)), L.Conv2D(32, (3, 3), activation="relu"),
                            L.MaxPooling2D((2, 2)), L.Conv2D(64, (3, 3), activation="relu"),
                            L.MaxPooling2D((2, 2)), L.Flatten(), L.Dense(128, activation="relu"),
                            L.Dense(10, activation="softmax")]),
                SGD(0.05, momentum=0.9), "categorical_crossentropy"),
        "lstm": (Sequential([L.LSTM(50, input_shape=(None, 1)), L.Dense(1, activation="sigmoid")]),
                 RMSprop(0.005, momentum=0.5), "binary_crossentropy"),
        "mix": (Sequential([L.Input((7,)), L.Embedding(20, 4),
                            L.Bidirectional(L.GRU(3, return_sequences=True)),
                            L.TimeDistributed(L.Dense(5)), L.GRU(4), L.BatchNormalization(),
                            L.Dense(1)]), Adam(0.01), "mse"),
        "zoo": (Sequential([L.Input((10, 10, 1)), L.Conv2D(3, 3, padding="same"),
                            L.ZeroPadding2D(1), L.Cropping2D(((1, 2), (0, 1))), L.UpSampling2D(),
                            L.Conv2DTranspose(2, 3, strides=2), L.SpatialDropout2D(0.2),
                            L.AveragePooling2D(2), L.Activation("tanh"), L.Flatten(),
                            L.Reshape((-1, 4)), L.Conv1D(3, 2), L.MaxPooling1D(2),
                            L.GlobalAveragePooling1D(), L.Dropout(0.3), L.Dense(2)]), None, None),
        "rnn": (Sequential([L.Input((6, 2)), L.Masking(0.0), L.SimpleRNN(3, return_sequences=True),
                            L.Bidirectional(L.LSTM(2), merge_mode="sum"), L.Dense(2)]),
                None, None),
        **{f"mlp_{k}": (Sequential([L.Input((6,)), L.Dense(16, activation="relu"),
                                    L.Dense(3, activation="softmax")]),
                        eval(expr, {"O": optimizers}), "categorical_crossentropy")
           for k, expr in OPTIMIZERS.items()},
    }


KERAS_MODELS = """
def keras_models():
    return {
        "mlp": (keras.Sequential([keras.Input((6,)), L.Dense(16, activation="relu"),
                                  L.Dense(3, activation="softmax")]),
                keras.optimizers.Adam(0.01), "categorical_crossentropy"),
        "cnn": (keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, (3, 3), activation="relu"),
                                  L.MaxPooling2D((2, 2)), L.Conv2D(64, (3, 3), activation="relu"),
                                  L.MaxPooling2D((2, 2)), L.Flatten(),
                                  L.Dense(128, activation="relu"),
                                  L.Dense(10, activation="softmax")]),
                keras.optimizers.SGD(0.05, momentum=0.9), "categorical_crossentropy"),
        "lstm": (keras.Sequential([L.LSTM(50, input_shape=(None, 1)),
                                   L.Dense(1, activation="sigmoid")]),
                 keras.optimizers.RMSprop(0.005, momentum=0.5), "binary_crossentropy"),
        "mix": (keras.Sequential([keras.Input((7,)), L.Embedding(20, 4),
                                  L.Bidirectional(L.GRU(3, return_sequences=True)),
                                  L.TimeDistributed(L.Dense(5)), L.GRU(4),
                                  L.BatchNormalization(), L.Dense(1)]),
                keras.optimizers.Adam(0.01), "mse"),
        "zoo": (keras.Sequential([keras.Input((10, 10, 1)), L.Conv2D(3, 3, padding="same"),
                                  L.ZeroPadding2D(1), L.Cropping2D(((1, 2), (0, 1))),
                                  L.UpSampling2D(), L.Conv2DTranspose(2, 3, strides=2),
                                  L.SpatialDropout2D(0.2), L.AveragePooling2D(2),
                                  L.Activation("tanh"), L.Flatten(), L.Reshape((-1, 4)),
                                  L.Conv1D(3, 2), L.MaxPooling1D(2), L.GlobalAveragePooling1D(),
                                  L.Dropout(0.3), L.Dense(2)]), None, None),
        "rnn": (keras.Sequential([keras.Input((6, 2)), L.Masking(0.0),
                                  L.SimpleRNN(3, return_sequences=True),
                                  L.Bidirectional(L.LSTM(2), merge_mode="sum"), L.Dense(2)]),
                None, None),
        **{f"mlp_{k}": (keras.Sequential([keras.Input((6,)), L.Dense(16, activation="relu"),
                                          L.Dense(3, activation="softmax")]),
                        eval(expr, {"O": keras.optimizers}), "categorical_crossentropy")
           for k, expr in OPTIMIZERS.items()},
    }
"""

KERAS_SCRIPT = """
import os, sys, json, warnings
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, keras
from keras import layers as L
warnings.simplefilter("ignore")
keras.utils.set_random_seed(3)
d = sys.argv[1]
data = np.load(os.path.join(d, "data.npz"))
out = {}
OPTIMIZERS = """ + repr(OPTIMIZERS) + """
""" + KERAS_MODELS + """
for name, (km, opt, loss) in keras_models().items():
    x = data[name + "_x"]
    # 1. neuraxis's files, read by Keras
    m = keras.saving.load_model(os.path.join(d, f"ours_{name}.keras"))
    out[f"{name}_pred_of_ours"] = m.predict(x, verbose=0)
    w = keras.models.model_from_json(open(os.path.join(d, f"ours_{name}.json")).read())
    w.load_weights(os.path.join(d, f"ours_{name}.weights.h5"))
    out[f"{name}_pred_of_our_weights"] = w.predict(x, verbose=0)
    if opt is not None:
        y = data[name + "_y"]
        out[f"{name}_iterations_of_ours"] = np.array(int(m.optimizer.iterations))
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        for i, v in enumerate(m.get_weights()):
            out[f"{name}_ours_continued_{i}"] = v
    # 2. Keras's own files
    if opt is not None:
        km.compile(optimizer=opt, loss=loss)
        km.fit(x, data[name + "_y"], batch_size=8, epochs=1, shuffle=False, verbose=0)
    km.save(os.path.join(d, f"keras_{name}.keras"))
    km.save_weights(os.path.join(d, f"keras_{name}.weights.h5"))
    open(os.path.join(d, f"keras_{name}.json"), "w").write(km.to_json())
    out[f"{name}_keras_pred"] = km.predict(x, verbose=0)
    if opt is not None:
        km.fit(x, data[name + "_y"], batch_size=8, epochs=1, shuffle=False, verbose=0)
        for i, v in enumerate(km.get_weights()):
            out[f"{name}_keras_continued_{i}"] = v
np.savez(os.path.join(d, "keras_out.npz"), **out)
print("KERAS_OK")
"""


@pytest.fixture(scope="module")
def exchange(tmp_path_factory):
    """Our files -> one Keras run -> its results and files, plus our models."""
    d = tmp_path_factory.mktemp("exchange")
    set_random_seed(0)
    rng = np.random.default_rng(0)
    data = _with_optimizer_variants(_data(rng))
    ours = {}
    with pytest.warns(UserWarning, match="input_shape"):  # the lecture's LSTM(input_shape=)
        models = _ours()
    for name, (m, opt, loss) in models.items():
        x, y = data[name]
        if opt is not None:
            m.compile(optimizer=opt, loss=loss)
            m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        m.save(d / f"ours_{name}.keras")
        m.save_weights(d / f"ours_{name}.weights.h5")
        (d / f"ours_{name}.json").write_text(m.to_json())
        ours[name] = (m, m.predict(x, verbose=0))
    np.savez(d / "data.npz", **{f"{k}_x": v[0] for k, v in data.items()},
             **{f"{k}_y": v[1] for k, v in data.items() if v[1] is not None})
    env = dict(os.environ, KERAS_BACKEND="torch", OMP_NUM_THREADS="2")
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(KERAS_SCRIPT), str(d)],
                         capture_output=True, text=True, env=env, timeout=900)
    assert "KERAS_OK" in res.stdout, res.stderr[-4000:]
    return d, data, ours, dict(np.load(d / "keras_out.npz"))


NAMES = ["mlp", "cnn", "lstm", "mix", "zoo", "rnn"]
TRAINED = ["mlp", "cnn", "lstm", "mix"] + [f"mlp_{k}" for k in OPTIMIZERS]
OPTIMIZER_CLASS = {"mlp": "Adam", "cnn": "SGD", "lstm": "RMSprop", "mix": "Adam",
                   "mlp_nadam": "Nadam", "mlp_amsgrad": "Adam", "mlp_centered": "RMSprop",
                   "mlp_adagrad": "Adagrad", "mlp_adadelta": "Adadelta", "mlp_adamax": "Adamax",
                   "mlp_adamw": "AdamW", "mlp_schedule": "Adam"}


@needs_keras
@pytest.mark.parametrize("name", NAMES)
def test_keras_loads_our_files_to_our_predictions(exchange, name):
    _, _, ours, out = exchange
    ref = ours[name][1]
    assert_allclose(out[f"{name}_pred_of_ours"], ref, rtol=1e-5, atol=1e-6)
    assert_allclose(out[f"{name}_pred_of_our_weights"], ref, rtol=1e-5, atol=1e-6)


@needs_keras
@pytest.mark.parametrize("name", TRAINED)
def test_keras_continues_training_from_our_optimizer_state(exchange, name):
    _, data, ours, out = exchange
    m = ours[name][0]
    assert int(out[f"{name}_iterations_of_ours"]) == m.optimizer.iterations == 2 * 3
    x, y = data[name]
    m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for i, w in enumerate(m.get_weights()):
        assert_allclose(w, out[f"{name}_ours_continued_{i}"], rtol=2e-4, atol=2e-5,
                        err_msg=f"{name} weight {i}")


@needs_keras
@pytest.mark.parametrize("name", NAMES)
def test_we_load_keras_files_to_its_predictions(exchange, name):
    d, data, _, out = exchange
    x = data[name][0]
    m = load_model(d / f"keras_{name}.keras")
    assert_allclose(m.predict(x, verbose=0), out[f"{name}_keras_pred"], rtol=1e-5, atol=1e-6)
    fresh = model_from_json((d / f"keras_{name}.json").read_text())
    fresh.load_weights(d / f"keras_{name}.weights.h5")
    assert_allclose(fresh.predict(x, verbose=0), out[f"{name}_keras_pred"], rtol=1e-5,
                    atol=1e-6)


@needs_keras
@pytest.mark.parametrize("name", TRAINED)
def test_we_continue_training_from_keras_optimizer_state(exchange, name):
    d, data, _, out = exchange
    x, y = data[name]
    m = load_model(d / f"keras_{name}.keras")
    cfg = json.loads((d / f"keras_{name}.json").read_text())
    assert m.compiled and m.optimizer.iterations == 3
    assert type(m.optimizer).__name__ == OPTIMIZER_CLASS[name]
    assert cfg["class_name"] == "Sequential"
    m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for i, w in enumerate(m.get_weights()):
        assert_allclose(w, out[f"{name}_keras_continued_{i}"], rtol=2e-4, atol=2e-5,
                        err_msg=f"{name} weight {i}")
