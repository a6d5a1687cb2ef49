"""The Keras front's file format: one zip, JSON + raw `.npy` arrays, no pickle.

Layout of `model.neuraxis` (or `.keras`), close to Keras's own `.keras` files:

    metadata.json                 format name/version, neuraxis version, date
    config.json                   {"class_name": "Sequential", "config": get_config(),
                                   "compile_config": ..., "optimizer_state": {"iterations": t}}
    layers/dense/vars/0.npy       Dense kernel (Keras's h5 naming: class-based, `dense_1`, ...)
    layers/dense/vars/1.npy       Dense bias
    optimizer/m/0.npy ...         optimizer slots, one per weight (Adam: m and v)

A `.weights.npz` holds the `layers/...` entries alone. Reading builds the model from
the config with a function the caller passes in (`neuraxis.saving` passes
`Sequential.from_config`, which knows only registered classes: nothing in the file
is imported or executed), then checks every array's name, dtype and shape against
that model before copying it in. Any damage — not a zip, truncated, a bad CRC,
broken JSON, an unknown class, a wrong shape — is a ValueError naming the file.
"""
import datetime
import io
import json
import os
import tempfile
import warnings
import zipfile

import numpy as np

from .utils import to_snake_case, user_stacklevel

FORMAT = "neuraxis-keras"
FORMAT_VERSION = 1
MODEL_EXTS = (".neuraxis", ".keras")
WEIGHTS_EXT = ".weights.npz"
_MAX_JSON = 16 * 2**20
_MAX_ENTRIES = 100_000


def _weight_entries(model):
    """[(zip entry, live array)] in Keras's h5 naming: layers/<class>[_n]/vars/<i>.npy."""
    out, seen = [], {}
    for layer in model.layers:
        base = to_snake_case(type(layer).__name__)
        n = seen.get(base, 0)
        seen[base] = n + 1
        key = base if n == 0 else f"{base}_{n}"
        for i, a in enumerate(layer.weights):
            out.append((f"layers/{key}/vars/{i}.npy", a))
    return out


