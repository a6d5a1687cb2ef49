"""Keras front: callbacks, the progress bar and Ctrl-C during fit."""
import csv
import io
import os
import re
import signal
import threading

import numpy as np
import pytest

from neuraxis import optimizers
from neuraxis._keras.session import clear_session, set_random_seed
from neuraxis._keras.progbar import Progbar
from neuraxis.callbacks import (CSVLogger, Callback, EarlyStopping, LambdaCallback,
                                LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau,
                                TerminateOnNaN)
from neuraxis.layers import Dense, Input
from neuraxis.models import Sequential, load_model


@pytest.fixture(autouse=True)
def _fresh_session():
    clear_session()
    set_random_seed(0)
    yield


def data(n=64, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64)


def model(metrics=("accuracy",), optimizer="adam"):
    m = Sequential([Input((4,)), Dense(8, activation="relu"), Dense(2, activation="softmax")])
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return m


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.events, self.weights = [], []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_train_batch_begin(self, batch, logs=None):
        self.events.append(("batch_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, sorted(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, list(logs)))
        self.weights.append(self.model.get_weights())

    def on_train_end(self, logs=None):
        self.events.append(("train_end",))


def test_hooks_run_in_keras_order_with_running_logs():
    X, y = data(40)
    rec = Recorder()
    m = model()
    m.fit(X, y, batch_size=16, epochs=2, validation_split=0.2, callbacks=[rec], verbose=0)
    ev = rec.events
    assert ev[0] == ("train_begin",) and ev[-1] == ("train_end",)
    epoch0 = ev[1:ev.index(("epoch_begin", 1))]
    assert epoch0 == [("epoch_begin", 0),
                      ("batch_begin", 0), ("batch_end", 0, ["accuracy", "loss"]),
                      ("batch_begin", 1), ("batch_end", 1, ["accuracy", "loss"]),
                      ("epoch_end", 0, ["accuracy", "loss", "val_accuracy", "val_loss"])]


def test_stop_training_from_a_callback():
    class StopAfterOne(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    X, y = data()
    h = model().fit(X, y, epochs=10, callbacks=[StopAfterOne()], verbose=0)
    assert h.epoch == [0]


def test_early_stopping_patience_and_restore_best_weights(capsys):
    X, y = data()
    rec = Recorder()
    # min_delta so large that only the first epoch counts as an improvement
    es = EarlyStopping(monitor="loss", min_delta=10.0, patience=2, verbose=1,
                       restore_best_weights=True)
    m = model()
    h = m.fit(X, y, epochs=20, callbacks=[rec, es], verbose=0)
    assert h.epoch == [0, 1, 2] and es.stopped_epoch == 2 and es.best_epoch == 0
    for a, b in zip(m.get_weights(), rec.weights[0]):
        np.testing.assert_array_equal(a, b)
    out = capsys.readouterr().out
    assert "Epoch 3: early stopping\n" in out
    assert "Restoring model weights from the end of the best epoch: 1.\n" in out


def test_early_stopping_modes_and_missing_monitor():
    X, y = data()
    es = EarlyStopping(monitor="val_accuracy")
    model().fit(X, y, epochs=1, validation_split=0.25, callbacks=[es], verbose=0)
    assert es.monitor_op is np.greater  # accuracy is maximised
    with pytest.warns(UserWarning, match="not available. Available metrics are: accuracy,loss"):
        model().fit(X, y, epochs=1, callbacks=[EarlyStopping()], verbose=0)
    with pytest.raises(ValueError, match="maximized or minimized"):
        model().fit(X, y, epochs=1, callbacks=[EarlyStopping(monitor="whatever")], verbose=0)


def test_model_checkpoint_formats_paths_and_saves_best(tmp_path):
    X, y = data()
    path = str(tmp_path / "ckpt-{epoch:02d}-{loss:.2f}.keras")
    m = model()
    h = m.fit(X, y, epochs=2, callbacks=[ModelCheckpoint(path, monitor="loss")], verbose=0)
    names = sorted(os.listdir(tmp_path))
    assert names == [f"ckpt-{e + 1:02d}-{h.history['loss'][e]:.2f}.keras" for e in range(2)]
    last = load_model(tmp_path / names[1])
    np.testing.assert_array_equal(last.predict(X, verbose=0), m.predict(X, verbose=0))

    best = tmp_path / "best.neuraxis"
    cb = ModelCheckpoint(best, monitor="loss", save_best_only=True, verbose=1)
    model().fit(X, y, epochs=3, callbacks=[cb], verbose=0)
    assert best.exists() and cb.best == pytest.approx(min(cb.model.history.history["loss"]))
    weights = tmp_path / "w.weights.npz"
    model().fit(X, y, epochs=1, callbacks=[ModelCheckpoint(weights, save_weights_only=True)],
                verbose=0)
    assert weights.exists()
    with pytest.raises(ValueError, match="must end in `.neuraxis` or `.keras`"):
        ModelCheckpoint(tmp_path / "x.h5")
    with pytest.raises(ValueError, match=".weights.npz"):
        ModelCheckpoint(tmp_path / "x.keras", save_weights_only=True)


def test_reduce_lr_on_plateau_logs_and_reduces():
    X, y = data()
    m = model(optimizer=optimizers.Adam(learning_rate=0.01))
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0, min_lr=0.002)
    h = m.fit(X, y, epochs=5, callbacks=[cb], verbose=0)
    assert list(h.history) == ["accuracy", "loss", "learning_rate"]
    # epoch 0 improves; then every epoch waits 1 -> halve, floored at min_lr
    assert h.history["learning_rate"] == pytest.approx([0.01, 0.01, 0.005, 0.0025, 0.002])
    assert m.optimizer.learning_rate == pytest.approx(0.002)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        ReduceLROnPlateau(factor=2)


def test_learning_rate_scheduler_drives_the_engine():
    X, y = data()
    m = model(optimizer=optimizers.SGD(learning_rate=0.1))
    h = m.fit(X, y, epochs=3, verbose=0,
              callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)])
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    # A learning rate of 0 must freeze the weights: proof that the engine reads it each epoch.
    m2 = model(optimizer="sgd")
    before = m2.get_weights()
    m2.fit(X, y, epochs=2, verbose=0, callbacks=[LearningRateScheduler(lambda epoch: 0.0)])
    for a, b in zip(before, m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="should be a float"):
        model().fit(X, y, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: "x")])


