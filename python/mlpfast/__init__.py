"""mlpfast: multi-layer perceptrons with scikit-learn's interface and a fast C++ core."""

from importlib.metadata import PackageNotFoundError, version

from ._multilayer_perceptron import MLPClassifier, MLPRegressor

try:  # the version lives in pyproject.toml only; pip records it in the package metadata
    __version__ = version("mlpfast")
except PackageNotFoundError:  # imported from a source tree that pip never installed:
    __version__ = "0+unknown"  # PEP 440-valid, sorts below every release, says what happened

__all__ = ["MLPClassifier", "MLPRegressor", "__version__"]
