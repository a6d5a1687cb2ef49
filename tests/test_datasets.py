"""neuraxis.datasets without a network: small fake files of each set's real format are
written into a temporary Keras cache, and the loaders' output is checked against NumPy
reimplementations written here and against real Keras 3's loaders reading the same files
(in a subprocess). Also: the cache folder (KERAS_HOME, ~/.keras), hash mismatch ->
download again (the downloader mocked), bad downloads, corrupt files, unsafe archives."""
import doctest
import gzip
import hashlib
import io
import json
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import tarfile
import textwrap
import urllib.error

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from neuraxis import datasets
from neuraxis.datasets import (_files, boston_housing, cifar10, cifar100, fashion_mnist, imdb,
                               mnist, reuters)

from real_keras import needs_keras


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class FakeNet:
    """Stands in for urlretrieve: serves prepared bytes per origin, records the calls."""

    def __init__(self):
        self.served, self.calls = {}, []

    def __call__(self, url, filename, reporthook):
        self.calls.append((url, filename))
        if url not in self.served:
            raise urllib.error.URLError("no network in tests")
        data = self.served[url]
        with open(filename, "wb") as f:
            f.write(data)
        for block in range(len(data) // 8192 + 2):
            reporthook(block, 8192, len(data))


class CachePath(type(pathlib.Path())):
    """A path that also carries the fake network (`.net`)."""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty Keras cache ($KERAS_HOME) and a fake network; returns the datasets folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    net = FakeNet()
    monkeypatch.setattr(_files, "_urlretrieve", net)
    d = CachePath(tmp_path / "keras_home" / "datasets")
    d.mkdir(parents=True)
    d.net = net
    return d


def trust(monkeypatch, module, path, attr="FILE_HASH"):
    """Make `module`'s expected hash the fake file's, as if it were the real one."""
    monkeypatch.setattr(module, attr, sha256(path))


def npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def ragged(rng, n, vocab, lo=1, hi=12):
    out = np.empty(n, dtype=object)
    for i in range(n):
        out[i] = [int(w) for w in rng.integers(1, vocab, rng.integers(lo, hi))]
    return out


# --- references written here --------------------------------------------------------------
def ref_shuffle(n, rng):
    order = np.arange(n)
    rng.shuffle(order)
    return order


def ref_sequences(seqs, num_words, skip_top, maxlen, start_char, oov_char, index_from, labels):
    """IMDB/Reuters processing, written per sequence with NumPy masks."""
    arrays, kept = [], []
    for s, y in zip(seqs, labels):
        a = np.asarray(s, np.int64) + index_from
        if start_char is not None:
            a = np.concatenate([[start_char], a])
        if maxlen and not len(a) < maxlen:
            continue
        arrays.append(a)
        kept.append(y)
    return arrays, kept


def ref_limit(arrays, num_words, skip_top, oov_char):
    top = num_words or max(int(a.max()) for a in arrays)
    ok = [(a >= skip_top) & (a < top) for a in arrays]
    if oov_char is None:
        return [a[m].tolist() for a, m in zip(arrays, ok)]
    return [np.where(m, a, oov_char).tolist() for a, m in zip(arrays, ok)]


# --- the cache, get_file ----------------------------------------------------------------------
def test_mnist_reads_a_cached_file_without_downloading(cache, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (7, 28, 28), np.uint8),
              "y_train": rng.integers(0, 10, 7).astype(np.uint8),
              "x_test": rng.integers(0, 256, (3, 28, 28), np.uint8),
              "y_test": rng.integers(0, 10, 3).astype(np.uint8)}
    (cache / "mnist.npz").write_bytes(npz_bytes(**arrays))
    trust(monkeypatch, mnist, cache / "mnist.npz")
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    for got, key in ((x_train, "x_train"), (y_train, "y_train"), (x_test, "x_test"),
                     (y_test, "y_test")):
        assert got.dtype == np.uint8
        assert_array_equal(got, arrays[key])
    assert cache.net.calls == []