def test_csv_logger(tmp_path):
    X, y = data()
    path = tmp_path / "log.csv"
    h = model().fit(X, y, epochs=2, validation_split=0.25, callbacks=[CSVLogger(path)],
                    verbose=0)
    rows = list(csv.reader(path.read_text().splitlines()))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1"]
    assert float(rows[2][2]) == pytest.approx(h.history["loss"][1])
    # Without validation Keras still reserves val_ columns, filled with NA.
    model().fit(X, y, epochs=1, callbacks=[CSVLogger(path)], verbose=0)
    rows = list(csv.reader(path.read_text().splitlines()))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert rows[1][3:] == ["NA", "NA"]
    model().fit(X, y, epochs=1, callbacks=[CSVLogger(path, append=True)], verbose=0)
    assert len(list(csv.reader(path.read_text().splitlines()))) == 3  # appended, no second header


def test_terminate_on_nan(capsys):
    X, y = data()
    m = Sequential([Input((4,)), Dense(1)])
    m.compile(optimizer=optimizers.SGD(learning_rate=1e18), loss="mse")
    h = m.fit(X * 1e10, y, epochs=50, callbacks=[TerminateOnNaN()], verbose=0)
    assert len(h.epoch) < 50
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf"):
        m.fit(X * 1e10, y, epochs=5, callbacks=[TerminateOnNaN(raise_error=True)], verbose=0)


def test_lambda_callback():
    X, y = data()
    seen = []
    model().fit(X, y, epochs=2, verbose=0,
                callbacks=[LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))])
    assert seen == [0, 1]


