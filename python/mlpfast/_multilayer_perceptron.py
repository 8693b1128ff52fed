"""MLPClassifier and MLPRegressor: scikit-learn's estimators, mlpfast's core doing the numbers.

Both subclass the estimators of ``sklearn.neural_network``. Everything that is not arithmetic is
inherited unchanged: parameters and their validation, input checks, label encoding, ``fit`` /
``partial_fit`` bookkeeping (warm start, classes), the initial weight draws, scoring, tags.
Overridden are only the numeric parts (what the class ``_FlatParamsMixin`` holds; every
private scikit-learn name they rely on is recorded in ``_sklearn_compat``):

- ``_initialize``: after scikit-learn draws the initial weights (same draws, same order), they are
  moved into ONE flat buffer ``_params``; ``coefs_``, ``intercepts_`` (and ``prelu_slopes_``) are
  views into it, in mlpfast.reference's layout, so the core updates them in place.
- ``_fit_stochastic``: scikit-learn's epoch loop, with one core call per epoch (shuffle, early
  stopping, learning-rate schedules, verbose output, warnings as in scikit-learn).
- ``_fit_lbfgs``: scipy's L-BFGS-B on the core's full-batch ``loss_grad``.
- ``_forward_pass_fast``: the core's forward pass (predict, predict_proba, score).
- ``predict``, ``predict_proba`` (and so ``predict_log_proba``): a fast path for a plain NumPy
  array (``_fast_forward``): scikit-learn's checks and the forward pass in one core call; any
  other input, or bad input, takes scikit-learn's path (its validation, warnings and errors).
- pickling: the views are rebuilt from the flat buffer on load.
- ``_fit`` (fit, partial_fit) and ``_forward_pass_fast`` hold the estimator's own lock: the core
  updates the weights in place with the GIL released, so two threads training one estimator, or
  predicting while it trains, would otherwise read torn weights. They wait for each other
  instead (the lock is created on first use, never pickled, cloned or listed by get_params).

Differences from scikit-learn, on purpose: float32 input trains in float32 throughout (also with
lbfgs; scikit-learn mixes float64 in); sparse input raises TypeError; the hidden activation may
be any the engine implements (``HIDDEN_ACTIVATIONS``: scikit-learn's and more); a fit that
diverges raises scikit-learn's error but leaves the last finite weights (and stops at once
instead of finishing the epochs in NaN).
"""

import threading
import warnings
from itertools import chain

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
from sklearn.utils import shuffle
from sklearn.utils.validation import validate_data

from . import _engine
from ._sklearn_compat import (
    AdamOptimizer,
    SGDOptimizer,
    StrOptions,
    check_lbfgs_result,
    lbfgs_iprint_options,
)
from .reference import PRELU_INIT_SLOPE, n_params, opt_state_size, unpack

__all__ = ["MLPClassifier", "MLPRegressor", "HIDDEN_ACTIVATIONS"]

# What the active engine implements (the core's table, or the reference's with
# MLPFAST_ENGINE=reference): the estimators accept exactly these.
HIDDEN_ACTIVATIONS = _engine.ACTIVATIONS

# The per-estimator lock's attribute (see _FlatParamsMixin._lock).
LOCK_ATTRIBUTE = "_mlpfast_lock"

_NON_FINITE_MSG = (
    "Solver produced non-finite parameter weights. The input data may"
    " contain large values and need to be preprocessed."
)


def _reject_sparse(X):
    if sp.issparse(X):
        raise TypeError(
            "sparse input is not supported yet: mlpfast's MLP estimators need a dense array "
            "(e.g. X.toarray())."
        )


def _float_dtype(*dtypes):
    """numpy's result type of the operands, if float32/float64, else float64 (as X @ W gives).
    Always numpy's own dtype instance (an unpickled array carries an equal but distinct one)."""
    return np.dtype(np.float32 if np.result_type(*dtypes) == np.float32 else np.float64)


def _owned_copy(array):
    """A C-contiguous, writeable copy that owns its memory, with numpy's own dtype instance."""
    out = np.empty(array.shape, dtype=_float_dtype(array.dtype))
    out[...] = array
    return out


