"""Keras users' code, unchanged but for the import: typical Keras 3 snippets (keras.io
guides and examples, the Keras docs, popular tutorials), each run twice in forked
subprocesses (`snippet_runner.py`): once with real Keras 3 (torch backend, when installed)
and once with its `import keras` line replaced by `import neuraxis as keras`.

Datasets are replaced by random arrays of the same shapes and dtypes (no downloads). Each
snippet prints one JSON line of what a user observes (shapes, history keys, parameter
counts, summary numbers, file names, error types, and numbers after copying weights drawn
from a fixed NumPy seed); the test compares neuraxis's line with Keras's: exactly, except
the keys a snippet lists as numeric, which compare within a tolerance (float32 arithmetic
in a different order). Without Keras the neuraxis runs still have to succeed, and their
lines are compared with what real Keras printed here (`keras_user_snippets.json`).

Example (one snippet by hand):

    python tests/snippet_runner.py neuraxis snippets.json out/
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from real_keras import HAVE_KERAS, needs_keras

RUNNER = str(Path(__file__).with_name("snippet_runner.py"))

# Every snippet starts with `import keras` and ends by printing one JSON object.
# name -> (code, keys compared within tolerance, xfail reason or None)
SNIPPETS = {}


def snippet(name, numeric=(), xfail=None):
    def register(code):
        SNIPPETS[name] = (textwrap.dedent(code).lstrip(), tuple(numeric), xfail)
    return register


# keras.io/examples/vision/mnist_convnet's MLP sibling (the classic mnist_mlp.py)
snippet("mnist_mlp", numeric=["score_before", "val_loss_finite"])("""
    import keras
    import json
    import numpy as np

    # (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (600, 28, 28)).astype("uint8")
    y_train = rng.integers(0, 10, 600).astype("uint8")
    x_train = x_train.reshape(600, 784).astype("float32") / 255
    num_classes = 10
    y_train = keras.utils.to_categorical(y_train, num_classes)

    model = keras.Sequential()
    model.add(keras.Input(shape=(784,)))
    model.add(keras.layers.Dense(64, activation="relu"))
    model.add(keras.layers.Dropout(0.2))
    model.add(keras.layers.Dense(64, activation="relu"))
    model.add(keras.layers.Dropout(0.2))
    model.add(keras.layers.Dense(num_classes, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(),
                  metrics=["accuracy"])
    model.set_weights([rng.uniform(-0.1, 0.1, w.shape).astype("float32")
                       for w in model.get_weights()])
    score_before = model.evaluate(x_train, y_train, verbose=0)
    history = model.fit(x_train, y_train, batch_size=128, epochs=2, verbose=0,
                        validation_split=0.1)
    score = model.evaluate(x_train, y_train, verbose=0)
    print(json.dumps({
        "y_shape": y_train.shape, "y_dtype": str(y_train.dtype),
        "history_keys": sorted(history.history), "params": history.params,
        "epochs": history.epoch, "score_len": len(score), "count_params": model.count_params(),
        "names": [layer.name for layer in model.layers], "metrics_names": model.metrics_names,
        "pred_shape": model.predict(x_train[:5], verbose=0).shape,
        "score_before": score_before,
        "val_loss_finite": bool(np.isfinite(history.history["val_loss"]).all()),
    }, default=float))
""")

# keras.io/examples/vision/mnist_convnet
snippet("mnist_convnet_summary", numeric=["pred"])("""
    import keras
    import io, json, re, contextlib
    import numpy as np

    input_shape = (28, 28, 1)
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        model.summary()
    text = buf.getvalue()
    rng = np.random.default_rng(1)
    x = rng.random((4, 28, 28, 1)).astype("float32")
    model.set_weights([rng.uniform(-0.2, 0.2, w.shape).astype("float32")
                       for w in model.get_weights()])
    pred = model.predict(x, verbose=0)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    y = keras.utils.to_categorical(rng.integers(0, 10, 4), 10)
    history = model.fit(x, y, batch_size=2, epochs=1, validation_split=0.5, verbose=0)
    print(json.dumps({
        "totals": re.findall(r"(Total|Trainable|Non-trainable) params: ([\\d,]+)", text),
        "summary": text.splitlines(),  # the whole table, character for character
        "layer_params": [layer.count_params() for layer in model.layers],
        "output_shape": model.output_shape,
        "layer_outputs": [list(layer.output.shape) for layer in model.layers],
        "history_keys": sorted(history.history),
        "pred": pred.tolist(),
    }))
""")


# keras.io/examples/nlp/bidirectional_lstm_imdb's ancestor, the imdb_lstm example
snippet("imdb_lstm", numeric=["pred"])("""
    import keras
    import json
    import numpy as np

    max_features = 1000
    maxlen = 80
    # (x_train, y_train), _ = keras.datasets.imdb.load_data(num_words=max_features)
    rng = np.random.default_rng(2)
    x_train = [list(rng.integers(1, max_features, rng.integers(5, 120))) for _ in range(64)]
    y_train = rng.integers(0, 2, 64)
    x_train = keras.utils.pad_sequences(x_train, maxlen=maxlen)

    model = keras.Sequential()
    model.add(keras.layers.Embedding(max_features, 32))
    model.add(keras.layers.LSTM(32, dropout=0.2, recurrent_dropout=0.2))
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=1,
                        validation_data=(x_train[:16], y_train[:16]), verbose=0)
    model.set_weights([rng.uniform(-0.1, 0.1, w.shape).astype("float32")
                       for w in model.get_weights()])
    print(json.dumps({
        "x_shape": x_train.shape, "x_dtype": str(x_train.dtype),
        "zeros": int((x_train == 0).sum()), "row0_tail": x_train[0][-3:].tolist(),
        "short_row": keras.utils.pad_sequences([[1, 2, 3]], maxlen=5).tolist(),
        "history_keys": sorted(history.history),
        "weights": [list(w.shape) for w in model.get_weights()],
        "count_params": model.count_params(),
        "pred": model.predict(x_train[:8], verbose=0).tolist(),
    }))
