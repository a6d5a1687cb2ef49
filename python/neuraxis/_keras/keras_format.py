"""Keras 3's own `.keras` files, both ways, and `.weights.h5`.

A `.keras` file is a zip of exactly three entries, as Keras 3.15 writes it:

    metadata.json       {"keras_version": "3.15.1", "date_saved": ..., "saved_by": "neuraxis ..."}
    config.json         {"module": "keras", "class_name": "Sequential", "config": get_config(),
                         "registered_name": null, "build_config": ..., "compile_config": ...}
    model.weights.h5    the weights and the optimizer state (layout: `keras_h5`)

so real Keras's `keras.saving.load_model` reads what `model.save("m.keras")` writes, and
`load_model` here reads files real Keras wrote. neuraxis's own zip (`archive`, JSON +
`.npy`, the `.neuraxis` format) is told apart by content: no `model.weights.h5` entry.

Nothing in a file is executed or imported: classes come from the caller's registries
(an unknown class name is a ValueError, a `__lambda__` anywhere in the config too).
Before anything large is allocated, every entry name is checked (no absolute paths,
no `..`: nothing outside the archive), each entry's declared size is bounded (against
zip bombs: at most `_MAX_RATIO` times its stored size) and is read with that bound
enforced while reading (a lying size stops there), and the model built from the config
may allocate no more weight bytes than the weights entry holds (`alloc.weight_budget`:
a config asking for `Dense(10**9)` fails at once).

Example
-------
>>> import os, tempfile, zipfile
>>> from neuraxis.models import Sequential
>>> from neuraxis.layers import Dense, Input
>>> model = Sequential([Input((3,)), Dense(2)])
>>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
>>> model.save(path)
>>> zipfile.ZipFile(path).namelist()
['metadata.json', 'config.json', 'model.weights.h5']
"""
import datetime
import io
import json
import os
import posixpath
import tempfile
import warnings
import zipfile

from . import alloc, archive, keras_h5
from .utils import user_stacklevel

KERAS_VERSION = "3.15.1"  # the Keras release whose file format this writes
WEIGHTS_H5 = "model.weights.h5"
_ENTRIES = ("metadata.json", "config.json", WEIGHTS_H5)
_MAX_JSON = 16 * 2**20
_MAX_WEIGHTS = 2**36          # 64 GiB: no model this front trains is near it
_MAX_RATIO = 1100             # DEFLATE cannot expand more than ~1032:1
_MAX_ENTRIES = 1000


# --- writing ---------------------------------------------------------------------------
def model_config(model):
    """config.json's dict, Keras's serialization of a Sequential model."""
    config = {"module": "keras", "class_name": "Sequential", "config": model.get_config(),
              "registered_name": None}
    if model.built:
        config["build_config"] = {"input_shape": list(model._build_input_shape)}
    if model.compiled:
        config["compile_config"] = model._compile_config
    return config


def _atomic(path, overwrite, write):
    """Run `write(file)` on a temporary file beside `path`, then rename it into place."""
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{path} already exists; pass overwrite=True to replace it")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_model(model, path, overwrite, version):
    """Write `model` to `path` as a real Keras 3 `.keras` archive."""
    if not model.built:
        warnings.warn("You are saving a model that has not yet been built. It might not "
                      "contain any weights yet. Consider building the model first by calling "
                      "it on some data.", UserWarning, stacklevel=user_stacklevel())
    meta = {"keras_version": KERAS_VERSION,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
            "saved_by": f"neuraxis {version}"}
    weights = io.BytesIO()
    keras_h5.write(model, weights)

    def write(f):
        with zipfile.ZipFile(f, "w") as zf:  # stored, as Keras writes it
            zf.writestr("metadata.json", json.dumps(meta))
            zf.writestr("config.json", json.dumps(model_config(model)))
            zf.writestr(WEIGHTS_H5, weights.getvalue())
    _atomic(path, overwrite, write)


def write_weights(model, path, overwrite):
    """Weights (and optimizer state) as a Keras `.weights.h5` file."""
    model._require_built("save_weights")
    _atomic(path, overwrite, lambda f: keras_h5.write(model, f))