def _all_finite(a):
    # One summing pass decides in the common case: a sum is finite only if every term is.
    return bool(np.isfinite(a.sum())) or bool(np.isfinite(a).all())


def _fast_forward(model, X, proba):
    """The forward pass on X through the core's one-call fast path, or None when X (or the model)
    is not the plain case: a fitted model without feature names, X an exact numpy.ndarray,
    C-contiguous, 2-D, float32 or float64, of the fitted width, with rows, all finite. The result
    is _forward_pass_fast's, bit for bit; with ``proba`` and one output, the [1 - p, p] columns
    of scikit-learn's binary predict_proba."""
    if type(X) is np.ndarray and _engine.predict_forward is not None:
        with model._lock():  # not while another thread trains (as _forward_pass_fast)
            return _engine.predict_forward(model.__dict__, X, proba)
    return None


def _inverse_binarize(binarizer, y_pred):
    """binarizer.inverse_transform(y_pred) for the dense outputs of an MLP, without its
    check_is_fitted (most of the time of a one-row predict): LabelBinarizer's own rules for
    its default labels (0 and 1, so threshold 0.5) in the binary, multiclass and multilabel
    cases; anything else goes to inverse_transform itself."""
    if binarizer.sparse_input_ or (binarizer.neg_label, binarizer.pos_label) != (0, 1):
        return binarizer.inverse_transform(y_pred)
    classes, kind = binarizer.classes_, binarizer.y_type_
    if kind == "multiclass" and y_pred.ndim == 2 and y_pred.shape[1] == len(classes):
        return classes.take(y_pred.argmax(axis=1), mode="clip")
    if kind == "binary" and y_pred.ndim == 1 and len(classes) == 2:
        return classes[np.array(y_pred > 0.5, dtype=int)]
    if kind == "multilabel-indicator" and y_pred.ndim == 2 and y_pred.shape[1] == len(classes):
        return np.array(y_pred > 0.5, dtype=int)
    return binarizer.inverse_transform(y_pred)


def _known_labels(model, y):
    """What scikit-learn's _validate_input makes of y in a classifier's partial_fit after the
    first call (the check that y's classes are known, then _label_binarizer.transform(y) as
    bool), in one pass; or None where that is not the plain case: y an exact 1-D integer
    numpy.ndarray, integer classes_ (at least 2), scikit-learn's default binarizer, no
    warm_start. For 10,000 labels scikit-learn's two steps take about as long as a training
    epoch of a small network (bench/bench_dask.py); a label not in classes_ also gives None,
    so that scikit-learn's path raises its own error."""
    if not is_classifier(model) or model.warm_start or not hasattr(model, "classes_"):
        return None
    binarizer, classes = model._label_binarizer, model.classes_
    if (
        type(y) is not np.ndarray
        or y.ndim != 1
        or y.dtype.kind not in "iu"
        or classes.dtype.kind not in "iu"
        or len(classes) < 2
        or binarizer.y_type_ not in ("binary", "multiclass")
        or binarizer.sparse_output
        or (binarizer.neg_label, binarizer.pos_label) != (0, 1)
    ):
        return None
    idx = np.searchsorted(classes, y)  # classes_ is sorted (np.unique)
    np.minimum(idx, len(classes) - 1, out=idx)
    if not np.array_equal(classes[idx], y):
        return None
    if len(classes) == 2:  # one column, for classes_[1]
        return (idx == 1).reshape(-1, 1)
    Y = np.zeros((len(y), len(classes)), dtype=bool)
    Y[np.arange(len(y)), idx] = True
    return Y


def _engine_solver(optimizer):
    return "sgd" if isinstance(optimizer, SGDOptimizer) else "adam"