""")

# keras.io/examples/nlp/bidirectional_lstm_imdb, with GRUs
snippet("gru_bidirectional", numeric=["pred", "loss"])("""
    import keras
    import json
    import numpy as np

    inputs = keras.Input(shape=(None,), dtype="int32")
    model = keras.Sequential([
        inputs,
        keras.layers.Embedding(500, 16),
        keras.layers.Bidirectional(keras.layers.GRU(16, return_sequences=True)),
        keras.layers.Bidirectional(keras.layers.GRU(8)),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    rng = np.random.default_rng(3)
    x = rng.integers(0, 500, (32, 12))
    y = rng.integers(0, 2, 32)
    model.set_weights([rng.uniform(-0.2, 0.2, w.shape).astype("float32")
                       for w in model.get_weights()])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    print(json.dumps({
        "names": [layer.name for layer in model.layers],
        "weights": [list(w.shape) for w in model.get_weights()],
        "layer_params": [layer.count_params() for layer in model.layers],
        "loss": history.history["loss"],
        "pred": model.predict(x[:4], verbose=0).tolist(),
    }))
""")

# the time-series tutorials' SimpleRNN on sliding windows of a sine
snippet("simple_rnn_timeseries", numeric=["loss", "pred_20", "pred_7"])("""
    import keras
    import json
    import warnings
    import numpy as np

    series = np.sin(np.arange(300) * 0.1).astype("float32")
    window = 20
    X = np.stack([series[i:i + window] for i in range(200)])[..., None]
    y = series[window:window + 200]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.Sequential([
            keras.layers.SimpleRNN(16, input_shape=(None, 1)),
            keras.layers.Dense(1),
        ])
    rng = np.random.default_rng(4)
    model.set_weights([rng.uniform(-0.3, 0.3, w.shape).astype("float32")
                       for w in model.get_weights()])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse",
                  metrics=["mae"])
    history = model.fit(X, y, epochs=3, batch_size=32, shuffle=False, verbose=0)
    print(json.dumps({
        "warnings": [w.category.__name__ for w in caught if "input_shape" in str(w.message)],
        "input_shape": model.input_shape, "output_shape": model.output_shape,
        "history_keys": sorted(history.history), "loss": history.history["loss"],
        "pred_20": model.predict(X[:3], verbose=0).tolist(),
        "pred_7": model.predict(X[:3, :7], verbose=0).tolist(),
    }))
""")

# keras.io/guides/training_with_built_in_methods: EarlyStopping
snippet("early_stopping", numeric=["val_loss", "restored_val_loss", "best"])("""
    import keras
    import json
    import numpy as np

    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")          # pure noise: it overfits
    x_val = rng.normal(size=(32, 8)).astype("float32")
    y_val = rng.normal(size=(32, 1)).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(1)])
    model.set_weights([rng.uniform(-0.3, 0.3, w.shape).astype("float32")
                       for w in model.get_weights()])
    model.compile(optimizer=keras.optimizers.Adam(0.03), loss="mse")
    early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2,
                                          restore_best_weights=True, verbose=0)
    history = model.fit(x, y, epochs=50, batch_size=16, shuffle=False, verbose=0,
                        validation_data=(x_val, y_val), callbacks=[early])
    print(json.dumps({
        "epochs_run": len(history.history["loss"]), "stopped_epoch": early.stopped_epoch,
        "best_epoch": early.best_epoch, "best": early.best, "wait": early.wait,
        "val_loss": history.history["val_loss"],
        "restored_val_loss": model.evaluate(x_val, y_val, verbose=0),
    }, default=float))