def test_keyboard_interrupt_from_python_keeps_model_usable():
    X, y = data(256)

    class CtrlC(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.params and self.model.history is not None and batch == 2:
                raise KeyboardInterrupt

    m = model()
    with pytest.raises(KeyboardInterrupt):  # Keras lets it through
        m.fit(X, y, epochs=5, callbacks=[CtrlC()], verbose=0)
    assert m.history.epoch == [0] and m.stop_training
    assert np.isfinite(m.predict(X, verbose=0)).all()
    assert m.optimizer.iterations == 8 + 3  # 8 batches in epoch 1, 3 in epoch 2
    m.fit(X, y, epochs=1, verbose=0)  # and it trains again


def test_sigint_during_engine_training_stops_fit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 64)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    m = Sequential([Input((64,)), Dense(256, activation="relu"), Dense(2, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    # A CI job may run us with SIGINT ignored; an interactive session has Python's handler.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):  # raised by fit, as Keras, not the session
            m.fit(X, y, epochs=1000, batch_size=32, verbose=0)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert m.stop_training and m.optimizer.iterations < 1000 * 625
    assert np.isfinite(m.predict(X[:10], verbose=0)).all()


# --- progress bar -----------------------------------------------------------------------
LINE = re.compile(r"^3/3 ━{20} \d+s \d+(us|ms|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4}"
                  r"( - val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4})?$")


def test_verbose_1_in_a_log_file_is_plain_keras_text(capsys):
    X, y = data(96)  # 76 training rows after the split: 3 steps
    model().fit(X, y, epochs=2, verbose=1, validation_split=0.2)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out and "\b" not in out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert LINE.match(lines[1]) and LINE.match(lines[3]) and "val_loss" in lines[3]
    model().fit(X, y, epochs=1)  # verbose='auto' -> 1; no "Epoch" line for one epoch
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and re.match(r"^3/3 ━{20} ", lines[0])


def test_verbose_2_and_0(capsys):
    X, y = data(80)
    model().fit(X, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2"
    assert re.match(r"^3/3 - \d+s - \d+(us|ms|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4}$",
                    lines[1])
    m = model()
    m.fit(X, y, epochs=2, verbose=0)
    m.evaluate(X, y, verbose=0)
    m.predict(X, verbose=0)
    assert capsys.readouterr().out == ""


def test_predict_and_evaluate_bars(capsys):
    X, y = data(80)
    m = model()
    m.predict(X)
    assert re.match(r"^3/3 ━{20} \d+s \d+(us|ms|s)/step\n$", capsys.readouterr().out)
    m.evaluate(X, y, batch_size=40)
    assert re.match(r"^2/2 ━{20} \d+s \d+(us|ms|s)/step - accuracy: \d\.\d{4} - loss: "
                    r"\d\.\d{4}\n$", capsys.readouterr().out)


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progbar_in_a_terminal_redraws_in_place_and_throttles():
    out = FakeTTY()
    bar = Progbar(100, stream=out)
    for i in range(1, 100):
        bar.update(i, [("loss", 0.5)])
    bar.update(100, [("loss", 0.25)])
    text = out.getvalue()
    assert text.count("\r") == 2  # step 1, then (throttled) only the final one
    # the redraw pads with spaces when it is shorter than the line it overwrites (Keras too)
    assert re.search(r" - loss: 0\.2500 *\n$", text) and "\x1b[32m" in text
    assert "\n" not in text[:-1]
    final = text.split("\r")[-1]
    plain = re.sub(r"\x1b\[\d+m", "", final)
    assert re.match(r"^100/100 ━{20} \d+s \d+(us|ms|s)/step - loss: 0\.2500 *\n$", plain)


def test_progbar_formats_small_values_and_eta():
    out = io.StringIO()
    bar = Progbar(4, verbose=2, stream=out)
    bar.update(4, [("loss", 0.0001234)])
    assert out.getvalue().endswith(" - loss: 1.2340e-04\n")
    tty = FakeTTY()
    slow = Progbar(10, stream=tty)
    slow._start -= 200  # pretend the first step took 200 s
    slow.update(1)
    assert "\x1b[1m30:00\x1b[0m" in tty.getvalue()  # ETA 9 x 200 s


def test_fit_in_a_terminal_and_in_jupyter(monkeypatch):
    import sys
    import types

    X, y = data(96)
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    model().fit(X, y, epochs=2, verbose=1)
    text = tty.getvalue()
    assert text.startswith("Epoch 1/2\n\r\x1b[1m1/3\x1b[0m ") and text.endswith("\n")
    assert "\r\x1b[1m3/3\x1b[0m " in text
    assert "\x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m" in text  # the finished, green bar

    # A Jupyter kernel's stdout is no tty, but it renders \r and colours: redraw there too.
    stream_cls = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})
    out = stream_cls()
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setattr(sys, "stdout", out)
    model().fit(X, y, epochs=1, verbose=1)
    assert out.getvalue().startswith("\r\x1b[1m1/3\x1b[0m ")
