"""mlpfast: multi-layer perceptrons with scikit-learn's interface and a fast C++ core."""

from . import _core

__version__ = "0.1.0"

__all__ = ["__version__"]
