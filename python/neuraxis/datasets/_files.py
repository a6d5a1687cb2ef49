"""Keras's `get_file`: the dataset cache, downloads, hash checks and safe extraction.

The cache is Keras's own (`$KERAS_HOME`, else `~/.keras`; `/tmp/.keras` when that is not
writable), with Keras's file names, so a file real Keras already downloaded is reused and
the other way round. Downloads use `urllib` only, with Keras's progress bar. A file with a
known hash (SHA-256 for 64 hex digits, MD5 otherwise, as Keras) that does not match in the
cache is downloaded again; one that does not match right after a download is an error.
Archives are extracted with unsafe members skipped: a path or link leaving the target
folder, devices and fifos (plus tarfile's "data" filter where Python has it).

Two differences from Keras, both about when work happens, not what comes out: the cache
folder is looked up on each call (Keras reads `KERAS_HOME` once, at import), and an archive
is extracted only when it was just downloaded or its folder is missing (Keras extracts it
again on every call); extraction goes to a temporary folder first, so an interrupted one
never leaves a half folder that would be taken as done.

Example
-------
>>> import os, tempfile
>>> from neuraxis.datasets._files import get_file
>>> d = tempfile.mkdtemp()
>>> os.makedirs(os.path.join(d, "datasets"))
>>> with open(os.path.join(d, "datasets", "tiny.txt"), "w") as f:
...     _ = f.write("hi")
>>> path = get_file("tiny.txt", origin="https://example.invalid/tiny.txt", cache_dir=d,
...                 file_hash="8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4")
>>> path == os.path.join(d, "datasets", "tiny.txt")   # found in the cache, hash checked
True
"""
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile

import numpy as np

from .._keras.progbar import Progbar

__all__ = ["get_file", "keras_home", "hash_file", "validate_file", "load_npz"]


def keras_home():
    """`$KERAS_HOME` when set, else `~/.keras` (`/tmp/.keras` if home is not writable)."""
    if "KERAS_HOME" in os.environ:
        return os.environ["KERAS_HOME"]
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return os.path.join(base, ".keras")


def _hasher(algorithm, file_hash=None):
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "auto" and file_hash is not None and len(file_hash) == 64:
        return hashlib.sha256()
    return hashlib.md5()  # Keras's legacy default (its word-index files carry MD5s)


def hash_file(fpath, algorithm="sha256", chunk_size=65535):
    """The file's SHA-256 (or MD5) hex digest, read in chunks."""
    hasher = _hasher(algorithm) if isinstance(algorithm, str) else algorithm
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(fpath, file_hash, algorithm="auto", chunk_size=65535):
    """Whether the file's hash is `file_hash` ('auto': SHA-256 for 64 digits, else MD5)."""
    return str(hash_file(fpath, _hasher(algorithm, file_hash), chunk_size)) == str(file_hash)


def _urlretrieve(url, filename, reporthook):
    # The one network call; tests replace it.
    urllib.request.urlretrieve(url, filename, reporthook)


class _DownloadBar:
    """urlretrieve's report hook drawing Keras's bar in bytes (none when the size is unknown)."""

    def __init__(self):
        self.bar = None
        self.finished = False

    def __call__(self, block_num, block_size, total_size):
        if total_size is None or total_size <= 0 or self.finished:
            return
        if self.bar is None:
            self.bar = Progbar(total_size)
        current = block_num * block_size
        if current < total_size:
            self.bar.update(current)
        else:
            self.bar.update(total_size)
            self.finished = True


def _download(origin, target):
    print(f"Downloading data from {origin}", flush=True)
    msg = "URL fetch failure on {}: {} -- {}"
    try:
        try:
            _urlretrieve(origin, target, _DownloadBar())
        except urllib.error.HTTPError as e:
            raise Exception(msg.format(origin, e.code, e.msg)) from e
        except urllib.error.URLError as e:
            raise Exception(msg.format(origin, e.errno, e.reason)) from e
    except (Exception, KeyboardInterrupt):
        if os.path.exists(target):  # never leave a partial file to be found later
            os.remove(target)
        raise


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None,
             cache_subdir="datasets", hash_algorithm="auto", extract=False,
             archive_format="auto", cache_dir=None, force_download=False):
    """Download `origin` into the cache unless a good copy is there; return its path.

    As Keras's `keras.utils.get_file`: the file lands in `cache_dir/cache_subdir/fname`
    (`cache_dir` defaults to `$KERAS_HOME` or `~/.keras`). With `extract=True` an archive
    is unpacked and the folder's path is returned: `fname` without a dot names that folder
    (the archive is kept as `<fname>_archive`); with a dot, the archive keeps `fname` and
    the folder is `<fname up to the first dot>_extracted`.
    """
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if cache_dir is None:
        cache_dir = keras_home()
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    base = os.path.expanduser(os.fspath(cache_dir))
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(),
                            ".keras")
    datadir = os.path.join(base, cache_subdir)
    os.makedirs(datadir, exist_ok=True)

    provided = fname
    fname = os.fspath(fname) if isinstance(fname, os.PathLike) else fname
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(f"Can't parse the file name from the origin provided: "
                             f"'{origin}'.Please specify the `fname` argument.")
    elif os.sep in fname:
        raise ValueError("Paths are no longer accepted as the `fname` argument. To specify "
                         "the file's parent directory, use the `cache_dir` argument. "
                         f"Received: fname={fname}")

    extraction_dir = None
    if extract or untar:
        if provided and "." in fname:
            target = os.path.join(datadir, fname)
            extraction_dir = os.path.join(datadir, f"{fname[:fname.find('.')]}_extracted")
        else:
            extraction_dir = os.path.join(datadir, fname)
            target = os.path.join(datadir, f"{fname}_archive")
    else:
        target = os.path.join(datadir, fname)

    if force_download or not os.path.exists(target):
        download = True
    else:
        download = False
        if file_hash is not None and not validate_file(target, file_hash, hash_algorithm):
            print("A local file was found, but it seems to be incomplete or outdated because "
                  f"the {hash_algorithm} file hash does not match the original value of "
                  f"{file_hash} so we will re-download the data.", flush=True)
            download = True
    if download:
        _download(origin, target)
        if os.path.exists(target) and file_hash is not None and \
                not validate_file(target, file_hash, hash_algorithm):
            raise ValueError(f"Incomplete or corrupted file detected. The {hash_algorithm} "
                             f"file hash does not match the provided value of {file_hash}.")

    if extraction_dir is None:
        return target
    if download or not os.path.isdir(extraction_dir):
        if not extract_archive(target, extraction_dir, "tar" if untar else archive_format):
            warnings.warn("Could not extract archive.", stacklevel=2)
    return extraction_dir