""")

# keras.io/api/callbacks/model_checkpoint
snippet("model_checkpoint")("""
    import keras
    import json, os
    import numpy as np

    rng = np.random.default_rng(6)
    x = rng.normal(size=(48, 5)).astype("float32")
    y = (x.sum(1) > 0).astype("float32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    callbacks = [
        keras.callbacks.ModelCheckpoint("best.keras", monitor="val_loss", save_best_only=True),
        keras.callbacks.ModelCheckpoint("ckpt_{epoch:02d}.weights.h5", save_weights_only=True),
    ]
    model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, callbacks=callbacks,
              verbose=0)
    best = keras.models.load_model("best.keras")
    twin = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(1, activation="sigmoid")])
    twin.load_weights("ckpt_03.weights.h5")
    print(json.dumps({
        "files": sorted(os.listdir(".")),
        "best_compiled": best.compiled, "best_optimizer": type(best.optimizer).__name__,
        "best_layers": [type(layer).__name__ for layer in best.layers],
        "last_equals_model": bool(np.allclose(twin.predict(x, verbose=0),
                                              model.predict(x, verbose=0))),
    }))
""")

# ReduceLROnPlateau + CSVLogger, as in the callbacks API pages
snippet("reduce_lr_csv_logger", numeric=["lr", "learning_rate"])("""
    import keras
    import csv, json
    import numpy as np

    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = rng.normal(size=(40, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse",
                  metrics=["mae"])
    reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1,
                                                  min_delta=100.0, min_lr=0.02)
    history = model.fit(x, y, epochs=6, batch_size=8, verbose=0,
                        callbacks=[reduce_lr, keras.callbacks.CSVLogger("training.log")])
    with open("training.log") as f:
        rows = list(csv.reader(f))
    print(json.dumps({
        "history_keys": sorted(history.history),
        "learning_rate": history.history.get("learning_rate"),
        "lr": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
        "csv_header": rows[0], "csv_rows": len(rows) - 1,
        "csv_epochs": [r[0] for r in rows[1:]],
    }))
