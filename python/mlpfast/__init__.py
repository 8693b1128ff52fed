"""mlpfast: multi-layer perceptrons with scikit-learn's interface and a fast C++ core.

Deploying a fitted model (README, "Deploy"): pickle/joblib; skops.io; ONNX (``mlpfast.onnx``,
extra ``mlpfast[onnx]``); or a plain scikit-learn copy (``model.to_sklearn()``).

skops.io refuses to load types it does not trust by default. An mlpfast model needs these
(``skops.io.get_untrusted_types(file=...)`` lists them for a given file; the optimizer's class
only for models trained with adam or sgd)::

    mlpfast._multilayer_perceptron.MLPClassifier
    mlpfast._multilayer_perceptron.MLPRegressor
    sklearn.neural_network._stochastic_optimizers.AdamOptimizer
    sklearn.neural_network._stochastic_optimizers.SGDOptimizer
"""

from importlib.metadata import PackageNotFoundError, version

from ._multilayer_perceptron import MLPClassifier, MLPRegressor
from ._perceptron import Perceptron

try:  # the version lives in pyproject.toml only; pip records it in the package metadata
    __version__ = version("mlpfast")
except PackageNotFoundError:  # imported from a source tree that pip never installed:
    __version__ = "0+unknown"  # PEP 440-valid, sorts below every release, says what happened

__all__ = ["MLPClassifier", "MLPRegressor", "Perceptron", "__version__"]