class _FlatParamsMixin:
    """The numeric parts of scikit-learn's BaseMultilayerPerceptron, on a flat parameter buffer.

    State: ``_params`` (flat parameters, owner of the memory of coefs_/intercepts_/prelu_slopes_),
    ``_layer_units``, ``_opt_state`` (flat optimizer state: SGD velocity or Adam [m, v]),
    ``_optimizer`` (scikit-learn's optimizer object, used for its learning-rate schedule and
    stopping rule only; its array lists stay empty) and ``_best_params`` (early stopping).
    """

    # --- one call at a time ---------------------------------------------------------------------

    def _lock(self):
        """This estimator's re-entrant lock (early stopping predicts inside fit), created on
        first use: dict.setdefault is atomic, so two threads cannot create two locks."""
        lock = self.__dict__.get(LOCK_ATTRIBUTE)
        if lock is None:
            lock = self.__dict__.setdefault(LOCK_ATTRIBUTE, threading.RLock())
        return lock

    def _fit(self, X, y, sample_weight=None, incremental=False):
        with self._lock():
            return super()._fit(X, y, sample_weight=sample_weight, incremental=incremental)

    # --- the flat buffer ----------------------------------------------------------------------

    def _bind(self, params, layer_units, with_slopes):
        """Make coefs_, intercepts_ (and prelu_slopes_) views into params."""
        coefs, intercepts, slopes = unpack(params, layer_units, "prelu" if with_slopes else "")
        self._params = params
        self._layer_units = [int(u) for u in layer_units]
        self.coefs_ = coefs
        self.intercepts_ = intercepts
        if with_slopes:
            self.prelu_slopes_ = slopes
        else:
            self.__dict__.pop("prelu_slopes_", None)

    def _flat_params(self):
        """The flat parameter buffer, re-packed first if coefs_/intercepts_/prelu_slopes_ were
        assigned from outside (then they are no longer views into it)."""
        params = self.__dict__.get("_params")
        slopes = self.__dict__.get("prelu_slopes_", [])
        parts = list(chain(self.coefs_, self.intercepts_, slopes))
        if params is not None and all(getattr(p, "base", None) is params for p in parts):
            if sum(p.size for p in parts) == params.size:
                return params
        parts = [np.asarray(p) for p in parts]
        coefs = parts[: len(self.coefs_)]
        layer_units = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
        params = np.empty(
            n_params(layer_units, "prelu" if slopes else ""),
            dtype=_float_dtype(*(p.dtype for p in parts)),
        )
        self._bind(params, layer_units, bool(slopes))
        for view, value in zip(
            chain(self.coefs_, self.intercepts_, slopes and self.prelu_slopes_), parts
        ):
            view[...] = value
        return params

    def _initialize(self, y, layer_units, dtype):
        super()._initialize(y, layer_units, dtype)  # scikit-learn's attributes and weight draws
        del self._best_coefs, self._best_intercepts  # kept flat in _best_params instead
        self.__dict__.pop("_params", None)
        self.__dict__.pop("prelu_slopes_", None)
        if self.activation == "prelu":
            self.prelu_slopes_ = [
                np.full(units, PRELU_INIT_SLOPE, dtype=dtype) for units in layer_units[1:-1]
            ]
        self._flat_params()  # packs the fresh arrays into one buffer
        self._best_params = self._params.copy()

    def __getstate__(self):
        with self._lock():  # not while another thread trains
            state = dict(super().__getstate__())  # a copy: object.__getstate__ is __dict__
            state.pop(LOCK_ATTRIBUTE, None)  # a lock cannot be pickled; the copy makes its own
            if "coefs_" in state:
                state["_params"] = self._flat_params()
                for name in ("coefs_", "intercepts_", "prelu_slopes_"):
                    state.pop(name, None)
            return state

    def __setstate__(self, state):
        super().__setstate__(state)
        params = self.__dict__.get("_params")
        if params is not None and "coefs_" not in self.__dict__:
            # Own the loaded buffers (joblib hands out aligned views, or read-only memory maps):
            # the core writes them in place, and the views need the buffer as their base.
            best = self.__dict__.get("_best_params")
            params = _owned_copy(params)
            if best is not None:
                self._best_params = (
                    params if best is self.__dict__["_params"] else _owned_copy(best)
                )
            if self.__dict__.get("_opt_state") is not None:
                self._opt_state = _owned_copy(self._opt_state)
            units = self._layer_units
            self._bind(params, units, params.size != n_params(units, ""))

    # --- validation: dense only -----------------------------------------------------------------

    def _validate_input(self, X, y, incremental, reset):
        _reject_sparse(X)
        return self._validate_input_sklearn(X, y, incremental, reset)

    def _validate_input_sklearn(self, X, y, incremental, reset):
        """scikit-learn's _validate_input; in partial_fit after the first call, its checks of X
        and y with the labels encoded by _known_labels instead (same result, one pass)."""
        Y = _known_labels(self, y) if incremental and not reset else None
        if Y is None:
            return super()._validate_input(X, y, incremental, reset)
        X, _ = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        return X, Y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    def _engine_arrays(self, dtype, X, y, sample_weight):
        """X, Y (2-D) and sample_weight as C-contiguous arrays of the parameters' dtype."""
        X = np.ascontiguousarray(X, dtype=dtype)
        Y = np.ascontiguousarray(y.reshape(len(y), -1), dtype=dtype)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=dtype)
        return X, Y, sample_weight

    # --- prediction -----------------------------------------------------------------------------

    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            _reject_sparse(X)
            X = validate_data(self, X, reset=False)
        with self._lock():  # not while another thread trains
            params = self._flat_params()
            # Computed in the dtype numpy gives X @ coefs_, as scikit-learn does.
            dtype = _float_dtype(X.dtype, params.dtype)
            X = np.ascontiguousarray(X, dtype=dtype)
            params = params.astype(dtype, copy=False)
            return _engine.forward(
                params, self._layer_units, self.activation, self.out_activation_, X
            )

    # --- L-BFGS ---------------------------------------------------------------------------------

    def _loss_grad_lbfgs(self, packed_coef_inter, X, y, sample_weight, *unused_buffers):
        """Set the parameters to packed_coef_inter; return the loss and its gradient (float64,
        for scipy) on the full batch, as scikit-learn's method of the same name."""
        params = self._flat_params()
        params[...] = packed_coef_inter  # scipy works in float64; the network in params.dtype
        X, Y, sample_weight = self._engine_arrays(params.dtype, X, y, sample_weight)
        loss, grad = _engine.loss_grad(
            params,
            self._layer_units,
            self.activation,
            self.out_activation_,
            X,
            Y,
            sample_weight,
            alpha=float(self.alpha),
        )
        return float(loss), grad.astype(np.float64, copy=False)

    def _fit_lbfgs(
        self, X, y, sample_weight, activations, deltas, coef_grads, intercept_grads, layer_units
    ):
        params = self._flat_params()
        X, Y, sample_weight = self._engine_arrays(params.dtype, X, y, sample_weight)
        start = params.copy()
        iprint = 1 if self.verbose is True or self.verbose >= 1 else -1
        try:
            opt_res = scipy.optimize.minimize(
                self._loss_grad_lbfgs,
                params.astype(np.float64),
                method="L-BFGS-B",
                jac=True,
                options={
                    "maxfun": self.max_fun,
                    "maxiter": self.max_iter,
                    "gtol": self.tol,
                    **lbfgs_iprint_options(iprint),
                },
                args=(X, Y, sample_weight),
            )
        except KeyboardInterrupt:  # Ctrl-C, also inside one long loss_grad: the model unchanged
            params[...] = start
            raise
        self.n_iter_ = check_lbfgs_result(opt_res, self.max_iter)
        self.loss_ = opt_res.fun
        params[...] = opt_res.x
        if not _all_finite(params):
            params[...] = start
            raise ValueError(_NON_FINITE_MSG)

    # --- SGD / Adam -----------------------------------------------------------------------------

    def _fit_stochastic(
        self,
        X,
        y,
        sample_weight,
        activations,
        deltas,
        coef_grads,
        intercept_grads,
        layer_units,
        incremental,
    ):
        params = self._flat_params()
        if not incremental or not hasattr(self, "_optimizer"):
            # scikit-learn's optimizers, for their schedule; the state is the flat _opt_state.
            if self.solver == "sgd":
                self._optimizer = SGDOptimizer(
                    [],
                    self.learning_rate_init,
                    self.learning_rate,
                    self.momentum,
                    self.nesterovs_momentum,
                    self.power_t,
                )
            else:
                self._optimizer = AdamOptimizer(
                    [], self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon
                )
            self.__dict__.pop("_opt_state", None)
        optimizer = self._optimizer
        solver = _engine_solver(optimizer)
        state_size = opt_state_size(solver, params.size)
        opt_state = self.__dict__.get("_opt_state")
        if opt_state is None or opt_state.size != state_size or opt_state.dtype != params.dtype:
            opt_state = self._opt_state = np.zeros(state_size, dtype=params.dtype)

        # early_stopping in partial_fit doesn't make sense
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            # don't stratify in multilabel classification
            should_stratify = is_classifier(self) and self.n_outputs_ == 1
            stratify = y if should_stratify else None
            arrays = (X, y) if sample_weight is None else (X, y, sample_weight)
            split = train_test_split(
                *arrays,
                random_state=self._random_state,
                test_size=self.validation_fraction,
                stratify=stratify,
            )
            X_train, X_val, y_train, y_val = split[:4]
            sample_weight_train, sample_weight_val = split[4:] or (None, None)
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
        else:
            X_train, y_train, sample_weight_train = X, y, sample_weight
            X_val = y_val = sample_weight_val = None

        X_train, Y_train, sample_weight_train = self._engine_arrays(
            params.dtype, X_train, y_train, sample_weight_train
        )
        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=np.intp)

        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than "
                    "sample size. It is going to be clipped"
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        epoch_args = (self._layer_units, self.activation, self.out_activation_, X_train, Y_train)
        hyper = dict(
            solver=solver,
            alpha=float(self.alpha),
            momentum=float(getattr(optimizer, "momentum", 0.0)),
            nesterov=bool(getattr(optimizer, "nesterov", False)),
            beta_1=float(getattr(optimizer, "beta_1", 0.9)),
            beta_2=float(getattr(optimizer, "beta_2", 0.999)),
            epsilon=float(getattr(optimizer, "epsilon", 1e-8)),
        )
        # The last finite state, so that a diverging fit leaves a usable model.
        finite_params, finite_opt_state = params.copy(), opt_state.copy()
        finite_t = getattr(optimizer, "t", 0)
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_idx = shuffle(sample_idx, random_state=self._random_state)

                if solver == "sgd":
                    rate, t = optimizer.learning_rate, 0
                else:
                    rate, t = optimizer.learning_rate_init, optimizer.t
                loss, t = _engine.train_epoch(
                    params,
                    opt_state,
                    *epoch_args,
                    sample_weight_train,
                    sample_idx,
                    batch_size,
                    learning_rate=float(rate),
                    t=int(t),
                    **hyper,
                )
                if solver == "adam" and t > 0:
                    optimizer.t = t
                    optimizer.learning_rate = (
                        optimizer.learning_rate_init
                        * np.sqrt(1 - optimizer.beta_2**t)
                        / (1 - optimizer.beta_1**t)
                    )
                if _all_finite(params):
                    np.copyto(finite_params, params)
                    np.copyto(finite_opt_state, opt_state)
                    finite_t = t
                elif not early_stopping:
                    # scikit-learn would train on in NaN until max_iter, then raise.
                    break

                self.n_iter_ += 1
                self.loss_ = loss
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                # update no_improvement_count based on training loss or
                # validation score according to early_stopping
                self._update_no_improvement_count(early_stopping, X_val, y_val, sample_weight_val)

                # for learning rate that needs to be updated at iteration end
                optimizer.iteration_ends(self.t_)

                if self._no_improvement_count > self.n_iter_no_change:
                    # not better than last `n_iter_no_change` iterations by tol
                    # stop or decrease learning rate
                    if early_stopping:
                        msg = (
                            "Validation score did not improve more than "
                            "tol=%f for %d consecutive epochs." % (self.tol, self.n_iter_no_change)
                        )
                    else:
                        msg = (
                            "Training loss did not improve more than tol=%f"
                            " for %d consecutive epochs." % (self.tol, self.n_iter_no_change)
                        )

                    is_stopping = optimizer.trigger_stopping(msg, self.verbose)
                    if is_stopping:
                        break
                    else:
                        self._no_improvement_count = 0

                if incremental:
                    break

                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) "
                        "reached and the optimization hasn't converged yet." % self.max_iter,
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")

        if early_stopping:
            # restore best weights
            np.copyto(params, self._best_params)
            # As in scikit-learn, whose coefs_ now ARE its best-weights arrays: until a later
            # epoch improves on the best score, "best" means the live weights.
            self._best_params = params

        if not _all_finite(params):
            np.copyto(params, finite_params)
            np.copyto(opt_state, finite_opt_state)
            if solver == "adam":
                optimizer.t = finite_t
            raise ValueError(_NON_FINITE_MSG)

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        if not early_stopping:
            return super()._update_no_improvement_count(early_stopping, X, y, sample_weight)
        # scikit-learn's rule, keeping the best weights as one flat copy
        val_score = self._score(X, y, sample_weight=sample_weight)  # can be NaN
        self.validation_scores_.append(val_score)
        if self.verbose:
            print("Validation score: %f" % self.validation_scores_[-1])
        last_valid_score = self.validation_scores_[-1]
        if last_valid_score < (self.best_validation_score_ + self.tol):
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if last_valid_score > self.best_validation_score_:
            self.best_validation_score_ = last_valid_score
            if self._best_params is self._params:
                self._best_params = self._params.copy()
            else:
                np.copyto(self._best_params, self._params)

    # --- export ---------------------------------------------------------------------------------

    def to_sklearn(self):
        """A fitted scikit-learn MLPClassifier/MLPRegressor with this model's parameters, weights
        and training state (see mlpfast._sklearn_copy); ValueError for an activation that
        scikit-learn does not have (leaky_relu, softplus, prelu)."""
        from ._sklearn_copy import to_sklearn

        return to_sklearn(self)


