"""Keras 3's `.keras` and `.weights.h5` files written and read by neuraxis (no Keras here;
tests/test_keras_files_parity.py exchanges the files with real Keras).

The layout is checked against Keras's, written out by hand below (group per layer class,
`cell` groups of recurrent layers, the optimizer's variables in Keras's order); round
trips must give the same predictions and continue training identically; neuraxis's
previous own format keeps loading under `.keras`; hostile archives (names leaving the
archive, zip bombs, lying sizes, object/pickled datasets, links, classes that are not
layers, code in the config, absurd sizes) are each a ValueError before anything runs or
is allocated.
"""
import io
import json
import pickle
import struct
import zipfile

import h5py
import numpy as np
import pytest

from neuraxis import layers as L
from neuraxis._keras import archive
from neuraxis.callbacks import ModelCheckpoint
from neuraxis.models import Sequential, load_model, model_from_json
from neuraxis.optimizers import SGD, Adam, RMSprop
from neuraxis.utils import set_random_seed


@pytest.fixture(autouse=True)
def _seed():
    set_random_seed(0)


def _mlp():
    return Sequential([L.Input((6,)), L.Dense(16, activation="relu"), L.Dropout(0.1),
                       L.Dense(3, activation="softmax")])


def _cnn():
    return Sequential([L.Input((28, 28, 1)), L.Conv2D(32, (3, 3), activation="relu"),
                       L.MaxPooling2D((2, 2)), L.Conv2D(64, (3, 3), activation="relu"),
                       L.MaxPooling2D((2, 2)), L.Flatten(), L.Dense(128, activation="relu"),
                       L.Dense(10, activation="softmax")])


def _lstm():
    with pytest.warns(UserWarning, match="input_shape"):
        return Sequential([L.LSTM(50, input_shape=(None, 1)), L.Dense(1, activation="sigmoid")])


def _mix():
    return Sequential([L.Input((7,)), L.Embedding(20, 4),
                       L.Bidirectional(L.GRU(3, return_sequences=True)),
                       L.TimeDistributed(L.Dense(5)), L.GRU(4), L.BatchNormalization(),
                       L.Dense(1)])


def _data(name, rng, n=20):
    if name == "mlp":
        return rng.normal(size=(n, 6)).astype(np.float32), np.eye(3)[rng.integers(0, 3, n)]
    if name == "cnn":
        return rng.random((n, 28, 28, 1)).astype(np.float32), np.eye(10)[rng.integers(0, 10, n)]
    if name == "lstm":
        return rng.normal(size=(n, 5, 1)).astype(np.float32), rng.integers(0, 2, (n, 1)) * 1.0
    return rng.integers(0, 20, (n, 7)), rng.normal(size=(n, 1)).astype(np.float32)


MODELS = {"mlp": (_mlp, lambda: Adam(0.01), "categorical_crossentropy"),
          "cnn": (_cnn, lambda: SGD(0.05, momentum=0.9), "categorical_crossentropy"),
          "lstm": (_lstm, lambda: RMSprop(0.01, momentum=0.5), "binary_crossentropy"),
          "mix": (_mix, lambda: Adam(0.01), "mse")}


def trained(name, epochs=2):
    make, opt, loss = MODELS[name]
    m = make()
    x, y = _data(name, np.random.default_rng(1))
    m.compile(optimizer=opt(), loss=loss)
    m.fit(x, y, batch_size=8, epochs=epochs, verbose=0)
    return m, x, y


# --- layout --------------------------------------------------------------------------------
def h5_datasets(raw_or_path):
    out = {}
    src = io.BytesIO(raw_or_path) if isinstance(raw_or_path, bytes) else raw_or_path
    with h5py.File(src, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset)
                     else None)
    return out