def test_cache_folder_is_home_dot_keras_without_keras_home(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _files.keras_home() == os.path.join(str(tmp_path), ".keras")
    d = tmp_path / ".keras" / "datasets"
    d.mkdir(parents=True)
    (d / "boston_housing.npz").write_bytes(npz_bytes(x=np.ones((5, 13)), y=np.arange(5.)))
    monkeypatch.setattr(boston_housing, "FILE_HASH", sha256(d / "boston_housing.npz"))
    monkeypatch.setattr(_files, "_urlretrieve", FakeNet())
    (x_train, _), (x_test, _) = boston_housing.load_data()
    assert x_train.shape == (4, 13) and x_test.shape == (1, 13)


def test_hash_mismatch_in_cache_downloads_again(cache, capsys):
    good = npz_bytes(x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8),
                     x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.ones(1, np.uint8))
    (cache / "mnist.npz").write_bytes(b"stale partial download")
    cache.net.served[mnist.ORIGIN] = good
    original = mnist.FILE_HASH
    try:
        mnist.FILE_HASH = hashlib.sha256(good).hexdigest()
        _, (_, y_test) = mnist.load_data()
    finally:
        mnist.FILE_HASH = original
    assert cache.net.calls == [(mnist.ORIGIN, str(cache / "mnist.npz"))]
    assert_array_equal(y_test, [1])
    out = capsys.readouterr().out
    assert "A local file was found, but it seems to be incomplete or outdated" in out
    assert f"Downloading data from {mnist.ORIGIN}" in out
    size = len(good)
    assert f"{size}/{size}" in out  # the progress bar counts bytes, as Keras's


def test_a_download_with_the_wrong_hash_is_an_error(cache):
    cache.net.served[mnist.ORIGIN] = b"not mnist"
    with pytest.raises(ValueError, match="Incomplete or corrupted file detected. The auto file "
                       f"hash does not match the provided value of {mnist.FILE_HASH}"):
        mnist.load_data()


def test_a_failed_download_leaves_no_file(cache):
    with pytest.raises(Exception, match="URL fetch failure on .*mnist.npz.*no network"):
        mnist.load_data()
    assert not (cache / "mnist.npz").exists()


def test_get_file_names_and_md5(cache):
    path = cache / "words.json"
    path.write_text('{"a": 1}')
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    assert _files.get_file("words.json", origin="https://x.invalid/w.json",
                           file_hash=md5) == str(path)
    assert _files.validate_file(str(path), md5) and not _files.validate_file(str(path), "0" * 64)
    with pytest.raises(ValueError, match="Paths are no longer accepted"):
        _files.get_file(os.path.join("a", "b.npz"), origin="https://x.invalid/b.npz")
    with pytest.raises(ValueError, match='specify the "origin"'):
        _files.get_file("b.npz")
    # no fname: the origin's base name
    cache.net.served["https://x.invalid/dir/c.txt"] = b"c"
    assert _files.get_file(origin="https://x.invalid/dir/c.txt") == str(cache / "c.txt")


def test_a_corrupt_file_with_a_good_hash_is_a_clear_error(cache, monkeypatch):
    (cache / "mnist.npz").write_bytes(b"PK\x03\x04 truncated zip")
    trust(monkeypatch, mnist, cache / "mnist.npz")
    with pytest.raises(ValueError, match="Could not read the dataset file .*mnist.npz.*delete"):
        mnist.load_data()


# --- each data set ---------------------------------------------------------------------------
def idx_gz(array, dims):
    header = struct.pack(">HBB", 0, 8, len(dims)) + b"".join(struct.pack(">I", d)
                                                             for d in dims)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files(cache):
    rng = np.random.default_rng(1)
    folder = cache / "fashion-mnist"
    folder.mkdir()
    data = {}
    for split, n in (("train", 6), ("t10k", 4)):
        x = rng.integers(0, 256, (n, 28, 28))
        y = rng.integers(0, 10, n)
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(idx_gz(x, (n, 28, 28)))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(idx_gz(y, (n,)))
        data[split] = (x, y)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.dtype == y_train.dtype == np.uint8
    assert_array_equal(x_train, data["train"][0])
    assert_array_equal(y_train, data["train"][1])
    assert_array_equal(x_test, data["t10k"][0])
    assert_array_equal(y_test, data["t10k"][1])
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="Could not read the dataset file"):
        fashion_mnist.load_data()


