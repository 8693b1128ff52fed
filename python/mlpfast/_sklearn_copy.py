"""A plain scikit-learn copy of a fitted mlpfast estimator: ``model.to_sklearn()``.

The copy is a fitted ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` that owns its
memory: the same parameters (``get_params``, minus what scikit-learn lacks: matmul_precision; the
copy computes in float32 or float64 as scikit-learn does), and
the fitted attributes scikit-learn's estimator would have after the same fit: ``coefs_`` and
``intercepts_`` (copies, in the model's dtype), ``classes_``, ``_label_binarizer``,
``n_layers_``, ``n_outputs_``, ``out_activation_``, ``loss_``, ``loss_curve_``, ``n_iter_``,
``t_``, early stopping's bookkeeping and best weights, and the optimizer's state (SGD
velocities; Adam moments and step count) per layer, as scikit-learn keeps it. So predict, score,
any scikit-learn tool, and partial_fit (or fit with warm_start=True) work on it, the last
continuing the training where mlpfast stopped.

mlpfast keeps weights and optimizer state in flat buffers (``_params``, ``_opt_state``,
``_best_params``; see _multilayer_perceptron): the copy gets them split into scikit-learn's
per-layer lists. Activations scikit-learn lacks (leaky_relu, softplus, prelu) have no copy.
"""

import copy

import numpy as np
from sklearn.base import is_classifier
from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
from sklearn.utils.validation import check_is_fitted

from ._multilayer_perceptron import LOCK_ATTRIBUTE
from .reference import unpack

__all__ = ["SKLEARN_ACTIVATIONS", "to_sklearn"]

SKLEARN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")

# mlpfast's flat state, handed over below in scikit-learn's per-layer form (or not at all:
# _layer_units is derived from coefs_ by scikit-learn; prelu_slopes_ has no counterpart)
_FLAT_STATE = ("_params", "_layer_units", "_opt_state", "_best_params", "prelu_slopes_")


def _per_layer(flat, layer_units):
    """A copy of a flat parameter-shaped buffer as scikit-learn's list coefs + intercepts."""
    coefs, intercepts, _ = unpack(np.array(flat), layer_units, "")
    return coefs + intercepts


def to_sklearn(model):
    """A fitted scikit-learn MLPClassifier/MLPRegressor equal to the mlpfast ``model``.

    Raises NotFittedError for an unfitted model and ValueError for an activation scikit-learn
    does not have (leaky_relu, softplus, prelu).
    """
    check_is_fitted(model)
    if model.activation not in SKLEARN_ACTIVATIONS:
        raise ValueError(
            f"to_sklearn: activation={model.activation!r} has no scikit-learn counterpart "
            f"(scikit-learn's MLP has {', '.join(SKLEARN_ACTIVATIONS)}; leaky_relu, softplus "
            "and prelu are mlpfast's own). Deploy this model with pickle/skops or mlpfast.onnx."
        )
    sk_class = _SkMLPClassifier if is_classifier(model) else _SkMLPRegressor
    params = model.get_params(deep=False)
    sk_param_names = sk_class().get_params(deep=False)
    sk_model = sk_class(**copy.deepcopy({k: v for k, v in params.items() if k in sk_param_names}))

    state = model.__dict__
    sk_model.__dict__.update(
        copy.deepcopy(
            {
                k: v
                for k, v in state.items()
                if k not in params and k not in _FLAT_STATE and k != LOCK_ATTRIBUTE
            }
        )
    )
    sk_model.coefs_ = [np.array(c) for c in model.coefs_]
    sk_model.intercepts_ = [np.array(b) for b in model.intercepts_]
    layer_units = [model.coefs_[0].shape[0]] + [c.shape[1] for c in model.coefs_]

    best = state.get("_best_params")
    if best is not None and best is state.get("_params"):
        # after early stopping, scikit-learn's coefs_ ARE its best-weights lists
        sk_model._best_coefs, sk_model._best_intercepts = sk_model.coefs_, sk_model.intercepts_
    elif best is not None:
        best = _per_layer(best, layer_units)
        sk_model._best_coefs = best[: len(sk_model.coefs_)]
        sk_model._best_intercepts = best[len(sk_model.coefs_) :]

    optimizer, opt_state = sk_model.__dict__.get("_optimizer"), state.get("_opt_state")
    if optimizer is not None:
        n = sum(c.size for c in sk_model.coefs_) + sum(b.size for b in sk_model.intercepts_)
        if opt_state is None:  # nothing to hand over: partial_fit starts a fresh optimizer
            del sk_model._optimizer
        elif hasattr(optimizer, "velocities"):  # SGD: one velocity per parameter
            optimizer.velocities = _per_layer(opt_state, layer_units)
        else:  # Adam: [m, v]; t and the bias-corrected learning rate came with the copy
            optimizer.ms = _per_layer(opt_state[:n], layer_units)
            optimizer.vs = _per_layer(opt_state[n:], layer_units)
    return sk_model