# --- checked zip access --------------------------------------------------------------------
def check_names(zf):
    """Refuse archives whose entry names could point outside the archive (or are too many)."""
    infos = zf.infolist()
    if len(infos) > _MAX_ENTRIES:
        raise ValueError(f"{len(infos)} entries is far more than a model file holds")
    if len({i.filename for i in infos}) != len(infos):
        raise ValueError("an entry name appears more than once (which copy is meant?)")
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if (name.startswith(("/", "\\")) or "\\" in name or ".." in parts or "\x00" in name
                or (len(name) > 1 and name[1] == ":") or posixpath.normpath(name) != name.rstrip("/")):
            raise ValueError(f"unsafe entry name {name!r} (absolute, or leaving the archive)")
    return infos


def declared_size(zf, name, limit):
    """An entry's declared size, after the zip-bomb checks (at most `limit` bytes and at
    most `_MAX_RATIO` times what is stored)."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ValueError(f"{name} declares {info.file_size} bytes, more than the {limit} a "
                         "model file may hold")
    if info.file_size > _MAX_RATIO * info.compress_size + 4096:
        raise ValueError(f"{name} declares {info.file_size} bytes but stores only "
                         f"{info.compress_size}: refusing a potential zip bomb")
    return info.file_size


def read_entry(zf, name, limit):
    """The entry's bytes, never more than `limit` nor more than it declares (checked while
    reading, so a lying header cannot make us hold more)."""
    size = declared_size(zf, name, limit)
    chunks, total = [], 0
    with zf.open(name) as f:
        while True:
            chunk = f.read(min(1 << 20, size + 1 - total))
            if not chunk:
                break
            total += len(chunk)
            if total > size:
                raise ValueError(f"{name} holds more data than the {size} bytes it declares")
            chunks.append(chunk)
    if total != size:
        raise ValueError(f"{name} holds {total} bytes, not the {size} it declares")
    return b"".join(chunks)


def read_json(zf, name):
    try:
        return json.loads(read_entry(zf, name, _MAX_JSON).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{name} is not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"{name} is nested too deeply for a model config") from None


def refuse_code(obj, where="config.json"):
    """A ValueError for anything in the config that Keras would turn into code."""
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            if o.get("class_name") in ("__lambda__", "function", "__function__"):
                raise ValueError(f"{where} holds a serialized {o.get('class_name')!r} "
                                 f"({o.get('config')!r:.60}); code from files is never run")
            stack += list(o.values())
        elif isinstance(o, list):
            stack += o


def is_keras_archive(zf):
    """Whether the open zip is Keras's format (else neuraxis's own), by its entries."""
    names = set(zf.namelist())
    if "model.weights.npz" in names:
        raise ValueError("this .keras file keeps its weights as model.weights.npz (Keras "
                         "3.15's npz variant), which is not supported; save it with Keras's "
                         "default weights_format='h5'")
    return WEIGHTS_H5 in names


# --- reading ---------------------------------------------------------------------------
def read_model(zf, from_config, compile_model):
    """The model in an open Keras archive: built from config.json by `from_config` (under
    a weight budget of the weights entry's size), weights checked then copied, then
    compiled by `compile_model(model, compile_config)` (when given) with the optimizer
    state restored. What cannot be restored of the compile state is a warning."""
    h5py = keras_h5._h5py()
    extra = set(zf.namelist()) - set(_ENTRIES)
    if extra:
        raise ValueError(f"unexpected entries {sorted(extra)[:5]} (assets are not supported)")
    cfg = read_json(zf, "config.json")
    if not isinstance(cfg, dict):
        raise ValueError("config.json must hold a dict")
    refuse_code(cfg)
    if cfg.get("class_name") != "Sequential":
        raise ValueError(f"unknown model class {cfg.get('class_name')!r}; only Sequential "
                         "models are supported (Functional and subclassed ones are not)")
    if "metadata.json" in zf.namelist():
        read_json(zf, "metadata.json")  # bounded and well-formed, nothing in it is needed
    budget = declared_size(zf, WEIGHTS_H5, _MAX_WEIGHTS)
    with alloc.weight_budget(budget, WEIGHTS_H5):
        model = from_config(cfg.get("config"))
    # Now the model fixes what the weights entry may hold: its arrays, up to three
    # optimizer slots each, and HDF5's bookkeeping.
    nbytes = sum(w.nbytes for w in model.weights)
    raw = read_entry(zf, WEIGHTS_H5, min(_MAX_WEIGHTS, 4 * nbytes + 2**20
                                         + 16384 * (len(model.weights) + 8)))
    try:
        f = h5py.File(io.BytesIO(raw), "r")
    except OSError as e:
        raise ValueError(f"{WEIGHTS_H5} is not a valid HDF5 file ({e})") from None
    with f:
        for a, value in keras_h5.read_layers(f, model):
            a[...] = value
        cc = cfg.get("compile_config")
        if compile_model is not None and cc:
            if _try_compile(model, cc, compile_model) and keras_h5.has_optimizer(f) \
                    and model.built:
                keras_h5.read_optimizer(f, model)
    return model


def _try_compile(model, cc, compile_model):
    if not isinstance(cc, dict):
        raise ValueError("compile_config must be a dict")
    try:
        compile_model(model, cc)
        return True
    except (ValueError, NotImplementedError, TypeError, KeyError) as e:
        warnings.warn(f"compile() was not restored from the file ({type(e).__name__}: {e}); "
                      "the model is returned uncompiled", UserWarning,
                      stacklevel=user_stacklevel())
        return False


def read_weights(model, path, skip_mismatch):
    """Copy weights from a Keras `.weights.h5` file, or the `model.weights.h5` of a `.keras`
    zip, into the built `model` (and the optimizer state, when compiled and present)."""
    h5py = keras_h5._h5py()
    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as zf:
            check_names(zf)
            nbytes = sum(w.nbytes for w in model.weights)
            raw = read_entry(zf, WEIGHTS_H5, min(_MAX_WEIGHTS, 4 * nbytes + 2**20
                                                 + 16384 * (len(model.weights) + 8)))
        source = io.BytesIO(raw)
    else:
        source = path
    try:
        f = h5py.File(source, "r")
    except OSError as e:
        raise ValueError(f"not a valid HDF5 weights file ({e})") from None
    with f:
        loaded = keras_h5.read_layers(f, model, skip_mismatch)
        for a, value in loaded:  # only after every array checked out
            a[...] = value
        if model.compiled and keras_h5.has_optimizer(f):
            keras_h5.read_optimizer(f, model)


# --- the entry points: format by content ------------------------------------------------
_ERRORS = (ValueError, KeyError, TypeError, NotImplementedError, zipfile.BadZipFile, EOFError,
           OSError, RuntimeError)


def load_model(filepath, from_config, compile_model=None):
    """A model from a `.keras` / `.neuraxis` file, real Keras's format or neuraxis's own."""
    path = archive.checked_path(filepath, archive.MODEL_EXTS, "Model")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path} is not a valid neuraxis model file (not a zip archive, or "
                         f"truncated): {e}") from None
    try:
        with zf:
            infos = check_names(zf)
            if is_keras_archive(zf):
                return read_model(zf, from_config, compile_model)
            # neuraxis's own format: its arrays bound what the config may allocate
            budget = sum(declared_size(zf, i.filename, _MAX_WEIGHTS) for i in infos)
    except _ERRORS as e:
        raise ValueError(f"Could not load {path}: {e}") from None
    with alloc.weight_budget(budget, path):
        return archive.read_model(path, from_config, compile_model)


def load_weights(model, filepath, skip_mismatch):
    """`model.load_weights`: `.weights.h5` and Keras `.keras` files here, the rest in
    `archive` (`.weights.npz`, neuraxis's own model files)."""
    path = os.fspath(filepath)
    if path.endswith(".weights.h5") or path.endswith(".keras") and _zip_is_keras(path):
        model._require_built("load_weights")
        path = archive.checked_path(path, (".weights.h5", ".keras"), "Weights")
        try:
            read_weights(model, path, skip_mismatch)
        except _ERRORS as e:
            raise ValueError(f"Could not load {path}: {e}") from None
    else:
        archive.read_weights(model, path, skip_mismatch)


def _zip_is_keras(path):
    try:
        with zipfile.ZipFile(path) as zf:
            return is_keras_archive(zf)
    except (zipfile.BadZipFile, OSError, EOFError):
        return False  # archive.read_weights reports it
