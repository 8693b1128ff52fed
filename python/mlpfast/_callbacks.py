"""scikit-learn's callbacks (``sklearn.callback``, scikit-learn >= 1.9) in mlpfast's estimators.

The estimators follow scikit-learn's protocol as ``LogisticRegression`` does (read
``sklearn/callback/`` and ``sklearn/linear_model/_logistic.py``): ``set_callbacks(*callbacks)``;
per ``fit`` (or ``partial_fit``) call one root task, named "fit" (or "partial_fit"), merged into
the task of a meta-estimator (Pipeline, GridSearchCV) that fits it; below it one subtask per
epoch ("epoch", SGD and Adam) or per L-BFGS iteration ("lbfgs-iter", through scipy's callback,
with one extra empty subtask at the end, as scikit-learn's own L-BFGS bridge). Each task calls
``on_fit_task_begin`` and ``on_fit_task_end`` with

- ``X``, ``y``: the data the task trains on (the root: ``fit``'s arguments; an epoch: the
  training part, after early stopping's split, with the labels as passed to ``fit``),
- ``metadata``: ``{"sample_weight": ...}`` when there are sample weights,
- ``fitted_estimator``: built only when a callback's hook asks for it (scikit-learn evaluates it
  lazily): a copy of the estimator, weights included, as it is at that point (after the epoch or
  iteration), ready to predict.

``on_fit_task_end`` of an epoch or iteration returning True stops training there: the model is
the one after that epoch (``n_iter_``, ``loss_curve_`` say so; with ``early_stopping`` the best
weights are restored as at any end of training) and no ConvergenceWarning is issued. The hooks run
inside the estimator's lock (a re-entrant lock: a hook may call ``predict`` on the estimator or on
``fitted_estimator``).

Cost: with no callback set, ``fit`` does not create a context and the epoch loop only tests one
``is None`` per epoch. Where scikit-learn has no ``sklearn.callback`` (1.7, 1.8), ``set_callbacks``
raises ImportError naming the version needed.
"""

import functools

import numpy as np

from ._sklearn_compat import CALLBACKS_ATTRIBUTE, callback_management_context
from .reference import unpack

# The release whose estimators first take callbacks (sklearn.callback).
CALLBACKS_SINCE = "1.9"

# The private attribute the epoch loop writes the epoch's per-layer gradient norms to (a float64
# array, one entry per weight layer), when a callback asks for them (mlpfast.callback).
GRAD_NORMS_ATTRIBUTE = "_mlpfast_epoch_grad_norms"


def sklearn_callback():
    """The module ``sklearn.callback``, or ImportError naming the scikit-learn release needed."""
    try:
        import sklearn.callback as module
    except ImportError as exc:
        import sklearn

        raise ImportError(
            f"callbacks need scikit-learn >= {CALLBACKS_SINCE} (sklearn.callback); the installed "
            f"scikit-learn is {sklearn.__version__}. Upgrade: pip install "
            f'"scikit-learn>={CALLBACKS_SINCE}"'
        ) from exc
    return module


class CallbackSupport:
    """scikit-learn's ``CallbackSupportMixin`` API, bound to ``sklearn.callback`` at call time
    (so that the class exists with any supported scikit-learn)."""

    def set_callbacks(self, *callbacks):
        """Set callbacks for the estimator (scikit-learn >= 1.9; see ``sklearn.callback``).

        Parameters
        ----------
        *callbacks : callback instances
            The callbacks to set (``sklearn.callback.ProgressBar``, ``ScoringMonitor``,
            ``mlpfast.callback.GradientNormMonitor``, or any ``FitCallback``). None: removes them.

        Returns
        -------
        self : estimator instance
        """
        module = sklearn_callback()
        return module.CallbackSupportMixin.set_callbacks(self, *callbacks)

    def _init_callback_context(self, **kwargs):
        module = sklearn_callback()
        return module.CallbackSupportMixin._init_callback_context(self, **kwargs)


def managed(estimator):
    """scikit-learn's context manager that tears the callbacks down after fit (also when fit
    raises); scikit-learn 1.9's ``fit`` already runs in one, and the inner one leaves nothing for
    the outer. A no-op without callbacks."""
    if CALLBACKS_ATTRIBUTE not in estimator.__dict__:
        return _NULL_CONTEXT
    return callback_management_context(estimator)


class _NullContext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


_NULL_CONTEXT = _NullContext()


def _metadata(sample_weight):
    return None if sample_weight is None else {"sample_weight": sample_weight}