""")

# keras.io/guides/writing_your_own_callbacks
snippet("custom_callback")("""
    import keras
    import json
    import numpy as np

    events = []

    class CustomCallback(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            events.append(["train_begin", sorted(logs or {})])

        def on_epoch_begin(self, epoch, logs=None):
            events.append(["epoch_begin", epoch])

        def on_epoch_end(self, epoch, logs=None):
            events.append(["epoch_end", epoch, sorted(logs)])

        def on_train_batch_end(self, batch, logs=None):
            events.append(["batch_end", batch, sorted(logs)])

        def on_train_end(self, logs=None):
            events.append(["train_end", sorted(logs)])
            events.append(["model", type(self.model).__name__, sorted(self.params)])

    class LossHistory(keras.callbacks.Callback):
        def on_train_begin(self, logs={}):
            self.losses = []

        def on_batch_end(self, batch, logs={}):
            self.losses.append(logs.get("loss"))

    rng = np.random.default_rng(8)
    x = rng.normal(size=(20, 3)).astype("float32")
    y = rng.normal(size=(20, 1)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="rmsprop", loss="mean_squared_error", metrics=["mean_absolute_error"])
    history = LossHistory()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.2,
              callbacks=[CustomCallback(), history])
    print(json.dumps({"events": events, "batch_losses": len(history.losses)}))
""")

# keras.io/guides/serialization_and_saving
snippet("save_and_load_keras", numeric=["pred", "loaded_pred", "eval"])("""
    import keras
    import json
    import numpy as np

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(12, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(9)
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.002),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.normal(size=(30, 6)).astype("float32")
    y = rng.integers(0, 3, 30)
    model.fit(x, y, epochs=1, shuffle=False, verbose=0)
    model.save("m.keras")
    np.save("x.npy", x)
    np.save("pred.npy", model.predict(x, verbose=0))
    loaded = keras.models.load_model("m.keras")
    print(json.dumps({
        "pred": model.predict(x[:4], verbose=0).tolist(),
        "loaded_pred": loaded.predict(x[:4], verbose=0).tolist(),
        "optimizer": type(loaded.optimizer).__name__,
        "iterations": int(loaded.optimizer.iterations),
        "learning_rate": round(float(loaded.optimizer.learning_rate), 6),
        # as JSON: Keras's own reloaded config has a list where the original has a tuple
        "config_equal": json.dumps(loaded.get_config()) == json.dumps(model.get_config()),
        "eval": loaded.evaluate(x, y, verbose=0),
    }, default=float))
""")

# the file the other front wrote by save_and_load_keras, loaded here (both directions)
snippet("keras_file_crossload", numeric=["max_abs_diff"])("""
    import keras
    import json
    import numpy as np

    model = keras.models.load_model("m.keras")
    x = np.load("x.npy")
    diff = np.abs(model.predict(x, verbose=0) - np.load("pred.npy")).max()
    model.fit(x, np.zeros(len(x)), epochs=1, verbose=0)
    print(json.dumps({
        "names": [type(layer).__name__ for layer in model.layers],
        "optimizer": type(model.optimizer).__name__, "compiled": model.compiled,
        "max_abs_diff": float(diff) if diff > 1e-5 else 0.0,
    }))
""")

# keras.io/api/optimizers/learning_rate_schedules/exponential_decay
snippet("exponential_decay_adam", numeric=["loss", "schedule", "lr_after"])("""
    import keras
    import json
    import numpy as np

    lr_schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=1e-2, decay_steps=10, decay_rate=0.9)
    optimizer = keras.optimizers.Adam(learning_rate=lr_schedule)
    rng = np.random.default_rng(10)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [0.0]], "float32")).ravel()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(1)])
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    model.compile(optimizer=optimizer, loss="mse")
    history = model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    print(json.dumps({
        "loss": history.history["loss"], "iterations": int(optimizer.iterations),
        "schedule": [float(lr_schedule(step)) for step in (0, 10, 25)],
        "schedule_config": lr_schedule.get_config(),
        "lr_after": float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
    }))
""")

# keras.io/api/layers/regularizers
snippet("l2_regularizer", numeric=["eval", "loss"])("""
    import keras
    import json
    import numpy as np

    model = keras.Sequential([
        keras.Input((10,)),
        keras.layers.Dense(32, activation="relu",
                           kernel_regularizer=keras.regularizers.l2(0.01)),
        keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(l2=0.001),
                           bias_regularizer="l1"),
    ])
    rng = np.random.default_rng(11)
    model.set_weights([rng.uniform(-0.3, 0.3, w.shape).astype("float32")
                       for w in model.get_weights()])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(40, 10)).astype("float32")
    y = rng.normal(size=(40,)).astype("float32")
    ev = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=2, batch_size=10, shuffle=False, verbose=0)
    config = model.get_config()["layers"]
    print(json.dumps({
        "eval": ev, "loss": history.history["loss"],
        "regularizers": [[layer["config"].get(key) for key in
                          ("kernel_regularizer", "bias_regularizer")]
                         for layer in config if layer["class_name"] == "Dense"],
        "l2": keras.regularizers.l2(0.01).get_config(),
    }, default=float))
