"""The engine's name table, read once from `_core.names()`.

Every name the C++ engine accepts, by family: "activations", "losses", "metrics",
"optimizers", "layers" (and "activation_aliases", every accepted spelling). The
Python registries (Keras's names, scikit-learn's options, `neuraxis.ops`) map
their own spellings onto these, check at import that every target exists here,
and list them in their error messages.
"""
from . import _core

TABLE = {family: tuple(names) for family, names in _core.names().items()}


def check(family, name, what=None):
    """`name` if the engine has it in `family`, else a ValueError listing the valid names."""
    valid = TABLE["activation_aliases"] if family == "activations" else TABLE[family]
    if name not in valid:
        what = what or family[:-1]
        raise ValueError(f"unknown {what} {name!r}; expected one of {', '.join(TABLE[family])}")
    return name


def require(family, names, owner):
    """Fail at import when a registry maps onto a name the engine does not have."""
    missing = sorted(set(names) - set(TABLE[family]))
    if missing:
        raise ImportError(f"{owner} maps onto engine {family} {missing}, which the engine "
                          f"(_core) does not have; it has {', '.join(TABLE[family])}")