class FitTasks:
    """The task tree of one ``fit`` / ``partial_fit`` call with callbacks: the root task, then
    one subtask per epoch (``epoch_begin`` / ``epoch_end``) or L-BFGS iteration (``LbfgsBridge``).
    ``start`` returns None when the estimator has no callbacks: nothing to do at all."""

    @classmethod
    def start(cls, estimator, X, y, sample_weight, incremental):
        if not estimator.__dict__.get(CALLBACKS_ATTRIBUTE):
            return None
        sklearn_callback()  # callbacks unpickled where scikit-learn has none: the clear error
        if incremental:
            name, max_subtasks = "partial_fit", 1
        elif estimator.solver == "lbfgs":  # the iterations and one empty task (LbfgsBridge)
            name, max_subtasks = "fit", max(estimator.max_iter, 1) + 1
        else:
            name, max_subtasks = "fit", estimator.max_iter
        root = estimator._init_callback_context(task_name=name, max_subtasks=max_subtasks)
        tasks = cls(estimator, root)
        root.call_on_fit_task_begin(
            estimator=estimator, X=X, y=y, metadata=_metadata(sample_weight)
        )
        tasks.root_data = (X, y, sample_weight)
        return tasks

    def __init__(self, estimator, root):
        self.estimator = estimator
        self.root = root
        self.open = None  # the subtask begun and not yet ended
        self.stopped = False  # a callback asked to stop
        self.epoch_data = None  # (X, y thunk, metadata) of the epochs
        callbacks = estimator.__dict__[CALLBACKS_ATTRIBUTE]
        self.wants_grad_norms = any(getattr(cb, "records_grad_norms", False) for cb in callbacks)

    def end_root(self):
        X, y, sample_weight = self.root_data
        self.root.call_on_fit_task_end(
            estimator=self.estimator,
            X=X,
            y=y,
            metadata=_metadata(sample_weight),
            reconstruction_attributes=self._snapshot,
        )

    def _snapshot(self):
        # copy.copy of the estimator (sklearn.callback does it) copies the weights; only the
        # lists the loop appends to need copies of their own
        est = self.estimator.__dict__
        return {
            name: list(est[name])
            for name in ("loss_curve_", "validation_scores_")
            if isinstance(est.get(name), list)
        }

    # --- SGD / Adam: one subtask per epoch --------------------------------------------------

    def set_epoch_data(self, X, y, sample_weight):
        """The epochs' training data; y as the loop has it (a classifier's binarized labels),
        turned back into the labels passed to fit only if a hook asks for it."""
        est = self.estimator

        @functools.lru_cache(maxsize=1)
        def labels():
            if hasattr(est, "_label_binarizer"):
                return est._label_binarizer.inverse_transform(y)
            return y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y

        self.epoch_data = (X, labels, _metadata(sample_weight))

    def epoch_begin(self):
        X, y, metadata = self.epoch_data
        self.open = self.root.subcontext(task_name="epoch")
        self.open.call_on_fit_task_begin(
            estimator=self.estimator,
            X=X,
            y=y,
            metadata=metadata,
            reconstruction_attributes=self._snapshot,
        )

    def epoch_end(self):
        """Ends the epoch's task; True when a callback asks to stop."""
        X, y, metadata = self.epoch_data
        ctx, self.open = self.open, None
        stop = ctx.call_on_fit_task_end(
            estimator=self.estimator,
            X=X,
            y=y,
            metadata=metadata,
            reconstruction_attributes=self._snapshot,
        )
        self.stopped = bool(stop)
        return self.stopped

    def close(self):
        """Ends a subtask left open (an epoch cut short by divergence or Ctrl-C) as an empty
        task, so that every begin has its end."""
        if self.open is not None:
            ctx, self.open = self.open, None
            ctx.call_on_fit_task_end(estimator=self.estimator)


class LbfgsBridge:
    """scipy's L-BFGS-B callback -> one subtask per iteration (scikit-learn's
    ``_LbfgsCallbackBridge``): the callback ends the iteration scipy just finished and begins
    the next; the last begun one never runs and ``close`` ends it empty. A stop request raises
    StopIteration, which scipy >= 1.11 turns into the end of the minimisation at that iterate."""

    def __init__(self, tasks, x0):
        self.tasks = tasks
        est = tasks.estimator
        X, y, metadata = tasks.epoch_data
        self._data = dict(X=X, y=y, metadata=metadata)
        self._dtype = est._params.dtype
        self._units = list(est._layer_units)
        self._activation = est.activation
        self.n_iter = 0
        self._begin(x0, None)

    def _weights(self, x, fun):
        def attributes():
            coefs, intercepts, slopes = unpack(
                np.asarray(x, dtype=self._dtype).copy(), self._units, self._activation
            )
            attrs = {"coefs_": coefs, "intercepts_": intercepts, "n_iter_": self.n_iter}
            if slopes:
                attrs["prelu_slopes_"] = slopes
            if fun is not None:
                attrs["loss_"] = float(fun)
            return attrs

        return attributes

    def _begin(self, x, fun):
        ctx = self.tasks.root.subcontext(task_name="lbfgs-iter")
        ctx.call_on_fit_task_begin(
            estimator=self.tasks.estimator,
            reconstruction_attributes=self._weights(x, fun),
            **self._data,
        )
        self.tasks.open = ctx

    def __call__(self, intermediate_result):
        # scipy >= 1.11 passes an OptimizeResult (x, fun) to a callback whose parameter has this
        # name; older scipy passes the iterate alone
        x = getattr(intermediate_result, "x", intermediate_result)
        fun = getattr(intermediate_result, "fun", None)
        x = np.array(x, copy=True)
        self.n_iter += 1
        ctx, self.tasks.open = self.tasks.open, None
        stop = ctx.call_on_fit_task_end(
            estimator=self.tasks.estimator,
            reconstruction_attributes=self._weights(x, fun),
            **self._data,
        )
        if stop:
            self.tasks.stopped = True
            self.last_x = x
            raise StopIteration
        self._begin(x, fun)
