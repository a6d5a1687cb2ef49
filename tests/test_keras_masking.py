"""Keras's step masks in the Keras front: Masking(mask_value) and Embedding(mask_zero=True)
before recurrent layers (a masked step keeps the state), checked against the same weights
run on each sequence's real steps only, and against real Keras 3 (torch backend, in a
subprocess) with copied weights: predictions and two epochs of training on padded data.
A mask reaching a layer that would use it otherwise is refused."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuraxis import layers as L
from neuraxis.models import Sequential
from neuraxis.optimizers import Adam
from neuraxis.utils import set_random_seed

from real_keras import HAVE_KERAS, needs_keras  # noqa: F401


def padded(rng, n, T, F, pre=True):
    """Sequences of random real lengths 1..T, zero-padded before (pre) or after them."""
    X = np.zeros((n, T, F), np.float32)
    lengths = rng.integers(1, T + 1, n)
    for i, k in enumerate(lengths):
        real = rng.normal(size=(k, F)).astype(np.float32) + 0.1
        if pre:
            X[i, T - k:] = real
        else:
            X[i, :k] = real
    return X, lengths


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("pre", [True, False])
def test_masking_equals_running_the_real_steps_only(cell, pre):
    set_random_seed(0)
    rng = np.random.default_rng(1)
    X, lengths = padded(rng, 6, 7, 3, pre)
    masked = Sequential([L.Input((7, 3)), L.Masking(), getattr(L, cell)(4),
                         L.Dense(2)])
    plain = Sequential([L.Input((None, 3)), getattr(L, cell)(4), L.Dense(2)])
    plain.set_weights(masked.get_weights())
    P = masked.predict(X, verbose=0)
    for i, k in enumerate(lengths):
        real = X[i:i + 1, 7 - k:] if pre else X[i:i + 1, :k]
        assert_allclose(P[i:i + 1], plain.predict(real, verbose=0), rtol=1e-5, atol=1e-6)


def test_embedding_mask_zero_skips_padding_ids():
    set_random_seed(0)
    rng = np.random.default_rng(2)
    ids = np.zeros((5, 8), np.int64)
    lengths = rng.integers(1, 9, 5)
    for i, k in enumerate(lengths):
        ids[i, 8 - k:] = rng.integers(1, 20, k)
    masked = Sequential([L.Input((8,)), L.Embedding(20, 4, mask_zero=True), L.LSTM(3),
                         L.Dense(1, activation="sigmoid")])
    plain = Sequential([L.Input((None,)), L.Embedding(20, 4), L.LSTM(3),
                        L.Dense(1, activation="sigmoid")])
    plain.set_weights(masked.get_weights())
    P = masked.predict(ids, verbose=0)
    for i, k in enumerate(lengths):
        assert_allclose(P[i:i + 1], plain.predict(ids[i:i + 1, 8 - k:], verbose=0), rtol=1e-5,
                        atol=1e-6)
    assert masked.layers[0].get_config()["mask_zero"] is True


def test_a_masked_model_learns_on_padded_sequences():
    set_random_seed(0)
    rng = np.random.default_rng(3)
    X, lengths = padded(rng, 512, 12, 1, pre=True)
    # the label: the sign of the first real step, which sits at a different place per row
    y = np.array([X[i, 12 - k, 0] > 0.1 for i, k in enumerate(lengths)], np.float32)
    model = Sequential([L.Input((12, 1)), L.Masking(), L.LSTM(16),
                        L.Dense(1, activation="sigmoid")])
    model.compile(Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    model.fit(X, y, epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(X, y, verbose=0)[1] >= 0.9


def test_embedding_mask_zero_with_recurrent_dropout_learns():
    # the label: whether the first real id (after the padding zeros) is even
    set_random_seed(0)
    rng = np.random.default_rng(5)
    ids = np.zeros((512, 10), np.int64)
    lengths = rng.integers(1, 11, 512)
    for i, k in enumerate(lengths):
        ids[i, 10 - k:] = rng.integers(1, 12, k)
    y = np.array([ids[i, 10 - k] % 2 == 0 for i, k in enumerate(lengths)], np.float32)
    model = Sequential([L.Input((None,)), L.Embedding(12, 8, mask_zero=True),
                        L.LSTM(16, recurrent_dropout=0.2), L.Dense(1, activation="sigmoid")])
    model.compile(Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(ids, y, epochs=15, batch_size=32, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"]))
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert model.evaluate(ids, y, verbose=0)[1] >= 0.9
    # inference has no dropout: padding changes nothing
    P = model.predict(ids, verbose=0)
    longer = np.concatenate([np.zeros((512, 3), np.int64), ids], axis=1)
    assert_allclose(model.predict(longer, verbose=0), P, rtol=1e-5, atol=1e-6)


def test_masks_that_would_be_used_elsewhere_are_refused():
    m = Sequential([L.Input((6,)), L.Embedding(10, 3, mask_zero=True),
                    L.GlobalAveragePooling1D(), L.Dense(1)])
    m.compile("adam", "mse")
    with pytest.raises(NotImplementedError, match="GlobalAveragePooling1D"):
        m.fit(np.ones((4, 6)), np.ones(4), verbose=0)


def sequence_model(kind):
    set_random_seed(0)
    if kind == "tagger":
        return Sequential([L.Input((8,)), L.Embedding(20, 4, mask_zero=True),
                           L.LSTM(5, return_sequences=True),
                           L.TimeDistributed(L.Dense(3, activation="softmax"))])
    return Sequential([L.Input((7, 2)), L.Masking(), L.GRU(4, return_sequences=True),
                       L.Dense(2)])


def padded_ids(rng, n, T, vocab):
    ids = np.zeros((n, T), np.float32)
    for i, k in enumerate(rng.integers(1, T + 1, n)):
        ids[i, T - k:] = rng.integers(1, vocab, k)
    return ids


def test_masked_sequence_loss_counts_the_real_steps_only():
    """evaluate on a masked sequence output = Keras's apply_mask, written out in NumPy:
    per batch sum(sw * mask * loss) / sum(mask), batches weighted by their rows; metrics
    are means over the real steps (weighted ones with sw * mask)."""
    rng = np.random.default_rng(5)
    for kind in ("tagger", "regressor"):
        model = sequence_model(kind)
        if kind == "tagger":
            X = padded_ids(rng, 11, 8, 20)
            mask = X != 0
            y = rng.integers(0, 3, (11, 8))
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"],
                          weighted_metrics=["accuracy"])
        else:
            X, _ = padded(rng, 11, 7, 2, pre=False)
            mask = np.any(X != 0, axis=-1)
            y = rng.normal(size=(11, 7, 2)).astype(np.float32)
            model.compile("adam", "mse", metrics=["mae"], weighted_metrics=["mae"])
        sw = rng.uniform(0.2, 2.0, 11).astype(np.float32)
        P = model.predict(X, verbose=0).astype(np.float64)
        if kind == "tagger":
            loss = -np.log(np.clip(np.take_along_axis(P, y[..., None], -1)[..., 0],
                                   1e-7, 1 - 1e-7))
            metric = (P.argmax(-1) == y).astype(np.float64)
        else:
            loss = ((P - y) ** 2).mean(-1)
            metric = np.abs(P - y).mean(-1)
        batch = 4
        total = 0.0
        for s in range(0, 11, batch):
            m, w = mask[s:s + batch], sw[s:s + batch, None]
            total += (loss[s:s + batch] * w * m).sum() / m.sum() * len(m)
        name = "accuracy" if kind == "tagger" else "mae"
        want = {"loss": total / 11, name: (metric * mask).sum() / mask.sum(),
                "weighted_" + name: (metric * mask * sw[:, None]).sum()
                / (mask * sw[:, None]).sum()}
        got = model.evaluate(X, y, sample_weight=sw, batch_size=batch, verbose=0,
                             return_dict=True)
        assert sorted(got) == sorted(want)
        for key in want:
            assert_allclose(got[key], want[key], rtol=2e-5, err_msg=f"{kind} {key}")
        got = model.evaluate(X, y, sample_weight=sw, batch_size=batch, verbose=0)
        # what the targets of padded steps hold changes nothing, in training either
        y2 = y.copy()
        y2[~mask] = 1 if kind == "tagger" else 50.0
        assert_allclose(model.evaluate(X, y2, sample_weight=sw, batch_size=batch, verbose=0),
                        got, rtol=1e-6)
        trained = []
        for target in (y, y2):
            twin = sequence_model(kind)
            twin.compile(Adam(0.01), model.loss)
            twin.fit(X, target, sample_weight=sw, batch_size=batch, epochs=2, shuffle=False,
                     verbose=0)
            trained.append(twin.get_weights())
        for a, b in zip(*trained):
            assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        assert not np.allclose(trained[0][-1], model.get_weights()[-1])  # it did train


KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    L = keras.layers
    d = np.load(sys.argv[1])
    out, arrays = {}, {}
    bce = ("binary_crossentropy", ["accuracy"], None)
    models = {
        "emb": (keras.Sequential([keras.Input((8,)), L.Embedding(20, 4, mask_zero=True),
                                  L.LSTM(5), L.Dense(1, activation="sigmoid")]), bce),
        "mask": (keras.Sequential([keras.Input((7, 2)), L.Masking(),
                                   L.GRU(4, return_sequences=True), L.SimpleRNN(3),
                                   L.Dense(1, activation="sigmoid")]), bce),
        "tagger": (keras.Sequential([keras.Input((8,)), L.Embedding(20, 4, mask_zero=True),
                                     L.LSTM(5, return_sequences=True),
                                     L.TimeDistributed(L.Dense(3, activation="softmax"))]),
                   ("sparse_categorical_crossentropy", ["accuracy"], ["accuracy"])),
        "seqreg": (keras.Sequential([keras.Input((7, 2)), L.Masking(),
                                     L.GRU(4, return_sequences=True), L.Dense(2)]),
                   ("mse", ["mae"], ["mae"])),
    }
    for name, (model, (loss, metrics, weighted)) in models.items():
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, metrics=metrics,
                      weighted_metrics=weighted)
        model.set_weights([d[f"{name}_w{j}"] for j in range(len(model.get_weights()))])
        X, y = d[f"{name}_X"], d[f"{name}_y"]
        sw = d[f"{name}_sw"] if f"{name}_sw" in d else None
        arrays[f"{name}_P0"] = model.predict(X, verbose=0)
        h = model.fit(X, y, sample_weight=sw, batch_size=8, epochs=2, shuffle=False, verbose=0)
        out[name] = h.history
        out[name + "_eval"] = model.evaluate(X, y, sample_weight=sw, batch_size=8, verbose=0)
        for j, w in enumerate(model.get_weights()):
            arrays[f"{name}_w{j}"] = w
        arrays[f"{name}_P"] = model.predict(X, verbose=0)
    np.savez(sys.argv[2], **arrays)
    print(json.dumps(out))
""")


