"""mlpfast: multi-layer perceptrons with scikit-learn's interface and a fast C++ core."""

from ._multilayer_perceptron import MLPClassifier, MLPRegressor

__version__ = "0.1.0"

__all__ = ["MLPClassifier", "MLPRegressor", "__version__"]
