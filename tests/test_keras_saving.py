"""Keras front: save -> load round trips, and damaged files rejected with a clear ValueError."""
import io
import json
import zipfile

import numpy as np
import pytest

from neuraxis._keras.session import clear_session, set_random_seed
from neuraxis.layers import Dense, Dropout, Input, LeakyReLU
from neuraxis.models import Sequential, load_model, model_from_json


@pytest.fixture(autouse=True)
def _fresh_session():
    clear_session()
    set_random_seed(0)
    yield


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    return X, np.eye(3)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1)]


@pytest.fixture
def trained():
    X, Y = data()
    m = Sequential([Input((6,)), Dense(16), LeakyReLU(0.01), Dropout(0.2),
                    Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    m.fit(X, Y, epochs=3, verbose=0)
    return m, X, Y


@pytest.mark.parametrize("ext", [".neuraxis", ".keras"])
def test_round_trip_is_bit_identical(trained, tmp_path, ext):
    m, X, Y = trained
    path = tmp_path / f"model{ext}"
    m.save(path)
    m2 = load_model(path)
    np.testing.assert_array_equal(m2.predict(X, verbose=0), m.predict(X, verbose=0))
    assert m2.get_config() == m.get_config()
    assert m2.compiled and m2.loss == "categorical_crossentropy"
    assert type(m2.optimizer) is type(m.optimizer)
    assert m2.optimizer.get_config() == m.optimizer.get_config()
    assert m2.optimizer.iterations == m.optimizer.iterations == 9
    for a, b in zip(m.optimizer._m + m.optimizer._v, m2.optimizer._m + m2.optimizer._v):
        np.testing.assert_array_equal(a, b)
    assert m2.evaluate(X, Y, verbose=0) == m.evaluate(X, Y, verbose=0)


def test_training_continues_identically_after_load(trained, tmp_path):
    m, X, Y = trained
    m.save(tmp_path / "m.neuraxis")
    m2 = load_model(tmp_path / "m.neuraxis")
    set_random_seed(5)
    h1 = m.fit(X, Y, epochs=2, verbose=0)
    set_random_seed(5)
    h2 = m2.fit(X, Y, epochs=2, verbose=0)
    assert h1.history == h2.history
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_file_is_json_and_plain_npy(trained, tmp_path):
    m, _, _ = trained
    path = tmp_path / "m.neuraxis"
    m.save(path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names[:2] == ["metadata.json", "config.json"]
        assert "layers/dense/vars/0.npy" in names and "layers/dense_1/vars/1.npy" in names
        config = json.loads(zf.read("config.json"))
        assert config["class_name"] == "Sequential"
        assert config["compile_config"]["metrics"] == ["accuracy"]
        assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
        for name in names[2:]:
            assert name.endswith(".npy")
            np.load(io.BytesIO(zf.read(name)), allow_pickle=False)
        kernel = np.load(io.BytesIO(zf.read("layers/dense/vars/0.npy")), allow_pickle=False)
    np.testing.assert_array_equal(kernel, m.layers[0].get_weights()[0])


def test_uncompiled_and_unbuilt_models_and_compile_false(tmp_path):
    m = Sequential([Dense(4), Dense(2)], name="lazy")
    with pytest.warns(UserWarning, match="not yet been built"):  # as Keras warns
        m.save(tmp_path / "lazy.keras")
    lazy = load_model(tmp_path / "lazy.keras")
    assert lazy.name == "lazy" and not lazy.built and not lazy.compiled
    X, Y = data()
    m2 = Sequential([Input((6,)), Dense(3, activation="softmax")])
    m2.compile(optimizer="sgd", loss="categorical_crossentropy")
    m2.save(tmp_path / "c.keras")
    plain = load_model(tmp_path / "c.keras", compile=False)
    assert not plain.compiled
    with pytest.raises(ValueError, match=r"You must call `compile\(\)` before calling `fit\(\)`"):
        plain.fit(X, Y, verbose=0)


def test_weights_only_and_json(trained, tmp_path):
    m, X, _ = trained
    m.save_weights(tmp_path / "w.weights.npz")
    clone = model_from_json(m.to_json())
    assert not np.array_equal(clone.get_weights()[0], m.get_weights()[0])
    clone.load_weights(tmp_path / "w.weights.npz")
    np.testing.assert_array_equal(clone.predict(X, verbose=0), m.predict(X, verbose=0))
    other = Sequential([Input((6,)), Dense(5), Dense(3)])
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"expects float32 \(6, 5\)"):
        other.load_weights(tmp_path / "w.weights.npz")
    for a, b in zip(before, other.get_weights()):  # untouched on failure
        np.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match="Skipping"):
        other.load_weights(tmp_path / "w.weights.npz", skip_mismatch=True)
    with pytest.raises(ValueError, match=r"must end in `\.weights\.h5`"):
        m.save_weights(tmp_path / "w.h5")


def test_bad_extensions(trained, tmp_path):
    m, _, _ = trained
    for name in ("m.h5", "m", "m.zip"):
        with pytest.raises(ValueError, match="Invalid filepath extension"):
            m.save(tmp_path / name)
    with pytest.raises(ValueError, match="File not found"):
        load_model(tmp_path / "missing.keras")
    m.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="already exists"):
        m.save(tmp_path / "m.keras", overwrite=False)


# --- damaged files ----------------------------------------------------------------------
def rewrite(src, dst, change):
    """Copy a model zip, letting `change(entries)` edit the {name: bytes} dict."""
    with zipfile.ZipFile(src) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    change(entries)
    with zipfile.ZipFile(dst, "w") as zf:
        for n, b in entries.items():
            zf.writestr(n, b)
    return dst


