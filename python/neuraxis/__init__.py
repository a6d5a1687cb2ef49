"""neuraxis: neural networks with scikit-learn's and Keras's APIs on a C++ core.

- ``neuraxis.neural_network``: ``MLPClassifier`` / ``MLPRegressor`` (scikit-learn's API)
- ``neuraxis.models`` / ``neuraxis.layers``: ``Sequential`` and its layers (Keras's API)
- ``neuraxis.ops``: single kernels on NumPy arrays

The package is also Keras 3's namespace, so Keras code runs with one changed import:

>>> import neuraxis as keras
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
>>> model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
>>> model.count_params()
10

Submodules and those names load on first use (the scikit-learn front never loads the
Keras one).
"""
import importlib

from ._config import get_num_threads, set_num_threads, show_config

__version__ = "0.1.0"

# Keras 3's submodules (keras.layers, keras.optimizers, ...) and neuraxis's own.
_SUBMODULES = ("activations", "backend", "callbacks", "config", "datasets", "initializers",
               "layers", "losses", "metrics", "models", "neural_network", "ops", "optimizers",
               "preprocessing", "regularizers", "saving", "utils", "wrappers")
# Keras 3's top-level names: name -> (submodule, attribute).
_NAMES = {"Sequential": ("models", "Sequential"), "Model": ("models", "Model"),
          "Input": ("layers", "Input"), "InputLayer": ("layers", "InputLayer"),
          "Layer": ("layers", "Layer"), "KerasTensor": ("layers", "KerasTensor"),
          "Loss": ("losses", "Loss"), "Metric": ("metrics", "Metric"),
          "Optimizer": ("optimizers", "Optimizer"), "Initializer": ("initializers", "Initializer"),
          "Regularizer": ("regularizers", "Regularizer")}

__all__ = ["get_num_threads", "set_num_threads", "show_config", "version", "__version__"]


def version():
    """The package version, as `keras.version()`."""
    return __version__


def __getattr__(name):
    if name in _SUBMODULES:
        try:
            return importlib.import_module("." + name, __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r} (keras.{name} "
                                 "is not supported yet)") from None
    if name in _NAMES:
        module, attr = _NAMES[name]
        try:
            return getattr(importlib.import_module("." + module, __name__), attr)
        except (ModuleNotFoundError, AttributeError):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r} (keras.{name} "
                                 "is not supported yet)") from None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES) | set(_NAMES))