_ACTIVATION_CONSTRAINT = {"activation": [StrOptions(set(HIDDEN_ACTIVATIONS))]}

_DOC_SUFFIX = f"""
    mlpfast: a drop-in for scikit-learn's estimator of the same name (same parameters,
    attributes and results), trained by mlpfast's C++ core. See scikit-learn's documentation
    for the parameters. ``activation`` may be any of
    {", ".join(map(repr, HIDDEN_ACTIVATIONS))}
    (formulas in ``mlpfast.reference`` and docs/architecture.md; "prelu" learns one slope per
    hidden unit, fitted attribute ``prelu_slopes_``); float32 input trains in float32.
    Dense input only.
"""


class MLPClassifier(_FlatParamsMixin, _SkMLPClassifier):
    __doc__ = "Multi-layer Perceptron classifier.\n" + _DOC_SUFFIX

    _parameter_constraints: dict = {
        **_SkMLPClassifier._parameter_constraints,
        **_ACTIVATION_CONSTRAINT,
    }

    def predict(self, X):
        y_pred = _fast_forward(self, X, False)
        if y_pred is None:
            return super().predict(X)
        if y_pred.shape[1] == 1:  # n_outputs_ == 1
            y_pred = y_pred.ravel()
        return _inverse_binarize(self._label_binarizer, y_pred)

    predict.__doc__ = _SkMLPClassifier.predict.__doc__

    def predict_proba(self, X):
        y_proba = _fast_forward(self, X, True)
        return super().predict_proba(X) if y_proba is None else y_proba

    predict_proba.__doc__ = _SkMLPClassifier.predict_proba.__doc__


class MLPRegressor(_FlatParamsMixin, _SkMLPRegressor):
    __doc__ = "Multi-layer Perceptron regressor.\n" + _DOC_SUFFIX

    _parameter_constraints: dict = {
        **_SkMLPRegressor._parameter_constraints,
        **_ACTIVATION_CONSTRAINT,
    }

    def predict(self, X):
        y_pred = _fast_forward(self, X, False)
        if y_pred is None:
            return super().predict(X)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    predict.__doc__ = _SkMLPRegressor.predict.__doc__
