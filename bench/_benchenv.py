"""Environment hygiene shared by the benchmark runners and their worker subprocesses.

Import this module and call ``scrub_environ()`` before NumPy, SciPy, torch or
neuraxis is imported: it unsets the variables that pin OpenBLAS's kernels
(``OPENBLAS_CORETYPE``, ``OPENBLAS_L2_SIZE``). OpenBLAS reads them once, when
the library is loaded, so unsetting them later has no effect; if an OpenBLAS
is already loaded in this process (e.g. by a ``sitecustomize``), the script is
re-executed with the cleaned environment. ``child_env()`` gives the
environment for a worker subprocess: the same variables removed, plus updates.

This module imports nothing but the standard library.
"""
import json
import os
import sys

PINNED_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# What the first process of a run removed, for the report (survives a re-exec).
_MARK = "NEURAXIS_BENCH_UNSET_ENV"
_REEXEC = "NEURAXIS_BENCH_REEXECED"


def _openblas_loaded():
    if any(m in sys.modules for m in ("numpy", "scipy", "torch", "neuraxis", "jax")):
        return True
    try:
        with open("/proc/self/maps") as f:
            return "openblas" in f.read().lower()
    except OSError:
        return False


def scrub_environ():
    """Unset PINNED_VARS in this process (re-exec if an OpenBLAS is already loaded).

    Returns {var: value} of what this run removed (including before a re-exec).
    """
    removed = {k: os.environ.pop(k) for k in PINNED_VARS if k in os.environ}
    if removed:
        prev = json.loads(os.environ.get(_MARK) or "{}")
        prev.update(removed)
        os.environ[_MARK] = json.dumps(prev)
        if _openblas_loaded() and not os.environ.get(_REEXEC):
            os.environ[_REEXEC] = "1"
            sys.stdout.flush()
            sys.stderr.flush()
            argv = list(getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv)
            os.execv(sys.executable, [sys.executable] + argv[1:])
    return removed_by_run()


def removed_by_run():
    """{var: value} that this run (this process or the one that re-exec'd it) unset."""
    return json.loads(os.environ.get(_MARK) or "{}")


def pinned_now():
    """{var: value or None} as this process sees them now (all None once scrubbed)."""
    return {k: os.environ.get(k) for k in PINNED_VARS}


def child_env(updates=None, pythonpath_first=None):
    """A copy of os.environ for a worker: PINNED_VARS removed, `updates` applied,
    `pythonpath_first` (a directory) put first on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in PINNED_VARS and k not in (_MARK, _REEXEC)}
    if updates:
        env.update(updates)
    if pythonpath_first:
        rest = env.get("PYTHONPATH")
        env["PYTHONPATH"] = pythonpath_first + (os.pathsep + rest if rest else "")
    return env


def describe():
    """One line for a report header."""
    removed = removed_by_run()
    parts = [f"{k} (was {removed[k]!r})" if k in removed else f"{k} (was not set)"
             for k in PINNED_VARS]
    left = [k for k, v in pinned_now().items() if v is not None]
    line = ("unset " + ", ".join(parts) + " in the runner and every worker subprocess, "
            "before OpenBLAS loads")
    if left:
        line += "  WARNING: still set: " + ", ".join(left)
    return line


def pool_owner(filepath):
    """Which package a thread-pool library belongs to, from its path."""
    parts = (filepath or "").replace("\\", "/").split("/")
    names = {"scikit_learn": "sklearn"}
    for part in reversed(parts[:-1]):
        base = part[:-len(".libs")] if part.endswith(".libs") else part
        if base in ("neuraxis", "numpy", "scipy", "torch", "jaxlib", "sklearn", "scikit_learn"):
            return names.get(base, base)
    p = "/".join(parts)
    return "system" if p.startswith(("/usr/", "/lib")) else os.path.basename(p) or "?"


def pool_records(pools):
    """threadpoolctl.threadpool_info() -> the fields the reports print."""
    out = []
    for p in pools:
        out.append({
            "owner": pool_owner(p.get("filepath")),
            "user_api": p.get("user_api"),
            "internal_api": p.get("internal_api"),
            "version": p.get("version"),
            "architecture": p.get("architecture"),
            "num_threads": p.get("num_threads"),
            "threading_layer": p.get("threading_layer"),
            "library": os.path.basename(p.get("filepath") or ""),
            "filepath": p.get("filepath"),
        })
    return out


def format_pool(p):
    """One header line for a pool record of pool_records()."""
    s = (f"[{p.get('owner', '?')}] internal_api={p['internal_api']} {p['version'] or ''}"
         .rstrip())
    if p.get("architecture") is not None or p["internal_api"] == "openblas":
        s += f" architecture={p.get('architecture')}"
    s += f" num_threads={p['num_threads']}"
    if p.get("threading_layer"):
        s += f" layer={p['threading_layer']}"
    return s + f" filepath={p.get('filepath') or p.get('library')}"


def write_json(path, out):
    """Write a report's raw numbers to `path` (its folder created), and say so."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=2, default=str)
    print(f"\nraw numbers written to {path}")