""")

# keras.io/api/metrics: AUC, Precision, Recall in compile
snippet("metrics_auc_precision_recall", numeric=["eval", "history"])("""
    import keras
    import json
    import numpy as np

    rng = np.random.default_rng(12)
    x = rng.normal(size=(100, 6)).astype("float32")
    y = (x[:, 0] + 0.5 * rng.normal(size=100) > 0).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(), keras.metrics.Precision(),
                           keras.metrics.Recall(), "accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=20, shuffle=False, verbose=0)
    print(json.dumps({
        "history": history.history,
        "eval": model.evaluate(x, y, verbose=0, return_dict=True),
    }))
""")

# a Python generator with steps_per_epoch (the Keras 2 fit_generator idiom, in Keras 3)
snippet("python_generator", numeric=["loss", "eval"])("""
    import keras
    import json
    import numpy as np

    rng = np.random.default_rng(13)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = (x @ np.array([1.0, -1.0, 2.0], "float32"))[:, None]

    def batch_generator(x, y, batch_size):
        while True:
            for i in range(0, len(x), batch_size):
                yield x[i:i + batch_size], y[i:i + batch_size]

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.set_weights([np.full((3, 1), 0.1, "float32"), np.zeros(1, "float32")])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    history = model.fit(batch_generator(x, y, 10), steps_per_epoch=4, epochs=3, verbose=0)
    print(json.dumps({
        "history_keys": sorted(history.history), "params": history.params,
        "loss": history.history["loss"],
        "eval": model.evaluate(batch_generator(x, y, 10), steps=4, verbose=0),
        "pred_shape": model.predict(batch_generator(x, y, 10), steps=2, verbose=0).shape,
    }))
""")

# keras.io/api/utils/python_utils/#pydataset-class
snippet("pydataset", numeric=["eval", "pred"])("""
    import keras
    import json, math
    import numpy as np

    class CIFAR10PyDataset(keras.utils.PyDataset):
        def __init__(self, x_set, y_set, batch_size, **kwargs):
            super().__init__(**kwargs)
            self.x, self.y = x_set, y_set
            self.batch_size = batch_size

        def __len__(self):
            return math.ceil(len(self.x) / self.batch_size)

        def __getitem__(self, idx):
            low = idx * self.batch_size
            high = min(low + self.batch_size, len(self.x))
            return self.x[low:high], self.y[low:high]

    rng = np.random.default_rng(14)
    x = rng.random((50, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, 50)
    ds = CIFAR10PyDataset(x, y, batch_size=16)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10, activation="softmax")])
    model.set_weights([rng.uniform(-0.3, 0.3, w.shape).astype("float32")
                       for w in model.get_weights()])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    ev = model.evaluate(ds, verbose=0)
    history = model.fit(ds, epochs=2, steps_per_epoch=3, verbose=0)
    print(json.dumps({
        "len": len(ds), "params": history.params, "history_keys": sorted(history.history),
        "eval": ev, "pred": model.predict(ds, verbose=0).shape,
        "workers": [ds.workers, ds.use_multiprocessing, ds.max_queue_size],
    }))