def test_archive_entries_config_and_weights_layout_are_keras(tmp_path):
    m, _, _ = trained("mix")
    m.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert zf.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        meta = json.loads(zf.read("metadata.json"))
        cfg = json.loads(zf.read("config.json"))
        ds = h5_datasets(zf.read("model.weights.h5"))
    assert meta["keras_version"] == "3.15.1" and "date_saved" in meta
    assert {"module", "class_name", "config", "registered_name", "build_config",
            "compile_config"} <= set(cfg)
    assert (cfg["module"], cfg["class_name"]) == ("keras", "Sequential")
    assert cfg["build_config"] == {"input_shape": [None, 7]}
    assert cfg["compile_config"]["optimizer"]["class_name"] == "Adam"
    assert [la["class_name"] for la in cfg["config"]["layers"]] == [
        "InputLayer", "Embedding", "Bidirectional", "TimeDistributed", "GRU",
        "BatchNormalization", "Dense"]
    # Keras's paths, by hand: class-named groups, recurrent weights in `cell`
    emb, bi, td, gru, bn, dense = m.layers
    expected = {"layers/embedding/vars/0": emb.get_weights()[0]}
    for side, layer in (("forward_layer", bi.forward_layer), ("backward_layer",
                                                             bi.backward_layer)):
        for i, w in enumerate(layer.get_weights()):
            expected[f"layers/bidirectional/{side}/cell/vars/{i}"] = w
    expected.update({f"layers/time_distributed/layer/vars/{i}": w
                     for i, w in enumerate(td.get_weights())})
    expected.update({f"layers/gru/cell/vars/{i}": w for i, w in enumerate(gru.get_weights())})
    expected.update({f"layers/batch_normalization/vars/{i}": w
                     for i, w in enumerate(bn.get_weights())})
    expected.update({f"layers/dense/vars/{i}": w for i, w in enumerate(dense.get_weights())})
    opt = m.optimizer
    expected["optimizer/vars/0"] = np.array(opt.iterations)
    expected["optimizer/vars/1"] = np.float32(0.01)
    # Adam: momentum and velocity of each trainable weight in turn (BN's moving
    # statistics are not trainable: no slots)
    trainable = [w for w in m.weights if any(w is t for t in m.trainable_weights)]
    assert len(trainable) == len(m.weights) - 2
    k = 2
    for w in trainable:
        i = next(j for j, p in enumerate(m.weights) if p is w)
        expected[f"optimizer/vars/{k}"], expected[f"optimizer/vars/{k + 1}"] = opt._m[i], opt._v[i]
        k += 2
    assert sorted(ds) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(ds[key], value, err_msg=key)
    assert ds["layers/gru/cell/vars/2"].shape == (2, 12)  # reset_after: two bias rows


@pytest.mark.parametrize("opt, slots", [(SGD(0.1), 0), (SGD(0.1, momentum=0.9), 1),
                                        (RMSprop(), 1), (RMSprop(momentum=0.5), 2)])
def test_optimizer_variables_in_keras_order(tmp_path, opt, slots):
    m = Sequential([L.Input((3,)), L.Dense(2), L.Dense(1)])
    m.compile(optimizer=opt, loss="mse")
    m.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0)
    m.save_weights(tmp_path / "w.weights.h5")
    ds = h5_datasets(str(tmp_path / "w.weights.h5"))
    opt_keys = sorted((k for k in ds if k.startswith("optimizer/")),
                      key=lambda k: int(k.rsplit("/", 1)[1]))
    assert len(opt_keys) == 2 + 4 * slots
    assert int(ds["optimizer/vars/0"]) == 1
    # RMSprop: all velocities (mean squares) first, then all momenta
    first = opt._m
    for i in range(4 * slots):
        a = first[i] if i < 4 else opt._v[i - 4]
        np.testing.assert_array_equal(ds[f"optimizer/vars/{i + 2}"], a)


