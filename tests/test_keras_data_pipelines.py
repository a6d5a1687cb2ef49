"""Keras front on data that is not one array: generators, iterators and PyDataset for fit /
evaluate / predict (against fit on the same batches as arrays, NumPy formulas, and real
Keras's epoch rules in a subprocess), refused inputs, Ctrl-C, progress lines in a file,
and ModelCheckpoint / EarlyStopping messages against real Keras's."""
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuraxis._keras.session import clear_session, set_random_seed
from neuraxis.callbacks import Callback, EarlyStopping, ModelCheckpoint
from neuraxis.layers import Dense, Input
from neuraxis.models import Sequential
from neuraxis.utils import PyDataset, Sequence

from real_keras import HAVE_KERAS, needs_keras  # noqa: F401

RAN_OUT = "Your input ran out of data"
BS, N = 8, 40


@pytest.fixture(autouse=True)
def _fresh_session():
    clear_session()
    set_random_seed(0)
    yield


def xy(n=N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    return X, (X @ np.array([[1.0], [2.0], [-1.0]], np.float32) + 0.5).astype(np.float32)


def model(optimizer="adam"):
    set_random_seed(1)
    m = Sequential([Input((3,)), Dense(5, activation="tanh"), Dense(1)])
    m.compile(optimizer, "mse", metrics=["mae"])
    return m


def batches(X, Y, sw=None, repeat=1):
    for _ in range(repeat):
        for i in range(0, len(X), BS):
            yield ((X[i:i + BS], Y[i:i + BS]) if sw is None else
                   (X[i:i + BS], Y[i:i + BS], sw[i:i + BS]))


class Batches(PyDataset):
    def __init__(self, X, Y, **kwargs):
        super().__init__(**kwargs)
        self.X, self.Y, self.ends = X, Y, 0

    def __len__(self):
        return -(-len(self.X) // BS)

    def __getitem__(self, i):
        return self.X[i * BS:(i + 1) * BS], self.Y[i * BS:(i + 1) * BS]

    def on_epoch_end(self):
        self.ends += 1


def same_weights(a, b):
    for p, q in zip(a.get_weights(), b.get_weights()):
        assert_allclose(p, q, rtol=0, atol=0)


# --- same training as arrays ----------------------------------------------------------------
def test_generator_with_steps_per_epoch_trains_as_the_arrays():
    X, Y = xy()
    a = model()
    ha = a.fit(X, Y, batch_size=BS, epochs=3, shuffle=False, verbose=0)
    b = model()
    hb = b.fit(batches(X, Y, repeat=3), steps_per_epoch=5, epochs=3, shuffle=False, verbose=0)
    same_weights(a, b)
    assert_allclose(hb.history["loss"], ha.history["loss"], rtol=1e-6)
    assert b.optimizer.iterations == 15


def test_pydataset_and_sequence_train_as_the_arrays():
    X, Y = xy()
    a = model()
    a.fit(X, Y, batch_size=BS, epochs=2, shuffle=False, verbose=0)
    ds = Batches(X, Y, workers=4, use_multiprocessing=False, max_queue_size=3)
    b = model()
    b.fit(ds, epochs=2, shuffle=False, verbose=0)
    same_weights(a, b)
    assert ds.ends == 3  # Keras: once when fit starts, then after each epoch
    assert Sequence is PyDataset and ds.workers == 4


def test_sample_weights_from_the_generator_and_class_weight_with_a_pydataset():
    X, Y = xy()
    sw = np.linspace(0.1, 2.0, N).astype(np.float32)
    a = model()
    a.fit(X, Y, sample_weight=sw, batch_size=BS, epochs=1, shuffle=False, verbose=0)
    b = model()
    b.fit(batches(X, Y, sw), epochs=1, steps_per_epoch=5, shuffle=False, verbose=0)
    same_weights(a, b)
    labels = (Y[:, 0] > 0.5).astype(np.float32)[:, None]
    for m in (a, b):
        m.compile("sgd", "binary_crossentropy")
    a.fit(X, labels, class_weight={0: 0.3, 1: 2.0}, batch_size=BS, shuffle=False, verbose=0)
    b.fit(Batches(X, labels), class_weight={0: 0.3, 1: 2.0}, shuffle=False, verbose=0)
    same_weights(a, b)


def test_pydataset_shuffle_draws_the_batch_order_from_python_random():
    import random
    X, Y = xy()
    set_random_seed(3)
    order = list(range(5))
    random.shuffle(order)
    a = model()
    perm = np.concatenate([np.arange(i * BS, (i + 1) * BS) for i in order])
    a.fit(X[perm], Y[perm], batch_size=BS, shuffle=False, verbose=0)
    b = model()
    set_random_seed(3)
    b.fit(Batches(X, Y), shuffle=True, verbose=0)
    same_weights(a, b)


# --- evaluate / predict / validation against NumPy ----------------------------------------
def linear_model():
    m = Sequential([Input((3,)), Dense(1)])
    m.compile("sgd", "mse", metrics=["mae"])
    W, b = np.array([[0.5], [-1.0], [0.25]], np.float32), np.array([0.1], np.float32)
    m.set_weights([W, b])
    return m, lambda x: x @ W + b


def test_evaluate_and_predict_with_steps_take_that_many_batches():
    X, Y = xy()
    m, f = linear_model()
    k = 3 * BS
    loss, mae = m.evaluate(batches(X, Y), steps=3, verbose=0)
    assert_allclose(loss, np.mean((f(X[:k]) - Y[:k]) ** 2), rtol=1e-5)
    assert_allclose(mae, np.mean(np.abs(f(X[:k]) - Y[:k])), rtol=1e-5)
    with pytest.warns(UserWarning, match=RAN_OUT):  # Keras warns at a generator's end too
        P = m.predict((X[i:i + BS],) for i in range(0, N, BS))  # (x,) tuples, as Keras
    assert_allclose(P, f(X), rtol=1e-5, atol=1e-6)
    P2 = m.predict(Batches(X, Y), steps=2, verbose=0)  # a PyDataset's y is ignored
    assert_allclose(P2, f(X[:2 * BS]), rtol=1e-5, atol=1e-6)
    logs = m.evaluate(Batches(X, Y), verbose=0, return_dict=True)
    assert_allclose(logs["loss"], np.mean((f(X) - Y) ** 2), rtol=1e-5)


def test_validation_generator_with_validation_steps():
    X, Y = xy()
    Xv, Yv = xy(32, seed=5)
    m, _ = linear_model()
    m.compile("sgd", "mse")
    seen = []

    class Val(Callback):
        def on_epoch_end(self, epoch, logs=None):
            W, b = self.model.get_weights()
            seen.append((np.mean((Xv[:2 * BS] @ W + b - Yv[:2 * BS]) ** 2), logs["val_loss"]))

    m.fit(batches(X, Y, repeat=2), steps_per_epoch=5, epochs=2, shuffle=False, verbose=0,
          validation_data=batches(Xv, Yv, repeat=2), validation_steps=2, callbacks=[Val()])
    for want, got in seen:
        assert_allclose(got, want, rtol=1e-5)
    m.fit(Batches(X, Y), shuffle=False, verbose=0, validation_data=(Xv, Yv), callbacks=[Val()])
    W, b = m.get_weights()
    assert_allclose(m.history.history["val_loss"][0], np.mean((Xv @ W + b - Yv) ** 2),
                    rtol=1e-5)


# --- epoch rules: the same batches per epoch and warnings as real Keras ---------------------
EPOCH_RULES = textwrap.dedent("""
    import json, warnings, numpy as np
    {setup}
    def gen(n):
        for i in range(n):
            yield np.full((4, 3), i, "float32"), np.ones((4, 1), "float32")
    class D(PyDataset):
        def __init__(self, **kw):
            super().__init__(**kw); self.ends = 0
        def __len__(self): return 4
        def __getitem__(self, i): return np.full((4, 3), i, "float32"), np.ones((4, 1), "float32")
        def on_epoch_end(self): self.ends += 1
    class Count(Callback):
        def on_epoch_begin(self, e, logs=None): self.runs.append([])
        def on_train_batch_end(self, b, logs=None): self.runs[-1].append(b)
    out = {{}}
    for name, make, kw in [("finite", lambda: gen(5), {{}}),
                           ("steps", lambda: gen(5), {{"steps_per_epoch": 3}}),
                           ("dataset", D, {{}}), ("dataset_steps", D, {{"steps_per_epoch": 3}})]:
        m = Sequential([Input((3,)), Dense(1)]); m.compile("sgd", "mse")
        c = Count(); c.runs = []; x = make()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            m.fit(x, epochs=3, shuffle=False, verbose=0, callbacks=[c], **kw)
        out[name] = [c.runs, sum("ran out of data" in str(i.message) for i in w),
                     getattr(x, "ends", None)]
    m = Sequential([Input((3,)), Dense(1)]); m.compile("sgd", "mse")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m.fit(gen(4), epochs=2, shuffle=False, verbose=0, validation_data=gen(3))
    out["val_warnings"] = sum("ran out of data" in str(i.message) for i in w)
    print("RESULT", json.dumps(out))
""")


def run_script(src, keras):
    env = dict(os.environ)
    if keras:
        env.update(KERAS_BACKEND="torch", CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def result(out):
    return json.loads(out.split("RESULT ", 1)[1])


@needs_keras
def test_epoch_rules_match_real_keras():
    ours_setup = ("from neuraxis.models import Sequential\nfrom neuraxis.layers import Input, "
                  "Dense\nfrom neuraxis.callbacks import Callback\n"
                  "from neuraxis.utils import PyDataset")
    keras_setup = ("from keras import Sequential, Input\nfrom keras.layers import Dense\n"
                   "from keras.callbacks import Callback\nfrom keras.utils import PyDataset")
    ours = result(run_script(EPOCH_RULES.format(setup=ours_setup), False))
    theirs = result(run_script(EPOCH_RULES.format(setup=keras_setup), True))
    assert ours == theirs
    # and what Keras does, spelled out: a 5-batch generator gives 5 then the 2 peeked batches
    assert ours["finite"] == [[[0, 1, 2, 3, 4], [0, 1], [0, 1]], 3, None]


def test_an_endless_generator_runs_until_a_callback_stops_it():
    X, Y = xy()

    class Stop(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 11:
                self.model.stop_training = True

    m = model()
    m.fit(batches(X, Y, repeat=10**9), shuffle=False, verbose=0, callbacks=[Stop()])
    assert m.optimizer.iterations == 12


# --- refused inputs --------------------------------------------------------------------------
class Huge:
    """Looks like a sequence to np.asarray (which would walk 10**12 items)."""

    def __len__(self):
        return 10**12

    def __getitem__(self, i):
        return 1.0


@pytest.mark.parametrize("x, match", [
    (Huge(), "Unrecognized data type"), ("abc", "Unrecognized data type"),
    ({"features": np.zeros((4, 3))}, "not a dict"), (object(), "Unrecognized data type")])
def test_non_array_inputs_are_refused_before_conversion(x, match):
    m = model()
    with pytest.raises(ValueError, match=match):
        m.fit(x, np.zeros(4), verbose=0)
    with pytest.raises(ValueError, match=match):
        m.predict(x, verbose=0)


def test_stream_errors_use_keras_words():
    X, Y = xy()
    m = model()
    with pytest.raises(ValueError, match="`y` should not be passed"):
        m.fit(batches(X, Y), Y, shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="`sample_weights` should not be passed"):
        m.fit(Batches(X, Y), sample_weight=np.ones(N), verbose=0)
    with pytest.raises(ValueError, match="`class_weight` is not supported for Python generator"):
        m.fit(batches(X, Y), class_weight={0: 1.0}, shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="Received an empty generator"):
        m.fit(iter(()), shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="must return a tuple"):
        m.predict(X[i:i + BS] for i in range(0, N, BS))
    with pytest.raises(ValueError, match="`validation_split` is only supported"):
        m.fit(batches(X, Y), validation_split=0.2, shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="needs targets"):
        m.fit(((X[:BS],) for _ in range(2)), shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="incompatible with the layer"):
        m.fit(((np.zeros((BS, 4)), Y[:BS]) for _ in range(2)), shuffle=False, verbose=0)
    with pytest.warns(UserWarning, match="`shuffle=True` was passed, but will be ignored"):
        m.fit(batches(X, Y, repeat=2), steps_per_epoch=5, verbose=0)


# --- Ctrl-C ----------------------------------------------------------------------------------
def test_keyboard_interrupt_from_a_generator_raises_after_whole_batches():
    X, Y = xy()

    def interrupted():
        for i, batch in enumerate(batches(X, Y, repeat=5)):
            if i == 7:
                raise KeyboardInterrupt
            yield batch

    m = model()
    with pytest.raises(KeyboardInterrupt):
        m.fit(interrupted(), steps_per_epoch=5, epochs=5, shuffle=False, verbose=1)
    assert m.stop_training and m.optimizer.iterations == 7
    ref = model()  # the same 7 batches as arrays: 5 in epoch 1, 2 in epoch 2
    ref.fit(X, Y, batch_size=BS, epochs=1, shuffle=False, verbose=0)
    ref.fit(X[:2 * BS], Y[:2 * BS], batch_size=BS, epochs=1, shuffle=False, verbose=0)
    same_weights(m, ref)
    m.fit(Batches(X, Y), shuffle=False, verbose=0)  # trains again


def test_sigint_from_a_callback_stops_fit_at_the_next_batch():
    import signal
    X, Y = xy()

    class CtrlC(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        m = model()
        with pytest.raises(KeyboardInterrupt):
            m.fit(batches(X, Y, repeat=3), steps_per_epoch=5, epochs=3, shuffle=False,
                  verbose=0, callbacks=[CtrlC()])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert m.optimizer.iterations == 3
    ref = model()
    ref.fit(X[:3 * BS], Y[:3 * BS], batch_size=BS, shuffle=False, verbose=0)
    same_weights(m, ref)


# --- progress lines in a file ----------------------------------------------------------------
LINE = re.compile(r"^ ?\d+/20 ━{20} \d+s \d+[mu]?s/step - loss: \d+\.\d{4} - mae: \d+\.\d{4}$")
SLOW_FIT = textwrap.dedent("""
    import time, numpy as np
    {setup}
    print("BEGIN", flush=True)  # after an editable install's rebuild messages
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 3)).astype("float32"); Y = X.sum(1, keepdims=True)
    def slow():
        while True:
            for i in range(0, 160, 8):
                time.sleep({sleep})
                yield X[i:i + 8], Y[i:i + 8]
    m = Sequential([Input((3,)), Dense(1)]); m.compile("sgd", "mse", metrics=["mae"])
    m.fit(slow(), steps_per_epoch=20, epochs=2, shuffle=False, verbose=1)
""")


def test_progress_lines_in_a_file_are_plain_and_spaced(tmp_path):
    setup = ("from neuraxis.models import Sequential\nfrom neuraxis.layers import Input, Dense\n"
             "import neuraxis._keras.progbar as pb; pb.STATIC_INTERVAL = 0.5")
    out = tmp_path / "log.txt"
    with open(out, "w") as f:  # stdout is a file, not a tty
        subprocess.run([sys.executable, "-c", SLOW_FIT.format(setup=setup, sleep=0.06)],
                       stdout=f, check=True, timeout=120)
    text = out.read_text().split("BEGIN\n", 1)[1]
    assert "\r" not in text and "\x1b" not in text and "\b" not in text
    lines = text.splitlines()
    assert lines[0] == "Epoch 1/2"
    epoch2 = lines.index("Epoch 2/2")
    for part in (lines[1:epoch2], lines[epoch2 + 1:]):
        assert all(LINE.match(s) for s in part), part
        assert part[-1].startswith("20/20") and " 1s " in part[-1]  # ~1.2 s an epoch
        # 1.2 s at most every 0.5 s: one or two progress lines before the final one
        assert 2 <= len(part) <= 3, part


@needs_keras
def test_final_progress_line_has_keras_layout(tmp_path):
    out = tmp_path / "keras.txt"
    setup = "import keras\nfrom keras import Sequential, Input\nfrom keras.layers import Dense"
    with open(out, "w") as f:
        subprocess.run([sys.executable, "-c", SLOW_FIT.format(setup=setup, sleep=0.0)],
                       stdout=f, check=True, timeout=300,
                       env=dict(os.environ, KERAS_BACKEND="torch", CUDA_VISIBLE_DEVICES=""))
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.read_text().split("BEGIN\n", 1)[1])
    text = text.replace("\b", "")
    finals = [s.split("\r")[-1].rstrip() for s in text.split("\n") if "20/20" in s]
    # (Keras may write an epoch's final line twice, depending on its redraw timing)
    assert len(set(finals)) == 2 and all(LINE.match(s) for s in finals), finals


# --- callback messages against real Keras ----------------------------------------------------
MESSAGES = textwrap.dedent("""
    import numpy as np
    {setup}
    print("BEGIN", flush=True)  # after an editable install's rebuild messages
    scores = [0.5, 0.4, 0.45, 0.3, 0.35, 0.36, 0.37]
    class Score(Callback):  # a monitored value fixed per epoch, so both runs see the same
        def on_epoch_end(self, epoch, logs=None):
            logs["val_score"] = scores[epoch]
    X = np.ones((8, 3), "float32"); Y = np.ones((8, 1), "float32")
    m = Sequential([Input((3,)), Dense(1)]); m.compile("sgd", "mse")
    path = {path!r}
    cbs = [Score(), ModelCheckpoint(path + "/best.keras", monitor="val_score", mode="min",
                                    save_best_only=True, verbose=1),
           ModelCheckpoint(path + "/e{{epoch:02d}}.keras", verbose=1),
           EarlyStopping(monitor="val_score", mode="min", patience=2, verbose=1,
                         restore_best_weights=True)]
    m.fit(X, Y, epochs=7, verbose=0, callbacks=cbs)
""")


@needs_keras
def test_checkpoint_and_early_stopping_messages_match_keras(tmp_path):
    ours_setup = ("from neuraxis.models import Sequential\nfrom neuraxis.layers import Input, "
                  "Dense\nfrom neuraxis.callbacks import Callback, ModelCheckpoint, "
                  "EarlyStopping")
    keras_setup = ("from keras import Sequential, Input\nfrom keras.layers import Dense\n"
                   "from keras.callbacks import Callback, ModelCheckpoint, EarlyStopping")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ours = run_script(MESSAGES.format(setup=ours_setup, path=str(tmp_path / "a")), False)
    theirs = run_script(MESSAGES.format(setup=keras_setup, path=str(tmp_path / "b")), True)
    ours, theirs = ours.split("BEGIN\n", 1)[1], theirs.split("BEGIN\n", 1)[1]
    assert ours.replace(str(tmp_path / "a"), "P") == theirs.replace(str(tmp_path / "b"), "P")
    assert "val_score improved from None to 0.50000" in ours
    assert "Epoch 6: early stopping" in ours


def test_checkpoint_messages_in_process(tmp_path, capsys):
    X, Y = xy(16)

    class Score(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_score"] = [0.5, 0.6][epoch]

    m = model()
    path = str(tmp_path / "best.keras")
    m.fit(X, Y, epochs=2, verbose=0, callbacks=[
        Score(), ModelCheckpoint(path, monitor="val_score", mode="min", save_best_only=True,
                                 verbose=1), EarlyStopping("val_score", mode="min", verbose=1)])
    assert capsys.readouterr().out == (
        f"\nEpoch 1: val_score improved from None to 0.50000, saving model to {path}\n"
        f"\nEpoch 1: finished saving model to {path}\n"
        "\nEpoch 2: val_score did not improve from 0.50000\n"
        "Epoch 2: early stopping\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert os.path.exists(path)


def test_steps_with_arrays_and_a_generator_to_validate_arrays_are_refused():
    X, Y = xy()
    m = model()
    for call in (lambda: m.evaluate(X, Y, steps=2, verbose=0),
                 lambda: m.predict(X, steps=2, verbose=0),
                 lambda: m.fit(X, Y, steps_per_epoch=2, verbose=0),
                 lambda: m.fit(X, Y, validation_data=batches(X, Y), verbose=0)):
        with pytest.raises(NotImplementedError):
            call()


def test_a_stream_of_unknown_length_shows_unknown_then_its_length():
    import io
    from neuraxis._keras.progbar import Progbar
    out = io.StringIO()  # not a tty: plain lines
    bar = Progbar(None, stream=out, static_interval=0.0)
    bar.update(3, [("loss", 0.5)], finalize=False)
    assert re.fullmatch(r"      3/Unknown 0s \d+us/step - loss: 0\.5000\n", out.getvalue())
