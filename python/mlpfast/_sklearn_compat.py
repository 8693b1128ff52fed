"""The fence around scikit-learn's private API: every private name mlpfast uses lives here.

mlpfast's estimators subclass ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` and
replace a few of their private methods. Private names may change in any scikit-learn release,
so this module records what mlpfast relies on, for the releases it was checked against:

    scikit-learn 1.7 (1.7.2), 1.8 (1.8.0), 1.9 (1.9.1)

(in those three, ``sklearn/neural_network/_multilayer_perceptron.py`` has the same private
methods with the same signatures, and ``_stochastic_optimizers.py`` is the same file).
``pyproject.toml`` states the same range: ``scikit-learn>=1.7,<1.10``.

What is used:

- OVERRIDDEN: the private methods mlpfast overrides, with the signature scikit-learn calls them
  with (``fit`` and ``partial_fit`` call ``_fit``, which mlpfast wraps in the estimator's lock;
  ``_fit`` calls ``_initialize``, ``_validate_input``, ``_fit_stochastic``,
  ``_fit_lbfgs``; ``_fit_lbfgs`` hands ``_loss_grad_lbfgs`` to scipy; ``predict`` and friends
  call ``_forward_pass_fast``; the epoch loop calls ``_update_no_improvement_count``).
- CALLED: private methods and classes mlpfast calls (``_score``, the optimizers, whose
  ``learning_rate`` / ``t`` / ``iteration_ends`` / ``trigger_stopping`` drive the schedules).
- PRIVATE_ATTRIBUTES: private attributes of a fitted scikit-learn MLP that mlpfast reads or
  writes: the overrides read ``_random_state``, ``_label_binarizer`` (classifier),
  ``_no_improvement_count`` and replace ``_best_coefs`` / ``_best_intercepts`` by one flat
  ``_best_params``; ``to_sklearn`` (_sklearn_copy.py) writes ``_best_coefs``,
  ``_best_intercepts`` and ``_optimizer`` back. Also the class attribute
  ``_parameter_constraints`` (extended with mlpfast's activations).
- Imported private helpers: ``AdamOptimizer``, ``SGDOptimizer``
  (``sklearn.neural_network._stochastic_optimizers``) and ``StrOptions``
  (``sklearn.utils._param_validation``). Two helpers of a few lines are owned here instead of
  imported: ``lbfgs_iprint_options`` (scikit-learn's
  ``utils.fixes._get_additional_lbfgs_options_dict``) and ``check_lbfgs_result``
  (``utils.optimize._check_optimize_result``, its "lbfgs" branch).

``mlpfast.Perceptron`` (_perceptron.py) subclasses ``sklearn.linear_model.Perceptron`` the
same way: it overrides ``_fit_binary`` and ``_fit_multiclass`` (PERCEPTRON_OVERRIDDEN; 1.7
passes one more keyword, ``C``, which the overrides accept and ignore), calls
``_make_validation_split`` and ``_make_validation_score_cb`` (CALLED) and reads the private
attribute ``_expanded_class_weight``; the loop it replaces is ``_plain_sgd``
(linear_model/_sgd_fast.pyx.tp), whose stopping test changed in 1.8 (_perceptron.py follows
the installed release).

``signature_mismatches()`` compares the installed scikit-learn with these records; the tests
(tests/test_sklearn_compat.py) fail naming each method that differs, and importing mlpfast
warns. A new scikit-learn release: read its ``_multilayer_perceptron.py`` for the names above,
update the records and the overrides, then the range in pyproject.toml.
"""

import inspect
import warnings

import scipy
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Perceptron
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer
from sklearn.utils._param_validation import StrOptions

__all__ = [
    "AdamOptimizer",
    "SGDOptimizer",
    "StrOptions",
    "MIRRORED_VERSIONS",
    "OVERRIDDEN",
    "CALLED",
    "PERCEPTRON_OVERRIDDEN",
    "PRIVATE_ATTRIBUTES",
    "lbfgs_iprint_options",
    "check_lbfgs_result",
    "signature_mismatches",
]

MIRRORED_VERSIONS = ("1.7", "1.8", "1.9")

# method name -> its signature in scikit-learn 1.7-1.9 (on both MLPClassifier and MLPRegressor)
OVERRIDDEN = {
    "_fit": "(self, X, y, sample_weight=None, incremental=False)",
    "_initialize": "(self, y, layer_units, dtype)",
    "_validate_input": "(self, X, y, incremental, reset)",
    "_forward_pass_fast": "(self, X, check_input=True)",
    "_loss_grad_lbfgs": (
        "(self, packed_coef_inter, X, y, sample_weight, activations, deltas, coef_grads,"
        " intercept_grads)"
    ),
    "_fit_lbfgs": (
        "(self, X, y, sample_weight, activations, deltas, coef_grads, intercept_grads, layer_units)"
    ),
    "_fit_stochastic": (
        "(self, X, y, sample_weight, activations, deltas, coef_grads, intercept_grads,"
        " layer_units, incremental)"
    ),
    "_update_no_improvement_count": "(self, early_stopping, X, y, sample_weight)",
}