""")

# BatchNormalization between Dense and its activation (the usual placement)
snippet("batch_normalization", numeric=["pred", "moving"])("""
    import keras
    import json
    import numpy as np

    model = keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(16, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.Dense(1),
    ])
    rng = np.random.default_rng(15)
    model.set_weights([rng.uniform(0.1, 0.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x = rng.normal(size=(32, 5)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    bn = model.layers[1]
    print(json.dumps({
        "weights": len(bn.weights),
        "trainable": len(model.trainable_weights),
        "non_trainable": len(model.non_trainable_weights),
        "count_params": model.count_params(),
        "config": {k: bn.get_config()[k] for k in ("momentum", "epsilon", "axis", "center")},
        "moving": [w.tolist() for w in bn.get_weights()[2:]],
        "pred": model.predict(x[:4], verbose=0).tolist(),
    }))
""")

# model.get_config() / keras.Sequential.from_config (keras.io/guides/serialization_and_saving)
snippet("get_config_from_config")("""
    import keras
    import json

    model = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(8, activation="relu", name="hidden"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(2, activation="softmax"),
    ], name="classifier")
    config = model.get_config()
    new_model = keras.Sequential.from_config(config)
    print(json.dumps({
        "config": config,
        "roundtrip_equal": new_model.get_config() == config,
        "names": [layer.name for layer in new_model.layers], "built": new_model.built,
        "count_params": new_model.count_params(),
    }))
""")

# model.to_json() / keras.models.model_from_json
snippet("to_json_model_from_json")("""
    import keras
    import json

    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    json_string = model.to_json()
    new_model = keras.models.model_from_json(json_string)
    spec = json.loads(json_string)
    spec.pop("keras_version", None)
    print(json.dumps({
        "json": spec, "names": [layer.name for layer in new_model.layers],
        # as JSON: Keras's rebuilt config has lists where the original has tuples
        "same_config": json.dumps(new_model.get_config()) == json.dumps(model.get_config()),
        "count_params": new_model.count_params(),
    }))
""")

# model.layers[i]: names, weights, freezing then recompiling (the transfer-learning guide)
snippet("layer_access_freeze")("""
    import keras
    import json
    import numpy as np

    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(6, activation="relu", name="base"),
        keras.layers.Dense(3, activation="relu"),
        keras.layers.Dense(1),
    ])
    first = model.layers[0]
    kernel, bias = first.get_weights()
    model.layers[0].trainable = False
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(16)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    model.fit(x, y, epochs=2, verbose=0)
    after = model.get_layer("base").get_weights()
    print(json.dumps({
        "name": first.name, "second": model.layers[1].name,
        "shapes": [kernel.shape, bias.shape], "bias_zero": bool((bias == 0).all()),
        "frozen_unchanged": bool(np.array_equal(after[0], kernel)),
        "trainable_weights": len(model.trainable_weights),
        "non_trainable_weights": len(model.non_trainable_weights),
        "layer_trainable": [layer.trainable for layer in model.layers],
        "input_dim": first.input.shape[-1] if hasattr(first, "input") else None,
        "units": first.units, "activation": first.activation.__name__,
    }))
""")

# keras.utils.set_random_seed makes initial weights (and training) repeatable
snippet("set_random_seed_count_params")("""
    import keras
    import json
    import numpy as np

    def make():
        return keras.Sequential([keras.Input((7,)), keras.layers.Dense(5, activation="relu"),
                                 keras.layers.Dropout(0.5), keras.layers.Dense(2)])

    keras.utils.set_random_seed(812)
    a = make().get_weights()
    keras.utils.set_random_seed(812)
    b = make().get_weights()
    keras.utils.set_random_seed(813)
    c = make().get_weights()
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    try:
        unbuilt.count_params()
        error = None
    except Exception as e:
        error = type(e).__name__
    print(json.dumps({
        "same_seed_same": all(np.array_equal(p, q) for p, q in zip(a, b)),
        "other_seed_differs": not np.array_equal(a[0], c[0]),
        "count_params": make().count_params(), "unbuilt_count_params": error,
        "built": [make().built, unbuilt.built],
    }))
""")

# the classic mistakes: what they raise
snippet("classic_mistakes")("""
    import keras
    import json
    import numpy as np

    def error(f):
        try:
            f()
        except Exception as e:
            return type(e).__name__
        return None

    x = np.ones((8, 4), "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    out = {"fit_before_compile": error(lambda: model.fit(x, np.ones(8), verbose=0))}
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    out["wrong_feature_count"] = error(lambda: model.predict(np.ones((8, 5)), verbose=0))
    out["labels_not_one_hot"] = error(lambda: model.fit(x, np.ones((8, 1)), verbose=0))
    out["x_y_lengths"] = error(lambda: model.fit(x, np.ones((7, 3)), verbose=0))
    out["unknown_optimizer"] = error(lambda: model.compile(optimizer="adamm", loss="mse"))
    out["unknown_activation"] = error(lambda: keras.layers.Dense(3, activation="relu6x"))
    out["negative_units"] = error(lambda: keras.layers.Dense(-3))
    out["missing_file"] = error(lambda: keras.models.load_model("missing.keras"))
    out["bad_extension"] = error(lambda: model.save("model.pkl"))
    out["metrics_not_list"] = error(lambda: model.compile(loss="mse", metrics="mae"))
    print(json.dumps(out))
""")


# a hand-written loop over batches (train_on_batch / test_on_batch / predict_on_batch)
snippet("train_on_batch_loop", numeric=["losses", "test", "pred"])("""
    import keras
    import json
    import numpy as np

    rng = np.random.default_rng(17)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.integers(0, 2, (32, 1)).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy",
                  metrics=["accuracy"])
    losses = []
    for epoch in range(2):
        for i in range(0, 32, 8):
            losses.append(model.train_on_batch(x[i:i + 8], y[i:i + 8]))
    print(json.dumps({
        "losses": losses, "test": model.test_on_batch(x, y, return_dict=True),
        "pred": model.predict_on_batch(x[:3]).tolist(),
        "iterations": int(model.optimizer.iterations),
    }, default=float))
""")

# LearningRateScheduler and LambdaCallback, Sequential.pop() / add() (keras.io API pages)
snippet("scheduler_lambda_pop", numeric=["lr"])("""
    import keras
    import json
    import numpy as np

    def scheduler(epoch, lr):
        if epoch < 2:
            return lr
        return lr * 0.5

    seen = []
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(18)
    x, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 1))
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[
        keras.callbacks.LearningRateScheduler(scheduler),
        keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))])
    model.pop()
    model.add(keras.layers.Dense(2, activation="softmax", name="head"))
    print(json.dumps({
        "history_keys": sorted(history.history), "lr": history.history["learning_rate"],
        "seen": seen, "layers": [layer.name for layer in model.layers],
        "output_shape": model.output_shape, "count_params": model.count_params(),
    }))
