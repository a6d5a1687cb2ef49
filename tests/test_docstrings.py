"""The runnable examples in the public docstrings run and print what they say."""
import doctest
import importlib

import pytest

MODULES = [
    "neuraxis._config", "neuraxis.ops", "neuraxis.neural_network._multilayer_perceptron",
    "neuraxis.models", "neuraxis.layers", "neuraxis.layers.core", "neuraxis.layers.activation",
    "neuraxis.optimizers", "neuraxis.losses", "neuraxis.metrics", "neuraxis.callbacks",
    "neuraxis.saving", "neuraxis.utils", "neuraxis.activations", "neuraxis.initializers",
    "neuraxis._keras.session", "neuraxis._keras.progbar", "neuraxis.layers.normalization",
    "neuraxis.layers.recurrent", "neuraxis.layers.bidirectional", "neuraxis.layers.masking",
    "neuraxis.layers.embedding", "neuraxis.layers.wrappers",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