@pytest.mark.parametrize("test_split,seed", [(0.2, 113), (0.5, 7), (0.0, 1)])
def test_boston_housing_split(cache, monkeypatch, test_split, seed):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(31, 13)), rng.normal(size=31)
    (cache / "boston_housing.npz").write_bytes(npz_bytes(x=x, y=y))
    trust(monkeypatch, boston_housing, cache / "boston_housing.npz")
    (x_train, y_train), (x_test, y_test) = boston_housing.load_data(test_split=test_split,
                                                                    seed=seed)
    order = ref_shuffle(31, np.random.RandomState(seed))
    cut = int(31 * (1 - test_split))
    assert_array_equal(x_train, x[order[:cut]])
    assert_array_equal(y_train, y[order[:cut]])
    assert_array_equal(x_test, x[order[cut:]])
    assert_array_equal(y_test, y[order[cut:]])


def test_boston_housing_bad_split():
    with pytest.raises(ValueError, match="Invalid `test_split` argument: 1"):
        boston_housing.load_data(test_split=1)


def write_imdb(cache, monkeypatch, rng, n_train=40, n_test=30, vocab=30):
    arrays = {"x_train": ragged(rng, n_train, vocab), "y_train": rng.integers(0, 2, n_train),
              "x_test": ragged(rng, n_test, vocab), "y_test": rng.integers(0, 2, n_test)}
    (cache / "imdb.npz").write_bytes(npz_bytes(**arrays))
    trust(monkeypatch, imdb, cache / "imdb.npz")
    return arrays


IMDB_CASES = [dict(), dict(num_words=12), dict(num_words=15, skip_top=5),
              dict(maxlen=8), dict(start_char=None), dict(start_char=None, index_from=0),
              dict(oov_char=None, num_words=10, skip_top=4), dict(seed=5, index_from=1),
              dict(num_words=20, maxlen=10, start_char=7, oov_char=9, index_from=4)]


@pytest.mark.parametrize("kw", IMDB_CASES)
def test_imdb_matches_a_numpy_reimplementation(cache, monkeypatch, kw):
    a = write_imdb(cache, monkeypatch, np.random.default_rng(3))
    (x_train, y_train), (x_test, y_test) = imdb.load_data(**kw)
    p = dict(num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2,
             index_from=3)
    p.update(kw)
    rng = np.random.RandomState(p["seed"])
    tr, te = ref_shuffle(40, rng), ref_shuffle(30, rng)
    args = [p[k] for k in ("num_words", "skip_top", "maxlen", "start_char", "oov_char",
                           "index_from")]
    s_tr, l_tr = ref_sequences(a["x_train"][tr], *args, a["y_train"][tr])
    s_te, l_te = ref_sequences(a["x_test"][te], *args, a["y_test"][te])
    limited = ref_limit(s_tr + s_te, p["num_words"], p["skip_top"], p["oov_char"])
    assert x_train.dtype == object and x_train.shape == (len(s_tr),)
    assert [list(s) for s in x_train] == limited[:len(s_tr)]
    assert [list(s) for s in x_test] == limited[len(s_tr):]
    assert_array_equal(y_train, l_tr)
    assert_array_equal(y_test, l_te)


def test_imdb_maxlen_too_small_and_word_index(cache, monkeypatch):
    write_imdb(cache, monkeypatch, np.random.default_rng(4))
    with pytest.raises(ValueError, match="no sequence was kept. Increase maxlen"):
        imdb.load_data(maxlen=1)
    (cache / "imdb_word_index.json").write_text(json.dumps({"the": 1, "and": 2}))
    monkeypatch.setattr(imdb, "WORD_INDEX_HASH",
                        hashlib.md5((cache / "imdb_word_index.json").read_bytes()).hexdigest())
    assert imdb.get_word_index() == {"the": 1, "and": 2}