# --- round trips -----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_predicts_and_trains_on_identically(tmp_path, name):
    m, x, y = trained(name)
    m.save(tmp_path / "m.keras")
    m2 = load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(m2.predict(x, verbose=0), m.predict(x, verbose=0))
    assert m2.get_config() == m.get_config()
    assert m2.optimizer.get_config() == m.optimizer.get_config()
    assert m2.optimizer.iterations == m.optimizer.iterations == 6
    set_random_seed(4)
    h1 = m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    set_random_seed(4)
    h2 = m2.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    assert h1 == h2
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_h5_round_trip_with_optimizer_state(tmp_path):
    m, x, y = trained("lstm")
    m.save_weights(tmp_path / "w.weights.h5")
    clone = model_from_json(m.to_json())
    clone.compile(optimizer=RMSprop(0.01, momentum=0.5), loss="binary_crossentropy")
    clone.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(clone.predict(x, verbose=0), m.predict(x, verbose=0))
    assert clone.optimizer.iterations == 6
    plain = model_from_json(m.to_json())  # uncompiled: the optimizer group is ignored
    plain.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(plain.get_weights()[0], m.get_weights()[0])
    h1 = m.fit(x, y, batch_size=8, shuffle=False, verbose=0).history
    h2 = clone.fit(x, y, batch_size=8, shuffle=False, verbose=0).history
    assert h1 == h2
    other = Sequential([L.Input((None, 1)), L.LSTM(49), L.Dense(1)])
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"expects float32 \(1, 196\)"):
        other.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(before, other.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match="Skipping layers/") as rec:
        other.load_weights(tmp_path / "w.weights.h5", skip_mismatch=True)
    assert [str(w.message).split(":")[0] for w in rec] == ["Skipping layers/lstm/cell",
                                                             "Skipping layers/dense"]
    np.testing.assert_array_equal(other.get_weights()[0], before[0])
    # load_weights from a whole .keras file too
    m.save(tmp_path / "m.keras")
    clone2 = model_from_json(m.to_json())
    clone2.load_weights(tmp_path / "m.keras")
    np.testing.assert_array_equal(clone2.predict(x, verbose=0), m.predict(x, verbose=0))


def test_model_checkpoint_writes_keras_files(tmp_path):
    m, x, y = trained("mlp", epochs=1)
    m.fit(x, y, epochs=2, verbose=0, callbacks=[
        ModelCheckpoint(str(tmp_path / "w{epoch}.weights.h5"), save_weights_only=True,
                        monitor="loss"),
        ModelCheckpoint(str(tmp_path / "m{epoch}.keras"), monitor="loss")])
    ds = h5_datasets(str(tmp_path / "w2.weights.h5"))
    np.testing.assert_array_equal(ds["layers/dense/vars/0"], m.get_weights()[0])
    with zipfile.ZipFile(tmp_path / "m2.keras") as zf:
        assert "model.weights.h5" in zf.namelist()
    np.testing.assert_array_equal(load_model(tmp_path / "m2.keras").predict(x, verbose=0),
                                  m.predict(x, verbose=0))
    with pytest.raises(ValueError, match=r"must end in `\.weights\.h5`"):
        ModelCheckpoint(str(tmp_path / "w.h5"), save_weights_only=True)


def test_old_neuraxis_files_named_keras_still_load_and_neuraxis_ext_keeps_own_format(tmp_path):
    m, x, _ = trained("mlp")
    archive.write_model(m, tmp_path / "old.keras", True, "0.1.0")  # the previous writer
    old = load_model(tmp_path / "old.keras")
    np.testing.assert_array_equal(old.predict(x, verbose=0), m.predict(x, verbose=0))
    assert old.optimizer.iterations == m.optimizer.iterations
    m.save(tmp_path / "m.neuraxis")
    with zipfile.ZipFile(tmp_path / "m.neuraxis") as zf:
        assert "layers/dense/vars/0.npy" in zf.namelist()
    m.save_weights(tmp_path / "w.weights.npz")
    assert np.load(tmp_path / "w.weights.npz", allow_pickle=False)["layers/dense/vars/0"].shape \
        == (6, 16)