def _npy_bytes(a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _write_zip(path, entries, overwrite):
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{path} already exists; pass overwrite=True to replace it")
    folder = os.path.dirname(os.path.abspath(path))
    # Write beside the target and rename: an interrupted save never leaves a broken file.
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".zip", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, payload in entries:
                zf.writestr(name, payload)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_model(model, filepath, overwrite, version):
    """Write `model` to a `.neuraxis` / `.keras` zip (see the module docstring); `version` is
    the neuraxis version recorded in metadata.json."""
    path = os.fspath(filepath)
    if not path.endswith(MODEL_EXTS):
        raise ValueError("Invalid filepath extension for saving. Please add either a `.neuraxis` "
                         f"or `.keras` extension for the native format. Received: filepath={path}")
    config = {"module": "keras", "class_name": "Sequential", "config": model.get_config(),
              "registered_name": None}
    if model.built:
        config["build_config"] = {"input_shape": list(model._build_input_shape)}
    config["compile_config"] = model._compile_config if model.compiled else None
    entries = [(name, _npy_bytes(a)) for name, a in _weight_entries(model)]
    opt = model.optimizer
    if model.compiled and opt is not None and opt.built:
        config["optimizer_state"] = {"iterations": int(opt.iterations), "m": len(opt._m),
                                     "v": len(opt._v), **opt._scalar_state()}
        entries += [(f"optimizer/m/{i}.npy", _npy_bytes(a)) for i, a in enumerate(opt._m)]
        entries += [(f"optimizer/v/{i}.npy", _npy_bytes(a)) for i, a in enumerate(opt._v)]
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "neuraxis_version": version,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    entries = [("metadata.json", json.dumps(meta, indent=2)),
               ("config.json", json.dumps(config, indent=2))] + entries
    _write_zip(path, entries, overwrite)


class _Archive:
    """Checked reads from a zip: bounded JSON, `.npy` validated against an expected array."""

    def __init__(self, zf, path):
        self.zf, self.path = zf, path
        infos = zf.infolist()
        if len(infos) > _MAX_ENTRIES:
            raise ValueError(f"{len(infos)} entries is far more than a model file holds")
        self.names = {i.filename for i in infos}
        if len(self.names) != len(infos):
            raise ValueError("an entry name appears more than once (which copy is meant?)")
        self.used = set()

    def json(self, name):
        info = self._info(name)
        if info.file_size > _MAX_JSON:
            raise ValueError(f"{name} is {info.file_size} bytes, larger than any valid config")
        try:
            return json.loads(self.zf.read(name).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{name} is not valid JSON ({e})") from None
        except RecursionError:
            raise ValueError(f"{name} is nested too deeply for a model config") from None

    def array(self, name, like):
        info = self._info(name)
        # The header is < 4 KiB; a larger declared size means a tampered (or zip-bomb) entry.
        if info.file_size > like.nbytes + 4096:
            raise ValueError(f"{name} declares {info.file_size} bytes, expected about "
                             f"{like.nbytes}")
        try:
            a = np.load(io.BytesIO(self.zf.read(name)), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{name} is not a valid .npy array ({e})") from None
        if not isinstance(a, np.ndarray) or a.dtype != like.dtype or a.shape != like.shape:
            raise ValueError(f"{name} holds {getattr(a, 'dtype', '?')} "
                             f"{getattr(a, 'shape', '?')}, but the model's config expects "
                             f"{like.dtype} {like.shape}")
        return a

    def _info(self, name):
        if name not in self.names:
            raise ValueError(f"missing entry {name}")
        self.used.add(name)
        return self.zf.getinfo(name)


def checked_path(path, exts, what):
    """`path` as a string, when it ends in one of `exts` and is a file (else Keras's
    ValueError)."""
    path = os.fspath(path)
    if not path.endswith(exts):
        raise ValueError(f"File format not supported: filepath={path}. {what} files end in "
                         f"{' or '.join(exts)}.")
    if not os.path.isfile(path):
        raise ValueError(f"File not found: filepath={path}. Please ensure the file is an "
                         "accessible model file.")
    return path


def _open(path, exts, what):
    path = checked_path(path, exts, what)
    try:
        return zipfile.ZipFile(path), path
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path} is not a valid neuraxis model file (not a zip archive, or "
                         f"truncated): {e}") from None


def _fail(path, e):
    return ValueError(f"Could not load {path}: {e}")


def read_model(filepath, from_config, compile_model=None):
    """The model in a `write_model` file: `from_config(config)` builds it from config.json's
    "config"; then its weights are checked and copied in and, when `compile_model` is given,
    `compile_model(model, compile_config)` compiles it before the optimizer state is restored.
    """
    zf, path = _open(filepath, MODEL_EXTS, "Model")
    try:
        with zf:
            ar = _Archive(zf, path)
            meta = ar.json("metadata.json")
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError("metadata.json does not describe a neuraxis model (files saved "
                                 "by Keras itself hold HDF5 weights, which cannot be read here)")
            if not isinstance(meta.get("format_version"), int) or \
                    meta["format_version"] > FORMAT_VERSION:
                raise ValueError(f"format_version {meta.get('format_version')!r} is newer than "
                                 f"this neuraxis reads ({FORMAT_VERSION})")
            cfg = ar.json("config.json")
            if not isinstance(cfg, dict) or cfg.get("class_name") != "Sequential":
                raise ValueError(f"unknown model class "
                                 f"{cfg.get('class_name') if isinstance(cfg, dict) else cfg!r}; "
                                 "only Sequential is supported")
            model = from_config(cfg.get("config"))
            for name, a in _weight_entries(model):
                a[...] = ar.array(name, a)
            if compile_model is not None and cfg.get("compile_config"):
                _restore_compile(model, cfg["compile_config"], cfg.get("optimizer_state"), ar,
                                 compile_model)
            else:
                ar.used |= {n for n in ar.names if n.startswith("optimizer/")}
            extra = ar.names - ar.used
            if extra:
                raise ValueError(f"unexpected entries {sorted(extra)[:5]}")
    except (ValueError, KeyError, TypeError, NotImplementedError, zipfile.BadZipFile,
            EOFError, OSError) as e:
        raise _fail(path, e) from None
    return model


def _restore_compile(model, cc, state, ar, compile_model):
    if not isinstance(cc, dict):
        raise ValueError("compile_config must be a dict")
    compile_model(model, cc)
    if state is None:
        return
    if not isinstance(state, dict):
        raise ValueError("optimizer_state must be a dict")
    it = state.get("iterations")
    if isinstance(it, bool) or not isinstance(it, int) or not 0 <= it < 2**63:
        raise ValueError(f"invalid optimizer iterations {it!r}")
    opt = model.optimizer
    params = model.weights
    trainable = {id(w) for w in model.trainable_weights}
    opt.build(params, trainable=[id(w) in trainable for w in params])
    if state.get("m") != len(opt._m) or state.get("v") != len(opt._v):
        raise ValueError("optimizer state does not match the optimizer in the config")
    for i, a in enumerate(opt._m):
        a[...] = ar.array(f"optimizer/m/{i}.npy", a)
    for i, a in enumerate(opt._v):
        a[...] = ar.array(f"optimizer/v/{i}.npy", a)
    opt.iterations = it
    opt._load_scalar_state(state)  # Nadam's u_product


def write_weights(model, filepath, overwrite):
    """Weights only, as a `.weights.npz` zip (readable with `np.load(allow_pickle=False)`)."""
    path = os.fspath(filepath)
    if not path.endswith(WEIGHTS_EXT):
        raise ValueError(f"The filename must end in {WEIGHTS_EXT}. Received: filepath={path}")
    model._require_built("save_weights")
    _write_zip(path, [(n, _npy_bytes(a)) for n, a in _weight_entries(model)], overwrite)


def read_weights(model, filepath, skip_mismatch):
    """Copy weights from a `.weights.npz` (or a full model file) into a built `model`."""
    model._require_built("load_weights")
    zf, path = _open(filepath, (WEIGHTS_EXT,) + MODEL_EXTS, "Weights")
    try:
        with zf:
            ar = _Archive(zf, path)
            loaded = []
            for name, a in _weight_entries(model):
                try:
                    loaded.append((a, ar.array(name, a)))
                except ValueError as e:
                    if not skip_mismatch:
                        raise
                    warnings.warn(f"Skipping {name}: {e}", stacklevel=user_stacklevel())
    except (ValueError, KeyError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise _fail(path, e) from None
    for a, value in loaded:  # only after every array checked out
        a[...] = value