""")


# a layer's weights are variables with names and paths (the custom-layer guides print them)
snippet("layer_weights_variables", xfail="layer.weights are the float32 NumPy arrays the "
        "engine updates in place, not Keras Variables (no .name / .path / .assign)")("""
    import keras
    import json

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="dense"),
                              keras.layers.BatchNormalization(name="bn")])
    print(json.dumps({
        "names": [w.name for w in model.weights], "paths": [w.path for w in model.weights],
        "trainable": [w.trainable for w in model.weights],
    }))
""")

# an unknown loss name: Keras accepts it in compile and raises in fit
snippet("unknown_loss_name", xfail="neuraxis checks the loss name in compile (a ValueError "
        "listing the valid names) where Keras defers it to fit")("""
    import keras
    import json
    import numpy as np

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    stages = []
    try:
        model.compile(optimizer="adam", loss="mse_typo")
        stages.append("compiled")
        model.fit(np.ones((8, 4)), np.ones((8, 3)), verbose=0)
    except Exception as e:
        stages.append(type(e).__name__)
    print(json.dumps({"stages": stages}))
""")


# validation_split above 1, a typo for a percentage
snippet("validation_split_above_one", xfail="Keras 3.15 accepts validation_split=1.5 (it "
        "trains on x[:-n/2] and validates on the rest); neuraxis raises ValueError")("""
    import keras
    import json
    import numpy as np

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    try:
        history = model.fit(np.ones((8, 4)), np.ones((8, 3)), validation_split=1.5, verbose=0)
        result = sorted(history.history)
    except Exception as e:
        result = type(e).__name__
    print(json.dumps({"result": result}))