class Gadget:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_that_would_run_code_is_refused(cache, monkeypatch):
    bad = np.empty(1, dtype=object)
    bad[0] = Gadget()
    (cache / "imdb.npz").write_bytes(npz_bytes(x_train=bad, y_train=np.zeros(1),
                                               x_test=bad, y_test=np.zeros(1)))
    trust(monkeypatch, imdb, cache / "imdb.npz")
    with pytest.raises(ValueError, match="Refusing to deserialize `posix.system`"):
        imdb.load_data()


@pytest.mark.parametrize("kw", [dict(), dict(num_words=10, test_split=0.3),
                                dict(maxlen=9, oov_char=None, skip_top=3),
                                dict(start_char=None, index_from=0)])
def test_reuters_matches_a_numpy_reimplementation(cache, monkeypatch, kw):
    rng = np.random.default_rng(5)
    xs, ys = ragged(rng, 50, 25), rng.integers(0, 46, 50)
    (cache / "reuters.npz").write_bytes(npz_bytes(x=xs, y=ys))
    trust(monkeypatch, reuters, cache / "reuters.npz")
    (x_train, y_train), (x_test, y_test) = reuters.load_data(**kw)
    p = dict(num_words=None, skip_top=0, maxlen=None, test_split=0.2, seed=113, start_char=1,
             oov_char=2, index_from=3)
    p.update(kw)
    order = ref_shuffle(50, np.random.RandomState(p["seed"]))
    seqs, labels = ref_sequences(xs[order], p["num_words"], p["skip_top"], p["maxlen"],
                                 p["start_char"], p["oov_char"], p["index_from"], ys[order])
    limited = ref_limit(seqs, p["num_words"], p["skip_top"], p["oov_char"])
    cut = int(len(limited) * (1 - p["test_split"]))
    assert [list(s) for s in x_train] == limited[:cut]
    assert [list(s) for s in x_test] == limited[cut:]
    assert_array_equal(y_train, labels[:cut])
    assert_array_equal(y_test, labels[cut:])
    assert len(reuters.get_label_names()) == 46


def cifar_batch(rng, n, label_keys):
    d = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), b"batch_label": b"x"}
    for k in label_keys:
        d[k.encode()] = [int(v) for v in rng.integers(0, 100, n)]
    return d


def tar_gz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def to_nhwc(data):
    # CIFAR rows are 1024 red, 1024 green, 1024 blue values, each 32x32 row-major
    n = data.shape[0]
    return np.stack([data[:, c * 1024:(c + 1) * 1024].reshape(n, 32, 32) for c in range(3)],
                    axis=-1)


def test_cifar10_extracts_and_parses_batches(cache, monkeypatch):
    rng = np.random.default_rng(6)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {n: cifar_batch(rng, 3, ["labels"]) for n in names}
    archive = tar_gz({f"cifar-10-batches-py/{n}": pickle.dumps(b, protocol=4)
                      for n, b in batches.items()})
    cache.net.served[cifar10.ORIGIN] = archive
    monkeypatch.setattr(cifar10, "FILE_HASH", hashlib.sha256(archive).hexdigest())
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    assert (cache / "cifar-10-batches-py-target_archive").is_file()
    assert (cache / "cifar-10-batches-py-target" / "cifar-10-batches-py" / "test_batch").is_file()
    train = [batches[n] for n in names[:5]]
    assert x_train.shape == (15, 32, 32, 3) and x_train.dtype == np.uint8
    assert_array_equal(x_train, np.concatenate([to_nhwc(b[b"data"]) for b in train]))
    assert y_train.shape == (15, 1) and y_train.dtype == np.uint8
    assert_array_equal(y_train[:, 0], np.concatenate([b[b"labels"] for b in train]) % 256)
    assert_array_equal(x_test, to_nhwc(batches["test_batch"][b"data"]))
    assert y_test.dtype == np.uint8 and y_test.shape == (3, 1)
    cifar10.load_data()  # second call: from the cache
    assert len(cache.net.calls) == 1


