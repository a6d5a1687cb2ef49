"""neuraxis: neural networks with scikit-learn's and Keras's APIs on a C++ core."""
from ._config import get_num_threads, set_num_threads, show_config

__version__ = "0.1.0"

__all__ = ["get_num_threads", "set_num_threads", "show_config", "__version__"]
