"""scikit-learn front: drop-in ``MLPClassifier`` and ``MLPRegressor``."""
from ._multilayer_perceptron import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