@pytest.mark.parametrize("mode", ["fine", "coarse"])
def test_cifar100_label_modes(cache, monkeypatch, mode):
    rng = np.random.default_rng(7)
    b = {n: cifar_batch(rng, 4, ["fine_labels", "coarse_labels"]) for n in ("train", "test")}
    archive = tar_gz({f"cifar-100-python/{n}": pickle.dumps(v, protocol=4)
                      for n, v in b.items()})
    (cache / "cifar-100-python-target_archive").write_bytes(archive)
    monkeypatch.setattr(cifar100, "FILE_HASH", hashlib.sha256(archive).hexdigest())
    (x_train, y_train), (x_test, y_test) = cifar100.load_data(mode)
    assert_array_equal(x_train, to_nhwc(b["train"][b"data"]))
    assert_array_equal(y_test[:, 0], b["test"][f"{mode}_labels".encode()])
    assert y_train.shape == (4, 1) and y_train.dtype == np.int64
    with pytest.raises(ValueError, match='`label_mode` must be one of `"fine"`, `"coarse"`'):
        cifar100.load_data("medium")


def test_unsafe_archive_members_are_skipped(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("ok/a.txt", "../escape.txt", "/abs/evil.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
        link = tarfile.TarInfo("ok/link")
        link.type, link.linkname = tarfile.SYMTYPE, "../../outside"
        tar.addfile(link)
    (tmp_path / "a.tar.gz").write_bytes(buf.getvalue())
    with pytest.warns(UserWarning, match="Skipping invalid path during archive extraction") as w:
        assert _files.extract_archive(str(tmp_path / "a.tar.gz"), str(tmp_path / "out"))
    assert len(w) == 3
    assert (tmp_path / "out" / "ok" / "a.txt").read_bytes() == b"hi"
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "out" / "ok" / "link").exists()
    assert sorted(os.listdir(tmp_path)) == ["a.tar.gz", "out"]


@pytest.mark.parametrize("module", [_files, datasets, reuters])
def test_docstring_examples(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


# --- real Keras on the same files ------------------------------------------------------------
KERAS_SCRIPT = textwrap.dedent("""
    import json, sys
    from keras.src.utils import file_utils
    seen = {}
    def validate(fpath, file_hash, algorithm="auto", chunk_size=65535):
        seen[fpath.rsplit("/", 1)[-1]] = file_hash   # Keras's own hash for each file
        return True
    file_utils.validate_file = validate
    def no_net(*a, **k):
        raise RuntimeError("Keras tried to download")
    file_utils.urlretrieve = no_net
    from keras.datasets import imdb, reuters, mnist, boston_housing, cifar100, fashion_mnist
    out = {"imdb": [], "reuters": []}
    for kw in json.loads(sys.argv[1]):
        (a, b), (c, d) = imdb.load_data(**kw)
        out["imdb"].append([[list(map(int, s)) for s in a], b.tolist(),
                            [list(map(int, s)) for s in c], d.tolist()])
    for kw in json.loads(sys.argv[2]):
        (a, b), (c, d) = reuters.load_data(**kw)
        out["reuters"].append([[list(map(int, s)) for s in a], b.tolist(),
                               [list(map(int, s)) for s in c], d.tolist()])
    import numpy as np
    arrays = {}
    for name, res in (("mnist", mnist.load_data()), ("boston", boston_housing.load_data()),
                      ("cifar100", cifar100.load_data("coarse")),
                      ("fashion", fashion_mnist.load_data())):
        (a, b), (c, d) = res
        for k, v in zip("abcd", (a, b, c, d)):
            arrays[f"{name}_{k}"] = v
    np.savez(sys.argv[3], **arrays)
    out["hashes"] = seen
    print(json.dumps(out))
""")


@needs_keras
def test_loaders_match_real_keras_on_the_same_files(tmp_path, monkeypatch):
    home = tmp_path / "kh"
    cache = home / "datasets"
    (cache / "fashion-mnist").mkdir(parents=True)
    rng = np.random.default_rng(8)
    arrays = {"x_train": ragged(rng, 40, 30), "y_train": rng.integers(0, 2, 40),
              "x_test": ragged(rng, 30, 30), "y_test": rng.integers(0, 2, 30)}
    (cache / "imdb.npz").write_bytes(npz_bytes(**arrays))
    (cache / "reuters.npz").write_bytes(npz_bytes(x=ragged(rng, 50, 25),
                                                  y=rng.integers(0, 46, 50)))
    (cache / "mnist.npz").write_bytes(npz_bytes(
        x_train=rng.integers(0, 256, (5, 28, 28), np.uint8), y_train=np.arange(5, dtype=np.uint8),
        x_test=rng.integers(0, 256, (2, 28, 28), np.uint8), y_test=np.arange(2, dtype=np.uint8)))
    (cache / "boston_housing.npz").write_bytes(npz_bytes(x=rng.normal(size=(21, 13)),
                                                         y=rng.normal(size=21)))
    b = {n: cifar_batch(rng, 4, ["fine_labels", "coarse_labels"]) for n in ("train", "test")}
    (cache / "cifar-100-python-target_archive").write_bytes(tar_gz(
        {f"cifar-100-python/{n}": pickle.dumps(v, protocol=4) for n, v in b.items()}))
    for split, n in (("train", 3), ("t10k", 2)):
        (cache / "fashion-mnist" / f"{split}-images-idx3-ubyte.gz").write_bytes(
            idx_gz(rng.integers(0, 256, (n, 28, 28)), (n, 28, 28)))
        (cache / "fashion-mnist" / f"{split}-labels-idx1-ubyte.gz").write_bytes(
            idx_gz(rng.integers(0, 10, n), (n,)))
    reuters_cases = [dict(), dict(num_words=10, test_split=0.3),
                     dict(maxlen=9, oov_char=None, skip_top=3)]
    env = dict(os.environ, KERAS_BACKEND="torch", KERAS_HOME=str(home))
    res = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, json.dumps(IMDB_CASES),
                          json.dumps(reuters_cases), str(tmp_path / "keras.npz")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    keras_out = json.loads(res.stdout.strip().splitlines()[-1])

    # the hashes Keras checks are ours (so a file Keras downloaded passes our check)
    assert keras_out["hashes"] == {
        "imdb.npz": imdb.FILE_HASH, "reuters.npz": reuters.FILE_HASH,
        "mnist.npz": mnist.FILE_HASH, "boston_housing.npz": boston_housing.FILE_HASH,
        "cifar-100-python-target_archive": cifar100.FILE_HASH}
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(_files, "validate_file", lambda *a, **k: True)
    monkeypatch.setattr(_files, "_urlretrieve", FakeNet())
    for kw, want in zip(IMDB_CASES, keras_out["imdb"]):
        (a, b2), (c, d) = imdb.load_data(**kw)
        assert [[list(s) for s in a], b2.tolist(), [list(s) for s in c], d.tolist()] == want, kw
    for kw, want in zip(reuters_cases, keras_out["reuters"]):
        (a, b2), (c, d) = reuters.load_data(**kw)
        assert [[list(s) for s in a], b2.tolist(), [list(s) for s in c], d.tolist()] == want, kw
    with np.load(tmp_path / "keras.npz") as k:
        for name, res in (("mnist", mnist.load_data()), ("boston", boston_housing.load_data()),
                          ("cifar100", cifar100.load_data("coarse")),
                          ("fashion", fashion_mnist.load_data())):
            (a, b2), (c, d) = res
            for key, v in zip("abcd", (a, b2, c, d)):
                want = k[f"{name}_{key}"]
                assert v.dtype == want.dtype and v.shape == want.shape, (name, key)
                assert_array_equal(v, want)