# --- safe extraction ------------------------------------------------------------------
def _inside(base, relative):
    """The resolved path of `relative` under `base`, or None when it would leave `base`."""
    path = os.path.realpath(os.path.join(base, relative))
    try:
        return path if os.path.commonpath([path, base]) == base else None
    except ValueError:  # different drives
        return None


def _safe_tar_members(archive, base):
    for info in archive:
        ok = False
        if info.issym() or info.islnk():
            # a hard link's target is relative to the root, a symlink's to its own folder
            dest = _inside(base, info.name)
            link = info.linkname if info.islnk() else os.path.join(
                os.path.dirname(info.name), info.linkname)
            ok = dest is not None and _inside(base, link) is not None
        elif info.isfile() or info.isdir():
            ok = _inside(base, info.name) is not None
        if ok:
            yield info
        else:
            warnings.warn(f"Skipping invalid path during archive extraction: '{info.name}'.",
                          stacklevel=3)


def _safe_zip_members(archive, base):
    for info in archive.infolist():
        if _inside(base, info.filename) is not None:
            yield info
        else:
            warnings.warn("Skipping invalid path during archive extraction: "
                          f"'{info.filename}'.", stacklevel=3)


def extract_archive(file_path, path=".", archive_format="auto"):
    """Unpack a tar (.tar, .tar.gz, .tar.bz2) or zip file into `path`, skipping unsafe
    members; False when the file is none of `archive_format` ('auto': tar, then zip)."""
    if archive_format is None:
        return False
    formats = ["tar", "zip"] if archive_format == "auto" else (
        [archive_format] if isinstance(archive_format, str) else list(archive_format))
    for kind in formats:
        if kind == "tar":
            matches, opener = tarfile.is_tarfile, tarfile.open
        elif kind == "zip":
            matches, opener = zipfile.is_zipfile, zipfile.ZipFile
        else:
            raise NotImplementedError(kind)
        if not matches(file_path):
            continue
        path = os.fspath(path)
        partial = path + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        base = os.path.realpath(partial)
        try:
            with opener(file_path) as archive:
                if kind == "zip":
                    archive.extractall(partial, members=_safe_zip_members(archive, base))
                else:
                    kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                    archive.extractall(partial, members=_safe_tar_members(archive, base), **kw)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
        os.replace(partial, path)
        return True
    return False


# --- reading the datasets' pickled parts safely -----------------------------------------
# IMDB / Reuters store ragged sequences as object arrays and CIFAR's "python" batches are
# pickled dicts: reading either needs pickle. As Keras 3.15 (keras/src/datasets/
# npz_utils.py) only the globals that rebuild a NumPy array are allowed, so a tampered file
# cannot run code through a pickle's __reduce__; the files also come from fixed origins
# with checked hashes.
_ALLOWED_GLOBALS = frozenset({("numpy", "ndarray"), ("numpy", "dtype"),
                              ("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")})


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild NumPy arrays (and plain containers)."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"Refusing to deserialize `{module}.{name}` while loading "
                                     "a Keras dataset. The file may be corrupted or malicious.")


def _read_npy(fp):
    try:
        return np.lib.format.read_array(fp, allow_pickle=False)  # numeric: no pickle at all
    except ValueError:
        fp.seek(0)
        version = np.lib.format.read_magic(fp)
        if version[0] == 1:
            np.lib.format.read_array_header_1_0(fp)
        elif version[0] in (2, 3):  # 3.0 differs from 2.0 only in the header's encoding
            np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"Unsupported `.npy` file version: {version}.")
        return RestrictedUnpickler(fp).load()


def load_npz(path):
    """An `.npz` file as a dict of arrays; object arrays through `RestrictedUnpickler`."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                with archive.open(member) as raw:
                    arrays[member[:-4]] = _read_npy(io.BytesIO(raw.read()))
    return arrays


def unreadable(path, exc):
    """The error for a cached file that is there (hash fine or unknown) but cannot be read."""
    return ValueError(f"Could not read the dataset file {path!r} ({type(exc).__name__}: {exc})."
                      " The file may be corrupted: delete it and call load_data() again to "
                      "download it anew.")
