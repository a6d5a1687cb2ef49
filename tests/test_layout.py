"""The package's import direction: public modules -> neuraxis._keras -> neuraxis._core.

The Keras front's internals (`neuraxis._keras`) must not import its public modules, at
import time or inside a function: the public modules hand them what they need (the
model, `callbacks.CallbackList`, `Sequential.from_config`, ...). There are no exceptions
today; one would go in EXCEPTIONS below, with the reason.
"""
import ast
import importlib.machinery
import json
import pkgutil
import subprocess
import sys

import pytest

import neuraxis
import neuraxis._keras

PUBLIC = ["neuraxis.models", "neuraxis.layers", "neuraxis.callbacks", "neuraxis.losses",
          "neuraxis.metrics", "neuraxis.optimizers", "neuraxis.saving", "neuraxis.utils",
          "neuraxis.activations", "neuraxis.initializers", "neuraxis.ops",
          "neuraxis.neural_network"]
# What importing any neuraxis module always brings along: the package and its _config.
BASE = {"neuraxis", "neuraxis._config", "neuraxis._core"}
# {internal module: {public module it may import: why}}; keep it empty if at all possible.
EXCEPTIONS = {}

INTERNAL = ["neuraxis._keras"] + [f"neuraxis._keras.{m.name}"
                                  for m in pkgutil.iter_modules(neuraxis._keras.__path__)]

_PROBE = """
import importlib, importlib.machinery, json, sys
sys.path[:] = json.loads(sys.argv[2])
for name in sys.argv[1].split(","):
    importlib.import_module(name)
mods = {n: m for n, m in sys.modules.items() if n == "neuraxis" or n.startswith("neuraxis.")}
compiled = sorted(n for n, m in mods.items()  # by file suffix: editable installs wrap loaders
                  if (getattr(m, "__file__", None) or "").endswith(
                      tuple(importlib.machinery.EXTENSION_SUFFIXES)))
print(json.dumps({"file": sys.modules["neuraxis"].__file__, "modules": sorted(mods),
                  "compiled": compiled}))
"""


def _probe(module):
    out = subprocess.run([sys.executable, "-c", _PROBE, module, json.dumps(sys.path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_internal_package_is_found():
    assert {"neuraxis._keras.trainer", "neuraxis._keras.specs", "neuraxis._keras.data",
            "neuraxis._keras.archive", "neuraxis._keras.session"} <= set(INTERNAL)


@pytest.mark.parametrize("module", INTERNAL)
def test_internal_module_imports_no_public_module(module):
    """Importing it in a fresh interpreter loads only the package base and other internals."""
    res = _probe(module)
    assert res["file"] == neuraxis.__file__  # the same neuraxis as this test process
    allowed = set(EXCEPTIONS.get(module, {}))
    public = [m for m in res["modules"]
              if any(m == p or m.startswith(p + ".") for p in PUBLIC) and m not in allowed]
    assert public == [], f"importing {module} imported public module(s) {public}"
    other = [m for m in res["modules"] if m not in BASE | allowed
             and m != "neuraxis._keras" and not m.startswith("neuraxis._keras.")]
    assert other == [], f"importing {module} imported {other}"
    assert set(res["compiled"]) <= {"neuraxis._core"}, res["compiled"]


@pytest.mark.parametrize("module", INTERNAL)
def test_internal_module_has_no_deferred_public_import(module):
    """No function-level import of a public module either (relative or absolute)."""
    path = importlib.import_module(module).__file__
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            names = [base] if node.module else [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(n, node.lineno) for n in names
                  if any(n == p or n.startswith(p + ".") for p in PUBLIC)
                  and n not in EXCEPTIONS.get(module, {})]
    assert found == [], f"{module} imports public modules: {found}"


def test_core_is_the_only_compiled_module():
    """With every public and internal module imported, the engine is the one extension
    module of the package (its bundled OpenBLAS is a plain shared library, loaded by _core)."""
    res = _probe(",".join(PUBLIC + INTERNAL))
    assert set(PUBLIC + INTERNAL) <= set(res["modules"])
    assert res["compiled"] == ["neuraxis._core"]