# --- hostile and damaged files ------------------------------------------------------------
def entries_of(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def write_zip(path, entries, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for n, b in entries.items():
            zf.writestr(n, b)
    return path


def edit_h5(raw, tmp_path, edit):
    p = tmp_path / "edit.h5"
    p.write_bytes(raw)
    with h5py.File(p, "r+") as f:
        edit(f)
    return p.read_bytes()


def replace_ds(path, value=None, link=None):
    def edit(f):
        g = f["layers/dense/vars"]
        del g["0"]
        if link is not None:
            g["0"] = link
        else:
            g.create_dataset("0", data=value)
    return edit


def edit_config(edit):
    def change(e, _):
        cfg = json.loads(e["config.json"])
        edit(cfg)
        e["config.json"] = json.dumps(cfg).encode()
    return change


def _dense(cfg):
    return cfg["config"]["layers"][1]


SENTINEL = "neuraxis_sentinel_should_not_exist"


H5_CASES = {
    "object dtype": (replace_ds("x", np.array(["a"] * 6, dtype=h5py.string_dtype())),
                     "expects float32"),
    "pickled bytes": (replace_ds("x", np.void(pickle.dumps({"a": 1}))), "expects float32"),
    "wrong shape": (replace_ds("x", np.zeros((6, 15), np.float32)),
                    r"expects float32 \(6, 16\)"),
    "float64": (replace_ds("x", np.zeros((6, 16), np.float64)), "float64"),
    "external link": (replace_ds("x", link=h5py.ExternalLink("/etc/passwd", "/x")),
                      "links to other files or paths are not followed"),
    "soft link": (replace_ds("x", link=h5py.SoftLink("/layers/dense_1/vars/0")),
                  "links to other files or paths are not followed"),
    "missing weight": (lambda f: f["layers/dense/vars"].__delitem__("1"),
                       r"holds 1 entries \['0'\], but the model's config expects 2"),
    "bad iterations": (lambda f: (f["optimizer/vars"].__delitem__("0"),
                                  f["optimizer/vars"].create_dataset("0", data=[1.0, 2.0])),
                       "expected a scalar"),
}

ZIP_CASES = {
    "path traversal": (lambda e, t: e.update({"../../evil.txt": b"x"}), "unsafe entry name"),
    "absolute name": (lambda e, t: e.update({"/tmp/evil.txt": b"x"}), "unsafe entry name"),
    "extra entry": (lambda e, t: e.update({"assets/run.py": b"import os"}),
                    "unexpected entries"),
    "npz weights": (lambda e, t: e.update({"model.weights.npz": b"x"}),
                    "model.weights.npz .*not supported"),
    "not hdf5": (lambda e, t: e.update({"model.weights.h5": b"\x89HDF garbage" * 4000}),
                 "not a valid HDF5"),
    "Lambda layer": (edit_config(lambda c: _dense(c).update(class_name="Lambda")),
                     "Unknown layer class 'Lambda'"),
    "os.system as a layer": (edit_config(lambda c: c["config"]["layers"].insert(1, {
        "module": "os", "class_name": "system", "config": {"command": f"touch {SENTINEL}"},
        "registered_name": "os>system"})), "Unknown layer class 'system'"),
    "lambda loss": (edit_config(lambda c: c["compile_config"].update(loss={
        "class_name": "__lambda__", "config": {"code": "print('pwned')"}})),
        "code from files is never run"),
    "functional model": (edit_config(lambda c: c.update(class_name="Functional")),
                         "only Sequential"),
    "huge units": (edit_config(lambda c: _dense(c)["config"].update(units=10**9)),
                   r"asks for a weight of shape \(6, 1000000000\)"),
    "huge input": (edit_config(lambda c: (c["config"]["layers"][0]["config"].update(
        batch_shape=[None, 10**10]), c["config"].update(build_input_shape=[None, 10**10]))),
        r"weight of shape \(10000000000, 16\)"),
    "bad units": (edit_config(lambda c: _dense(c)["config"].update(units="many")),
                  "Invalid config for layer 'Dense'"),
    "broken json": (lambda e, t: e.update({"config.json": b"{not json"}), "not valid JSON"),
}


@pytest.fixture
def good(tmp_path):
    m, _, _ = trained("mlp", epochs=1)
    m.save(tmp_path / "good.keras")
    return tmp_path / "good.keras"


@pytest.mark.parametrize("case", sorted(H5_CASES))
def test_hostile_weights_datasets(good, tmp_path, case):
    edit, message = H5_CASES[case]
    e = entries_of(good)
    e["model.weights.h5"] = edit_h5(e["model.weights.h5"], tmp_path, edit)
    bad = write_zip(tmp_path / "bad.keras", e)
    with pytest.raises(ValueError, match=message) as err:
        load_model(bad)
    assert "bad.keras" in str(err.value)
    # the same damage in a .weights.h5 file
    (tmp_path / "bad.weights.h5").write_bytes(e["model.weights.h5"])
    m = model_from_json(load_model(good, compile=False).to_json())
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=message):
        m.load_weights(tmp_path / "bad.weights.h5")


@pytest.mark.parametrize("case", sorted(ZIP_CASES))
def test_hostile_archives(good, tmp_path, case, monkeypatch):
    monkeypatch.chdir(tmp_path)
    change, message = ZIP_CASES[case]
    e = entries_of(good)
    change(e, tmp_path)
    bad = write_zip(tmp_path / "bad.keras", e)
    with pytest.raises(ValueError, match=message) as err:
        load_model(bad)
    assert "bad.keras" in str(err.value)
    assert not (tmp_path / SENTINEL).exists()


def test_zip_bombs_and_lying_sizes_are_refused_before_reading(good, tmp_path):
    e = entries_of(good)
    # 64 MiB of zeros deflate to ~64 KiB: far more than this model's weights can need
    bomb = dict(e, **{"model.weights.h5": bytes(64 * 2**20)})
    write_zip(tmp_path / "bomb.keras", bomb, zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="model.weights.h5 declares 67108864 bytes"):
        load_model(tmp_path / "bomb.keras")
    jbomb = dict(e, **{"config.json": b" " * (40 * 2**20)})
    write_zip(tmp_path / "jbomb.keras", jbomb, zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="config.json declares 41943040 bytes"):
        load_model(tmp_path / "jbomb.keras")

    def patch_size(src, dst, new_size):
        """Rewrite the central directory's uncompressed size of model.weights.h5."""
        data = bytearray(src.read_bytes())
        pos = data.find(b"PK\x01\x02")
        while pos != -1:
            n = struct.unpack("<H", data[pos + 28:pos + 30])[0]
            if data[pos + 46:pos + 46 + n] == b"model.weights.h5":
                data[pos + 24:pos + 28] = struct.pack("<I", new_size)
            pos = data.find(b"PK\x01\x02", pos + 4)
        dst.write_bytes(bytes(data))
        return dst

    size = len(e["model.weights.h5"])
    patch_size(good, tmp_path / "huge.keras", 2**32 - 1)  # a bomb by its header alone
    with pytest.raises(ValueError, match="declares 4294967295 bytes"):
        load_model(tmp_path / "huge.keras")
    patch_size(good, tmp_path / "short.keras", size - 1000)  # says less than it holds
    with pytest.raises(ValueError, match="Could not load .*short.keras: Bad CRC-32"):
        load_model(tmp_path / "short.keras")
    patch_size(good, tmp_path / "long.keras", size + 1000)  # says more than it holds
    with pytest.raises(ValueError, match=r"long.keras: model.weights.h5 holds \d+ bytes, not "
                                         r"the \d+ it declares"):
        load_model(tmp_path / "long.keras")


def test_unrestorable_compile_config_warns_and_loads_uncompiled(good, tmp_path):
    e = entries_of(good)
    edit_config(lambda c: c["compile_config"]["optimizer"].update(class_name="Lion"))(e, None)
    write_zip(tmp_path / "lion.keras", e)
    with pytest.warns(UserWarning, match="compile\\(\\) was not restored.*Lion"):
        m = load_model(tmp_path / "lion.keras")
    assert not m.compiled
    ref = load_model(good)
    np.testing.assert_array_equal(m.get_weights()[0], ref.get_weights()[0])
