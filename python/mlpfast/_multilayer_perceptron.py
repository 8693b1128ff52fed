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
- callbacks (scikit-learn >= 1.9's ``set_callbacks``): ``_fit`` opens the fit's task, the epoch
  loop and the L-BFGS run call the hooks (``mlpfast._callbacks``); nothing when none are set.
- ``_fit`` (fit, partial_fit) and ``_forward_pass_fast`` hold the estimator's own lock: the core
  updates the weights in place with the GIL released, so two threads training one estimator, or
  predicting while it trains, would otherwise read torn weights. They wait for each other
  instead (the lock is created on first use, never pickled, cloned or listed by get_params).

Sparse X (scipy.sparse CSR or CSC, matrices and arrays; scikit-learn's validation converts other
formats) reaches the core as CSR (``_engine_input``): only the first layer's products see the
sparsity, and X is never densified.

Differences from scikit-learn, on purpose: float32 input trains in float32 throughout (also with
lbfgs; scikit-learn mixes float64 in); the hidden activation may
be any the engine implements (``HIDDEN_ACTIVATIONS``: scikit-learn's and more); a fit that
diverges raises scikit-learn's error but leaves the last finite weights (and stops at once
instead of finishing the epochs in NaN).
"""

import inspect
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

from . import _callbacks, _engine
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


def _float_dtype(*dtypes):
    """numpy's result type of the operands, if float32/float64, else float64 (as X @ W gives).
    Always numpy's own dtype instance (an unpickled array carries an equal but distinct one)."""
    return np.dtype(np.float32 if np.result_type(*dtypes) == np.float32 else np.float64)


def _engine_input(X, dtype):
    """X as the engine takes it: a C-contiguous array, or a CSR matrix (from CSR or CSC; never
    densified), of the given dtype. No copy when X already is one."""
    if sp.issparse(X):
        return X.tocsr(copy=False).astype(dtype, copy=False)
    return np.ascontiguousarray(X, dtype=dtype)


def _check_sparse_structure(X):
    """scipy's full check of a sparse X's index arrays (ValueError when malformed: an index out
    of range, indptr not monotonic), before the model is touched. scikit-learn's validation
    does not look at them (its sparse products then read out of bounds); the core would raise
    the same, but only after fit has re-drawn the weights."""
    if sp.issparse(X):
        X.check_format(full_check=True)


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
        lock = model._lock()  # not while another thread trains (as _forward_pass_fast)
        lock.acquire_read()
        try:
            return _engine.predict_forward(model.__dict__, X, proba)
        finally:
            lock.release_read()
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


def _with_matmul_precision(sk_class):
    """sk_class's __init__ plus the keyword matmul_precision="highest" | "bfloat16" (the GEMMs'
    arithmetic: float32/float64 as given, or bf16 operands with float32 sums, float32 params).
    Its signature is written out (__signature__) for get_params and scikit-learn's checks."""

    def __init__(self, *args, matmul_precision="highest", **kwargs):
        sk_class.__init__(self, *args, **kwargs)
        self.matmul_precision = matmul_precision

    signature = inspect.signature(sk_class.__init__)
    extra = inspect.Parameter("matmul_precision", inspect.Parameter.KEYWORD_ONLY, default="highest")
    __init__.__signature__ = signature.replace(parameters=[*signature.parameters.values(), extra])
    return __init__


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


class _ModelLock:
    """One estimator's lock: any number of predictions at once, or one training call.

    ``with lock:`` is the training side (fit, partial_fit): exclusive, and re-entrant in its
    thread, since early stopping and callbacks predict inside fit. ``lock.read`` (a context
    manager) or ``acquire_read``/``release_read`` is the prediction side: shared by any number
    of threads, each of which may nest its reads. A training call that waits holds off new
    readers, so a stream of predictions cannot starve ``partial_fit``; predicting waits for a
    running training call to end, and so never sees half-updated weights. A thread that predicts
    cannot start training the same estimator before its prediction ends (RuntimeError: it would
    wait for itself).
    """

    __slots__ = ("_mutex", "_cond", "_readers", "_writer", "_depth", "_waiting", "_mine", "read")

    def __init__(self):
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0  # threads inside a prediction (not counting the writer's own)
        self._writer = None  # the training thread's ident
        self._depth = 0  # its re-entries
        self._waiting = 0  # training calls waiting for the readers to leave
        self._mine = threading.local()  # this thread's reads: depth, and whether counted
        self.read = _ReadSide(self)

    def __enter__(self):
        me = threading.get_ident()
        with self._mutex:
            if self._writer == me:
                self._depth += 1
                return self
            if getattr(self._mine, "depth", 0):
                raise RuntimeError(
                    "this estimator cannot be trained from inside one of its own predictions"
                )
            self._waiting += 1
            try:
                while self._writer is not None or self._readers:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._writer, self._depth = me, 1
        return self

    def __exit__(self, *exc_info):
        with self._mutex:
            self._depth -= 1
            if not self._depth:
                self._writer = None
                self._cond.notify_all()

    def reading(self):
        """Whether this thread is inside a prediction."""
        return bool(getattr(self._mine, "depth", 0))

    def acquire_read(self):
        mine = self._mine
        depth = getattr(mine, "depth", 0)
        if depth:  # nested in this thread's own prediction
            mine.depth = depth + 1
            return
        me = threading.get_ident()
        with self._mutex:
            counted = self._writer != me  # (inside its own training call: nothing to wait for)
            if counted:
                while self._writer is not None or self._waiting:
                    self._cond.wait()
                self._readers += 1
        mine.depth, mine.counted = 1, counted

    def release_read(self):
        mine = self._mine
        mine.depth -= 1
        if mine.depth or not mine.counted:
            return
        with self._mutex:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()


class _ReadSide:
    """``with lock.read:``, the prediction side of a _ModelLock."""

    __slots__ = ("_lock",)

    def __init__(self, lock):
        self._lock = lock

    def __enter__(self):
        self._lock.acquire_read()

    def __exit__(self, *exc_info):
        self._lock.release_read()


def _engine_solver(optimizer):
    return "sgd" if isinstance(optimizer, SGDOptimizer) else "adam"


class _FlatParamsMixin(_callbacks.CallbackSupport):
    """The numeric parts of scikit-learn's BaseMultilayerPerceptron, on a flat parameter buffer.

    State: ``_params`` (flat parameters, owner of the memory of coefs_/intercepts_/prelu_slopes_),
    ``_layer_units``, ``_opt_state`` (flat optimizer state: SGD velocity or Adam [m, v]),
    ``_optimizer`` (scikit-learn's optimizer object, used for its learning-rate schedule and
    stopping rule only; its array lists stay empty) and ``_best_params`` (early stopping).
    """

    # --- one call at a time ---------------------------------------------------------------------

    def _lock(self):
        """This estimator's _ModelLock (``with`` it to train, ``.read`` to predict), created
        on first use: dict.setdefault is atomic, so two threads cannot create two locks."""
        lock = self.__dict__.get(LOCK_ATTRIBUTE)
        if lock is None:
            lock = self.__dict__.setdefault(LOCK_ATTRIBUTE, _ModelLock())
        return lock

    def _fit(self, X, y, sample_weight=None, incremental=False):
        # callbacks (mlpfast._callbacks): a root task per call, when any are set
        with self._lock(), _callbacks.managed(self):
            tasks = _callbacks.FitTasks.start(self, X, y, sample_weight, incremental)
            if tasks is None:
                return super()._fit(X, y, sample_weight=sample_weight, incremental=incremental)
            self._mlpfast_tasks = tasks  # for _fit_stochastic / _fit_lbfgs
            try:
                super()._fit(X, y, sample_weight=sample_weight, incremental=incremental)
            finally:
                del self._mlpfast_tasks
            tasks.end_root()
            return self

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

    def _packed_params(self):
        """The flat parameter buffer if coefs_/intercepts_/prelu_slopes_ are all still views
        into it, else None."""
        params = self.__dict__.get("_params")
        if params is None:
            return None
        parts = list(chain(self.coefs_, self.intercepts_, self.__dict__.get("prelu_slopes_", [])))
        if all(getattr(p, "base", None) is params for p in parts):
            if sum(p.size for p in parts) == params.size:
                return params
        return None

    def _flat_params(self, bind=True):
        """The flat parameter buffer, re-packed first if coefs_/intercepts_/prelu_slopes_ were
        assigned from outside (then they are no longer views into it). With ``bind=False`` (the
        prediction side, which may run in several threads at once) the re-packed buffer is a
        private copy and the estimator is left as it is."""
        params = self._packed_params()
        if params is not None:
            return params
        slopes = self.__dict__.get("prelu_slopes_", [])
        parts = [np.asarray(p) for p in chain(self.coefs_, self.intercepts_, slopes)]
        coefs = parts[: len(self.coefs_)]
        layer_units = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
        params = np.empty(
            n_params(layer_units, "prelu" if slopes else ""),
            dtype=_float_dtype(*(p.dtype for p in parts)),
        )
        if not bind:
            np.concatenate([p.ravel() for p in parts], out=params)
            return params
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
        # Only early stopping reads the best weights; without it, "best" means the live weights
        # (as after early stopping; _update_no_improvement_count copies on first use), which
        # saves a copy of all the weights: with a sparse X the first layer's can be most of the
        # memory of a fit (bench/bench_sparse.py measures it against scikit-learn's).
        self._best_params = self._params.copy() if self.early_stopping else self._params

    def __getstate__(self):
        with self._lock().read:  # not while another thread trains
            state = dict(super().__getstate__())  # a copy: object.__getstate__ is __dict__
            state.pop(LOCK_ATTRIBUTE, None)  # a lock cannot be pickled; the copy makes its own
            if "coefs_" in state:
                state["_params"] = self._flat_params(bind=False)
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

    # --- matmul_precision ----------------------------------------------------------------------

    def _bf16(self):
        return getattr(self, "matmul_precision", "highest") == "bfloat16"

    def _precision_kw(self):
        """The engine calls' matmul_precision argument (none for "highest")."""
        return {"matmul_precision": "bfloat16"} if self._bf16() else {}

    # --- validation: scikit-learn's (dense, or sparse CSR / CSC) -------------------------------

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._validate_input_sklearn(X, y, incremental, reset)
        _check_sparse_structure(X)
        if self._bf16():  # bf16 products, float32 parameters and every other step
            X = X.astype(np.float32, copy=False)
        return X, y

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

    def _engine_arrays(self, dtype, X, y, sample_weight):
        """X (C-contiguous, or CSR when sparse), Y (2-D) and sample_weight in the parameters'
        dtype."""
        X = _engine_input(X, dtype)
        Y = np.ascontiguousarray(y.reshape(len(y), -1), dtype=dtype)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=dtype)
        return X, Y, sample_weight

    # --- prediction -----------------------------------------------------------------------------

    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
            _check_sparse_structure(X)
        lock = self._lock()
        if self._packed_params() is None and not lock.reading():
            with lock:  # assigned coefs_: re-packed once, as training would (readers wait)
                self._flat_params()
        with lock.read:  # not while another thread trains
            params = self._flat_params(bind=False)
            # Computed in the dtype numpy gives X @ coefs_, as scikit-learn does (bf16: float32).
            dtype = np.dtype(np.float32) if self._bf16() else _float_dtype(X.dtype, params.dtype)
            X = _engine_input(X, dtype)
            params = params.astype(dtype, copy=False)
            # (the units of coefs_ as they are: they may have been assigned since the last fit)
            units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
            return _engine.forward(
                params, units, self.activation, self.out_activation_, X, **self._precision_kw()
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
            **self._precision_kw(),
        )
        return float(loss), grad.astype(np.float64, copy=False)

    def _fit_lbfgs(
        self, X, y, sample_weight, activations, deltas, coef_grads, intercept_grads, layer_units
    ):
        params = self._flat_params()
        X, Y, sample_weight = self._engine_arrays(params.dtype, X, y, sample_weight)
        start = params.copy()
        iprint = 1 if self.verbose is True or self.verbose >= 1 else -1
        tasks = self.__dict__.get("_mlpfast_tasks")
        bridge = None
        if tasks is not None:
            tasks.set_epoch_data(X, y, sample_weight)
            bridge = _callbacks.LbfgsBridge(tasks, start)
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
                callback=bridge,
            )
        except StopIteration:  # scipy < 1.11: a callback's stop request ends minimize like this
            x = bridge.last_x
            opt_res = scipy.optimize.OptimizeResult(
                x=x, fun=self._loss_grad_lbfgs(x, X, Y, sample_weight)[0], nit=bridge.n_iter
            )
        except KeyboardInterrupt:  # Ctrl-C, also inside one long loss_grad: the model unchanged
            params[...] = start
            raise
        if tasks is not None:
            tasks.close()
        if tasks is not None and tasks.stopped:  # stopped by a callback: no ConvergenceWarning
            self.n_iter_ = int(opt_res.nit)
        else:
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
            **self._precision_kw(),
        )
        tasks = self.__dict__.get("_mlpfast_tasks")  # callbacks: None when there are none
        if tasks is not None:
            tasks.set_epoch_data(X_train, y_train, sample_weight_train)
            if tasks.wants_grad_norms:
                hyper["grad_norms"] = np.zeros(len(self._layer_units) - 1)
                setattr(self, _callbacks.GRAD_NORMS_ATTRIBUTE, hyper["grad_norms"])
        # The last finite state, so that a diverging fit leaves a usable model.
        finite_params, finite_opt_state = params.copy(), opt_state.copy()
        finite_t = getattr(optimizer, "t", 0)
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_idx = shuffle(sample_idx, random_state=self._random_state)

                if tasks is not None:
                    tasks.epoch_begin()
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

                if tasks is not None and tasks.epoch_end():
                    break  # a callback asked to stop

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
        if tasks is not None:
            tasks.close()
            self.__dict__.pop(_callbacks.GRAD_NORMS_ATTRIBUTE, None)

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


