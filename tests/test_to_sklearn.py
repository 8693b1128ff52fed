"""model.to_sklearn(): a fitted scikit-learn MLP equal to the mlpfast model.

References: scikit-learn itself (an estimator fitted the same way has the same set of
attributes; the copy's predict and partial_fit are scikit-learn's code) and the mlpfast model.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.inspection import permutation_importance
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.utils._param_validation import InvalidParameterError

from mlpfast import MLPClassifier, MLPRegressor
from mlpfast._multilayer_perceptron import HIDDEN_ACTIVATIONS
from mlpfast._sklearn_copy import SKLEARN_ACTIVATIONS

rng = np.random.RandomState(0)
X = rng.randn(50, 4)
_k = rng.randint(0, 3, 50)
TASKS = {  # task: (estimator, extra parameters, y)
    "binary": (MLPClassifier, {}, np.array(["no", "yes"])[_k % 2]),
    "multiclass": (MLPClassifier, {}, _k),
    "multilabel": (MLPClassifier, {}, np.c_[_k % 2, _k // 2, _k == 1].astype(int)),
    "regression": (MLPRegressor, {}, X[:, 0] - X[:, 1] ** 2),
    "multioutput": (MLPRegressor, {}, np.c_[X[:, 0], np.sin(X[:, 1])]),
    "poisson": (MLPRegressor, {"loss": "poisson"}, np.exp(X[:, 0] / 2)),
}
SK_CLASS = {MLPClassifier: SkMLPClassifier, MLPRegressor: SkMLPRegressor}


def make(task, **params):
    estimator, extra, y = TASKS[task]
    params = {"hidden_layer_sizes": (6, 5), "max_iter": 3, "random_state": 0, **extra, **params}
    return estimator(**params), y


def fit(model, X, y, partial=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning after few epochs
        return model.partial_fit(X, y) if partial else model.fit(X, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("task", TASKS)
def test_copy_predicts_as_mlpfast(task, dtype):
    model, y = make(task, activation="tanh")
    Xd = X.astype(dtype)
    fit(model, Xd, y)
    sk = model.to_sklearn()
    assert type(sk) is SK_CLASS[type(model)]
    mlpfast_only = {"matmul_precision"}  # scikit-learn has no such parameter
    assert sk.get_params() == {k: v for k, v in model.get_params().items() if k not in mlpfast_only}
    assert all(c.dtype == dtype for c in sk.coefs_ + sk.intercepts_)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(sk.predict(Xd), model.predict(Xd))
        np.testing.assert_allclose(
            sk.predict_proba(Xd), model.predict_proba(Xd), rtol=tol, atol=tol
        )
    else:
        np.testing.assert_allclose(sk.predict(Xd), model.predict(Xd), rtol=tol, atol=tol)
    assert sk.score(Xd, y) == pytest.approx(model.score(Xd, y), rel=tol)


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "adam"},
        {"solver": "sgd", "momentum": 0.8, "nesterovs_momentum": True},
        {"solver": "sgd", "learning_rate": "adaptive", "early_stopping": True},
        {"solver": "lbfgs"},
    ],
)
def test_copy_has_the_attributes_of_a_sklearn_fit(params):
    model, y = make("multiclass", **params)
    fit(model, X, y)
    sk = model.to_sklearn()
    reference = fit(SK_CLASS[type(model)](**sk.get_params()), X, y)
    # scikit-learn's lbfgs keeps its unpacking offsets, set anew by each lbfgs fit: not copied
    lbfgs_offsets = {"_coef_indptr", "_intercept_indptr"}
    assert set(vars(sk)) == set(vars(reference)) - lbfgs_offsets
    for name, value in vars(reference).items():
        if (
            name.endswith("_")
            and not name.startswith("_")
            and name not in ("coefs_", "intercepts_")
        ):
            copied = getattr(sk, name)
            if isinstance(value, float) and np.isnan(value):
                assert np.isnan(copied)
            elif name in ("loss_", "best_loss_", "loss_curve_", "validation_scores_"):
                assert np.shape(copied) == np.shape(value)  # values: mlpfast's own
            else:
                np.testing.assert_array_equal(copied, value, err_msg=name)


def test_copy_is_independent():
    model, y = make("regression")
    fit(model, X, y)
    before = model.predict(X)
    sk = model.to_sklearn()
    for array in sk.coefs_ + sk.intercepts_ + sk._best_coefs + sk._optimizer.ms:
        array[...] = 0
    sk.loss_curve_.append(0.0)
    np.testing.assert_array_equal(model.predict(X), before)
    assert len(model.loss_curve_) == model.n_iter_


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "adam"},
        {"solver": "sgd", "momentum": 0.9, "nesterovs_momentum": False},
        {
            "solver": "sgd",
            "momentum": 0.9,
            "nesterovs_momentum": True,
            "learning_rate": "invscaling",
        },
    ],
)
def test_partial_fit_on_the_copy_continues_training(params):
    # The optimizer state (velocities, Adam moments and step) goes along: one more epoch on the
    # copy (scikit-learn's code) gives the weights one more epoch of mlpfast gives.
    model, y = make("multiclass", batch_size=10, shuffle=False, **params)
    fit(model, X, y)  # three epochs
    sk = model.to_sklearn()
    fit(model, X, y, partial=True)
    fit(sk, X, y, partial=True)
    for ours, theirs in zip(model.coefs_ + model.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(theirs, ours, rtol=1e-10, atol=1e-12)
    # a fresh optimizer (no state handed over) would land elsewhere
    fresh = model.to_sklearn()
    del fresh._optimizer
    fit(fresh, X, y, partial=True)
    assert not np.allclose(fresh.coefs_[0], model.coefs_[0], atol=1e-6)


def test_sklearn_tools_work_on_the_copy():
    model, y = make("multioutput")
    fit(model, X, y)
    sk = model.to_sklearn()
    ours = permutation_importance(model, X, y, n_repeats=2, random_state=0)
    theirs = permutation_importance(sk, X, y, n_repeats=2, random_state=0)
    np.testing.assert_allclose(theirs.importances, ours.importances, atol=1e-12)
    assert not hasattr(clone(sk), "coefs_")


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_activations_without_sklearn_counterpart_raise(activation):
    # scikit-learn's own parameter validation is the reference for what it has
    try:
        fit(SkMLPRegressor(activation=activation, max_iter=1), X[:5], X[:5, 0])
        sklearn_has_it = True
    except InvalidParameterError:
        sklearn_has_it = False
    assert sklearn_has_it == (activation in SKLEARN_ACTIVATIONS)
    model, y = make("regression", activation=activation)
    fit(model, X, y)
    if sklearn_has_it:
        np.testing.assert_allclose(model.to_sklearn().predict(X), model.predict(X), atol=1e-12)
    else:
        with pytest.raises(ValueError, match=f"activation='{activation}'"):
            model.to_sklearn()


def test_unfitted_model_raises():
    with pytest.raises(NotFittedError):
        MLPClassifier().to_sklearn()