# "owner.name" -> signature, for what mlpfast calls or constructs
CALLED = {
    "MLPClassifier._score": "(self, X, y, sample_weight=None)",
    "MLPRegressor._score": "(self, X, y, sample_weight=None)",
    "SGDOptimizer.__init__": (
        "(self, params, learning_rate_init=0.1, lr_schedule='constant', momentum=0.9,"
        " nesterov=True, power_t=0.5)"
    ),
    "AdamOptimizer.__init__": (
        "(self, params, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-08)"
    ),
    "Perceptron._make_validation_split": "(self, y, sample_mask)",
    "Perceptron._make_validation_score_cb": (
        "(self, validation_mask, X, y, sample_weight, classes=None)"
    ),
    "SGDOptimizer.iteration_ends": "(self, time_step)",
    "SGDOptimizer.trigger_stopping": "(self, msg, verbose)",
    "AdamOptimizer.iteration_ends": "(self, time_step)",
    "AdamOptimizer.trigger_stopping": "(self, msg, verbose)",
}

# Perceptron's overridden loops: name -> the signatures scikit-learn 1.8/1.9 and 1.7 call
PERCEPTRON_OVERRIDDEN = {
    "_fit_binary": (
        "(self, X, y, alpha, sample_weight, learning_rate, max_iter)",
        "(self, X, y, alpha, C, sample_weight, learning_rate, max_iter)",
    ),
    "_fit_multiclass": (
        "(self, X, y, alpha, learning_rate, sample_weight, max_iter)",
        "(self, X, y, alpha, C, learning_rate, sample_weight, max_iter)",
    ),
}

# private attributes a fitted scikit-learn MLP has (solver "adam"), by estimator
PRIVATE_ATTRIBUTES = {
    "MLPClassifier": (
        "_random_state",
        "_label_binarizer",
        "_no_improvement_count",
        "_best_coefs",
        "_best_intercepts",
        "_optimizer",
    ),
    "MLPRegressor": (
        "_random_state",
        "_no_improvement_count",
        "_best_coefs",
        "_best_intercepts",
        "_optimizer",
    ),
}

_OWNERS = {
    "Perceptron": Perceptron,
    "MLPClassifier": MLPClassifier,
    "MLPRegressor": MLPRegressor,
    "SGDOptimizer": SGDOptimizer,
    "AdamOptimizer": AdamOptimizer,
}


def _installed_signature(owner, name):
    method = getattr(owner, name, None)
    if method is None:
        return "<missing>"
    return str(inspect.signature(method))


def signature_mismatches():
    """[(qualified name, signature mirrored here, signature installed)] for every private
    method whose installed signature differs from the record (empty when all agree)."""
    records = [
        (f"{cls}.{name}", sig)
        for name, sig in OVERRIDDEN.items()
        for cls in ("MLPClassifier", "MLPRegressor")
    ]
    records += list(CALLED.items())
    out = []
    for name, variants in PERCEPTRON_OVERRIDDEN.items():
        installed = _installed_signature(Perceptron, name)
        if installed not in variants:
            out.append((f"Perceptron.{name}", variants[0], installed))
    for qualified, expected in records:
        owner, name = qualified.split(".")
        installed = _installed_signature(_OWNERS[owner], name)
        if installed != expected:
            out.append((qualified, expected, installed))
    return out


def lbfgs_iprint_options(iprint):
    """L-BFGS-B options for scipy.optimize.minimize's verbosity: scipy < 1.15 takes "iprint";
    1.15 deprecated it (and prints nothing), so nothing is passed there. As scikit-learn's
    ``utils.fixes._get_additional_lbfgs_options_dict("iprint", iprint)``."""
    version = tuple(int(part) for part in scipy.__version__.split(".")[:2])
    return {} if version >= (1, 15) else {"iprint": iprint}


def check_lbfgs_result(result, max_iter):
    """The iteration count of scipy's L-BFGS-B result (at most max_iter), with scikit-learn's
    ConvergenceWarning when it did not converge (``utils.optimize._check_optimize_result``
    with solver "lbfgs": same message, same category)."""
    n_iter = min(result.nit, max_iter) if max_iter is not None else result.nit
    if result.status != 0:
        msg = (
            f"lbfgs failed to converge after {n_iter} iteration(s) "
            f"(status={result.status}):\n{result.message}\n"
        )
        if max_iter is not None and n_iter == max_iter:
            msg += (
                f"\nIncrease the number of iterations to improve the "
                f"convergence (max_iter={max_iter})."
            )
        msg += (
            "\nYou might also want to scale the data as shown in:\n"
            "    https://scikit-learn.org/stable/modules/preprocessing.html"
        )
        warnings.warn(msg, ConvergenceWarning, stacklevel=2)
    return n_iter


def _warn_if_changed():
    mismatches = signature_mismatches()
    if mismatches:
        import sklearn

        names = ", ".join(name for name, _, _ in mismatches)
        warnings.warn(
            f"mlpfast mirrors the private API of scikit-learn {', '.join(MIRRORED_VERSIONS)}; "
            f"the installed scikit-learn {sklearn.__version__} differs in: {names}. "
            "Results may be wrong; install a scikit-learn in the supported range.",
            RuntimeWarning,
            stacklevel=3,
        )


_warn_if_changed()