_ACTIVATION_CONSTRAINT = {
    "activation": [StrOptions(set(HIDDEN_ACTIVATIONS))],
    "matmul_precision": [StrOptions({"highest", "bfloat16"})],
}

_DOC_SUFFIX = f"""
    mlpfast: a drop-in for scikit-learn's estimator of the same name (same parameters,
    attributes and results), trained by mlpfast's C++ core. See scikit-learn's documentation
    for the parameters. ``activation`` may be any of
    {", ".join(map(repr, HIDDEN_ACTIVATIONS))}
    (formulas in ``mlpfast.reference`` and docs/architecture.md; "prelu" learns one slope per
    hidden unit, fitted attribute ``prelu_slopes_``); float32 input trains in float32.
    X may be dense or scipy.sparse (CSR / CSC); sparse X is never densified.
    ``matmul_precision="bfloat16"`` (mlpfast's own parameter; default "highest") rounds the
    operands of every dense matrix product to bfloat16 and sums in float32; parameters,
    optimizer and loss stay float32 (float64 input too).
"""


class MLPClassifier(_FlatParamsMixin, _SkMLPClassifier):
    __doc__ = "Multi-layer Perceptron classifier.\n" + _DOC_SUFFIX

    _parameter_constraints: dict = {
        **_SkMLPClassifier._parameter_constraints,
        **_ACTIVATION_CONSTRAINT,
    }

    __init__ = _with_matmul_precision(_SkMLPClassifier)

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

    __init__ = _with_matmul_precision(_SkMLPRegressor)

    def predict(self, X):
        y_pred = _fast_forward(self, X, False)
        if y_pred is None:
            return super().predict(X)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    predict.__doc__ = _SkMLPRegressor.predict.__doc__
