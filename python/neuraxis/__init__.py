"""neuraxis: neural networks with scikit-learn's and Keras's APIs on a C++ core.

- ``neuraxis.neural_network``: ``MLPClassifier`` / ``MLPRegressor`` (scikit-learn's API)
- ``neuraxis.models`` / ``neuraxis.layers``: ``Sequential`` and its layers (Keras's API)
- ``neuraxis.ops``: single kernels on NumPy arrays
"""
from ._config import get_num_threads, set_num_threads, show_config

__version__ = "0.1.0"

__all__ = ["get_num_threads", "set_num_threads", "show_config", "__version__"]