def npy(a):
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def set_config(entries, edit):
    cfg = json.loads(entries["config.json"])
    edit(cfg)
    entries["config.json"] = json.dumps(cfg).encode()


def _layer1(cfg):
    return cfg["config"]["layers"][1]


DAMAGE = {
    "unknown layer class": (lambda e: set_config(e, lambda c: _layer1(c).update(
        class_name="Lambda")), "Unknown layer class 'Lambda'"),
    "code-looking module": (lambda e: set_config(e, lambda c: _layer1(c).update(
        module="os", class_name="system")), "Unknown layer class 'system'"),
    "bad layer config": (lambda e: set_config(e, lambda c: _layer1(c)["config"].update(
        units="many")), "Invalid config for layer 'Dense'"),
    "unknown config key": (lambda e: set_config(e, lambda c: _layer1(c)["config"].update(
        evil=1)), "Unrecognized keyword arguments"),
    "kernel shape": (lambda e: e.update({"layers/dense/vars/0.npy": npy(
        np.zeros((6, 15), np.float32))}), r"expects float32 \(6, 16\)"),
    "kernel dtype": (lambda e: e.update({"layers/dense/vars/0.npy": npy(
        np.zeros((6, 16), np.float64))}), "float64"),
    "pickled object array": (lambda e: e.update({"layers/dense/vars/1.npy": npy(
        np.array([{"a": 1}] * 16, dtype=object))}), "not a valid .npy"),
    "missing weights": (lambda e: e.pop("layers/dense_1/vars/0.npy"),
                        "missing entry layers/dense_1/vars/0.npy"),
    "extra entry": (lambda e: e.update({"payload.py": b"import os"}), "unexpected entries"),
    "broken json": (lambda e: e.update({"config.json": b"{not json"}), "not valid JSON"),
    "optimizer slot shape": (lambda e: e.update({"optimizer/m/0.npy": npy(
        np.zeros((2, 2), np.float32))}), r"optimizer/m/0.npy holds"),
    "negative iterations": (lambda e: set_config(e, lambda c: c["optimizer_state"].update(
        iterations=-3)), "invalid optimizer iterations"),
    "not our metadata": (lambda e: e.update({"metadata.json": b'{"keras_version": "3.15.1"}'}),
                         "does not describe a neuraxis model"),
    "truncated npy": (lambda e: e.update({"layers/dense/vars/0.npy":
                                          e["layers/dense/vars/0.npy"][:200]}),
                      "not a valid .npy"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_file_gives_clear_value_error(trained, tmp_path, case):
    m, _, _ = trained
    good = tmp_path / "good.neuraxis"
    m.save(good)
    change, message = DAMAGE[case]
    bad = rewrite(good, tmp_path / "bad.neuraxis", change)
    with pytest.raises(ValueError, match=message) as err:
        load_model(bad)
    assert "bad.neuraxis" in str(err.value)


def test_truncated_and_corrupted_archives(trained, tmp_path):
    m, _, _ = trained
    good = tmp_path / "good.neuraxis"  # neuraxis's own zip, even when named .keras
    m.save(good)
    raw = good.read_bytes()
    (tmp_path / "cut.keras").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a zip archive, or truncated"):
        load_model(tmp_path / "cut.keras")
    (tmp_path / "text.keras").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a valid neuraxis model file"):
        load_model(tmp_path / "text.keras")
    # Flip bytes inside a stored array: the CRC check catches it.
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("layers/dense/vars/0.npy")
    stored = rewrite(good, tmp_path / "stored.keras", lambda e: None)  # ZIP_STORED copy
    with zipfile.ZipFile(stored) as zf:
        offset = zf.getinfo("layers/dense/vars/0.npy").header_offset
    data = bytearray(stored.read_bytes())
    pos = offset + 30 + len(info.filename) + 200
    data[pos:pos + 8] = b"\xff" * 8
    (tmp_path / "flipped.keras").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="Could not load .*flipped.keras"):
        load_model(tmp_path / "flipped.keras")


def test_model_built_from_data_round_trips(tmp_path):
    X, Y = data()
    m = Sequential([Dense(5, activation="elu"), Dense(3, activation="softmax")])
    m.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["acc", "mse"])
    m.fit(X, Y, epochs=1, verbose=0)
    assert m.get_config()["build_input_shape"] == [None, 6]
    m.save(tmp_path / "d.keras")
    m2 = load_model(tmp_path / "d.keras")
    assert m2.input_shape == (None, 6) and m2.optimizer.get_config() == m.optimizer.get_config()
    np.testing.assert_array_equal(m2.predict(X, verbose=0), m.predict(X, verbose=0))
    assert m2.evaluate(X, Y, verbose=0, return_dict=True).keys() == {"loss", "acc", "mse"}


def test_pickle_and_deepcopy_keep_training_state():
    import copy
    import pickle

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    m = Sequential([Input((4,)), Dense(8, activation="relu"), Dense(1, activation="sigmoid")])
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    m.fit(X, y, epochs=2, verbose=0)
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        np.testing.assert_array_equal(clone.predict(X, verbose=0), m.predict(X, verbose=0))
    m2 = pickle.loads(pickle.dumps(m))
    a = m2.fit(X, y, epochs=1, verbose=0, shuffle=False).history
    b = m.fit(X, y, epochs=1, verbose=0, shuffle=False).history
    assert a == b  # the optimizer state travelled too
    for w1, w2 in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(w1, w2)