""")


# --- running and comparing -------------------------------------------------------------

def run_front(front, names, outdir):
    """Run the named snippets with one front; returns {name: (exit status, stdout, stderr)}."""
    outdir.mkdir(parents=True, exist_ok=True)
    spec = outdir / "snippets.json"
    spec.write_text(json.dumps({name: SNIPPETS[name][0] for name in names}))
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONWARNINGS="default")
    proc = subprocess.run([sys.executable, RUNNER, front, str(spec), str(outdir)],
                          capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = json.loads((outdir / "status.json").read_text())
    return {name: (status[name], (outdir / name / "stdout").read_text(),
                   (outdir / name / "stderr").read_text()) for name in names}


def result(runs, name):
    rc, out, err = runs[name]
    assert rc == 0, f"snippet {name} failed:\n{err[-4000:]}"
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"snippet {name} printed no JSON line:\n{out[-2000:]}"
    return json.loads(lines[-1])


PEER = ("keras_file_crossload",)  # these load the file the other front wrote
MAIN = [name for name in SNIPPETS if name not in PEER]


# What real Keras 3.15 (torch) printed for every snippet, for machines without it:
# `python tests/test_keras_user_snippets.py --record` rewrites it.
RECORDED = Path(__file__).with_name("keras_user_snippets.json")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("snippets")
    ours = run_front("neuraxis", MAIN, root / "neuraxis")
    theirs = run_front("keras", MAIN, root / "keras") if HAVE_KERAS else None
    return {"root": root, "neuraxis": ours, "keras": theirs}


def keras_said(runs, name):
    if runs["keras"] is not None:
        return result(runs["keras"], name)
    return json.loads(RECORDED.read_text())[name]


def same(a, b, numeric, path=""):
    """a == b, recursively; numbers under a numeric key within float32 round-off."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            same(a[key], b[key], numeric or key in NUMERIC_NOW, f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}\n{a}\n{b}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, numeric, f"{path}[{i}]")
    elif numeric and isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=path)
    else:
        assert a == b, f"{path}: neuraxis {a!r} != keras {b!r}"


NUMERIC_NOW = set()


def compare(name, ours, theirs):
    numeric = SNIPPETS[name][1]
    NUMERIC_NOW.clear()
    NUMERIC_NOW.update(numeric)
    same(ours, theirs, False, name)


def params(names):
    return [pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=SNIPPETS[name][2])]
                         if SNIPPETS[name][2] else []) for name in names]


@pytest.mark.parametrize("name", params(MAIN))
def test_snippet(runs, name):
    compare(name, result(runs["neuraxis"], name), keras_said(runs, name))


def test_recorded_answers_cover_every_snippet():
    assert sorted(json.loads(RECORDED.read_text())) == sorted(SNIPPETS)


@needs_keras
def test_each_front_loads_the_keras_file_the_other_wrote(runs):
    """Keras's m.keras in neuraxis, neuraxis's in Keras: same predictions, trainable."""
    root, name = runs["root"], "keras_file_crossload"
    got = {}
    for front, other in (("neuraxis", "keras"), ("keras", "neuraxis")):
        folder = root / f"{front}_peer" / name
        folder.mkdir(parents=True)
        for file in ("m.keras", "x.npy", "pred.npy"):
            shutil.copy(root / other / "save_and_load_keras" / file, folder / file)
        got[front] = result(run_front(front, PEER, folder.parent), name)
    assert got["neuraxis"]["max_abs_diff"] == 0.0
    compare(name, got["neuraxis"], got["keras"])


def record():
    """Run every snippet with real Keras and store its JSON lines (RECORDED)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        runs = run_front("keras", MAIN, Path(tmp) / "main")
        said = {name: result(runs, name) for name in MAIN}
        peer = Path(tmp) / "peer" / PEER[0]
        peer.mkdir(parents=True)
        for file in ("m.keras", "x.npy", "pred.npy"):
            shutil.copy(Path(tmp) / "main" / "save_and_load_keras" / file, peer / file)
        said[PEER[0]] = result(run_front("keras", PEER, peer.parent), PEER[0])
    RECORDED.write_text(json.dumps(said, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    record()