def models():
    set_random_seed(0)
    bce = ("binary_crossentropy", ["accuracy"], None)
    return {"emb": (Sequential([L.Input((8,)), L.Embedding(20, 4, mask_zero=True), L.LSTM(5),
                                L.Dense(1, activation="sigmoid")]), bce),
            "mask": (Sequential([L.Input((7, 2)), L.Masking(), L.GRU(4, return_sequences=True),
                                 L.SimpleRNN(3), L.Dense(1, activation="sigmoid")]), bce),
            "tagger": (sequence_model("tagger"),
                       ("sparse_categorical_crossentropy", ["accuracy"], ["accuracy"])),
            "seqreg": (sequence_model("regressor"), ("mse", ["mae"], ["mae"]))}


@needs_keras
def test_padded_training_matches_keras(tmp_path):
    rng = np.random.default_rng(4)
    arrays = {}
    ids = np.zeros((32, 8), np.float32)
    for i, k in enumerate(rng.integers(1, 9, 32)):
        ids[i, 8 - k:] = rng.integers(1, 20, k)
    arrays["emb_X"], arrays["emb_y"] = ids, (rng.random((32, 1)) > 0.5).astype(np.float32)
    X, _ = padded(rng, 32, 7, 2, pre=False)
    arrays["mask_X"], arrays["mask_y"] = X, (rng.random((32, 1)) > 0.5).astype(np.float32)
    # sequence outputs: the mask reaches the loss and the metrics
    arrays["tagger_X"] = padded_ids(rng, 32, 8, 20)
    arrays["tagger_y"] = rng.integers(0, 3, (32, 8)).astype(np.float32)
    X, _ = padded(rng, 32, 7, 2, pre=False)
    arrays["seqreg_X"], arrays["seqreg_y"] = X, rng.normal(size=(32, 7, 2)).astype(np.float32)
    # (not with sample weights: Keras 3.15's torch backend fails on (n,) weights times a
    # (n, steps) mask, in apply_mask; the NumPy test above covers them)
    ours = models()
    for name, (model, _) in ours.items():
        for j, w in enumerate(model.get_weights()):
            arrays[f"{name}_w{j}"] = rng.uniform(-0.5, 0.5, w.shape).astype(np.float32)
    np.savez(tmp_path / "in.npz", **arrays)
    out = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp_path / "in.npz"),
                          str(tmp_path / "out.npz")], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-2000:]
    history = json.loads(out.stdout.strip().splitlines()[-1])
    theirs = np.load(tmp_path / "out.npz")
    for name, (model, (loss, metrics, weighted)) in ours.items():
        model.compile(Adam(0.01), loss, metrics=metrics, weighted_metrics=weighted)
        n = len(model.get_weights())
        model.set_weights([arrays[f"{name}_w{j}"] for j in range(n)])
        X, y, sw = arrays[f"{name}_X"], arrays[f"{name}_y"], arrays.get(f"{name}_sw")
        assert_allclose(model.predict(X, verbose=0), theirs[f"{name}_P0"], rtol=1e-5, atol=1e-6)
        hist = model.fit(X, y, sample_weight=sw, batch_size=8, epochs=2, shuffle=False,
                         verbose=0)
        for j, w in enumerate(model.get_weights()):
            assert_allclose(w, theirs[f"{name}_w{j}"], rtol=2e-4, atol=2e-5,
                            err_msg=f"{name} weight {j}")
        assert_allclose(model.predict(X, verbose=0), theirs[f"{name}_P"], rtol=2e-4, atol=2e-5)
        assert sorted(hist.history) == sorted(history[name])
        for key, values in history[name].items():
            assert_allclose(hist.history[key], values, rtol=2e-4, atol=2e-5, err_msg=key)
        assert_allclose(model.evaluate(X, y, sample_weight=sw, batch_size=8, verbose=0),
                        history[name + "_eval"], rtol=2e-4, atol=2e-5)
