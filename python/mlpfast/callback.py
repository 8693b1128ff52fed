"""mlpfast's callbacks, for ``est.set_callbacks(...)`` (scikit-learn >= 1.9, ``sklearn.callback``).

scikit-learn's own work with mlpfast's estimators as with its own (mlpfast._callbacks says how a
fit maps onto tasks): ``sklearn.callback.ProgressBar()`` (needs ``rich``:
``pip install "mlpfast[progress]"``) and ``sklearn.callback.ScoringMonitor(scoring=...)``,
which scores each epoch's model on that epoch's training data. Added here:

- ``GradientNormMonitor``: records each layer's gradient norm per epoch (vanishing gradients).
- ``ValidationScoringMonitor``: ``ScoringMonitor`` on held-out data given to it, so that its log
  has a validation score per epoch.
"""

import threading
import warnings
import weakref

import numpy as np

from ._callbacks import CALLBACKS_SINCE, GRAD_NORMS_ATTRIBUTE, sklearn_callback

__all__ = ["GradientNormMonitor", "ValidationScoringMonitor"]  # noqa: F822 (module __getattr__)


class GradientNormMonitor:
    """Records, per epoch, the size of each weight layer's gradient (solvers "sgd" and "adam").

    What is recorded, for weight layer l (``coefs_[l]``) and one epoch: the mean over the
    epoch's mini-batches, weighted by batch length as ``loss_curve_``, of ||dL/dW_l||_F, the
    Frobenius norm of the gradient of the batch's data loss (the L2 penalty's term excluded)
    with respect to ``coefs_[l]``, at the weights the batch started from. The core computes it
    from the gradients it forms anyway (docs/architecture.md); training is bitwise the same with
    or without the monitor. Setting the monitor switches the recording on; without it nothing is
    computed. With solver "lbfgs" nothing is recorded (a warning says so).

    Each ``fit`` starts a new run; ``partial_fit`` continues the latest run of the same estimator
    (as ``loss_curve_``). Records are kept in this process (fits in joblib worker processes are
    not seen; threads are).

    Attributes
    ----------
    runs_ : list of dict
        One per run, oldest first: ``"estimator_name"``, ``"grad_norms"`` (ndarray of shape
        (n_epochs, n_weight_layers)).

    grad_norms_ : ndarray of shape (n_epochs, n_weight_layers)
        The most recent run's record.

    Examples
    --------
    >>> from mlpfast import MLPClassifier
    >>> from mlpfast.callback import GradientNormMonitor
    >>> monitor = GradientNormMonitor()
    >>> clf = MLPClassifier((20, 20), max_iter=5).set_callbacks(monitor)  # doctest: +SKIP
    >>> clf.fit(X, y); monitor.grad_norms_.shape  # doctest: +SKIP
    (5, 3)
    """

    records_grad_norms = True  # the switch mlpfast._callbacks.FitTasks looks for

    def __init__(self):
        self.runs_ = []
        self._init_local_state()

    def _init_local_state(self):
        self._lock = threading.Lock()
        self._roots = weakref.WeakKeyDictionary()  # estimator -> (root context, its run)

    def __getstate__(self):  # locks and weak references stay in their process
        state = self.__dict__.copy()
        del state["_lock"], state["_roots"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_local_state()

    @property
    def grad_norms_(self):
        if not self.runs_:
            raise AttributeError("GradientNormMonitor has recorded no run yet")
        return self.runs_[-1]["grad_norms"]

    def setup(self, estimator, context):
        if getattr(estimator, "solver", None) == "lbfgs":
            warnings.warn(
                "GradientNormMonitor records per-epoch gradient norms of the solvers 'sgd' and "
                "'adam'; with solver='lbfgs' it records nothing.",
                UserWarning,
                stacklevel=2,
            )

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context):
        norms = estimator.__dict__.get(GRAD_NORMS_ATTRIBUTE)
        if norms is None or context.task_name != "epoch":
            return False
        root = context.parent
        with self._lock:
            known = self._roots.get(estimator)
            if known is not None and known[0] is root:
                run = known[1]
            elif known is not None and root.task_name == "partial_fit":
                run = known[1]  # partial_fit trains on: the same run
                self._roots[estimator] = (root, run)
            else:
                run = {"estimator_name": type(estimator).__name__, "grad_norms": None}
                self.runs_.append(run)
                self._roots[estimator] = (root, run)
            row = np.array(norms, dtype=np.float64)[None, :]
            old = run["grad_norms"]
            run["grad_norms"] = row if old is None else np.vstack([old, row])
        return False


def _validation_scoring_monitor():
    ScoringMonitor = sklearn_callback().ScoringMonitor

    class ValidationScoringMonitor(ScoringMonitor):
        __doc__ = _VALIDATION_DOC

        def __init__(self, *, scoring, X_val, y_val, sample_weight_val=None):
            super().__init__(scoring=scoring)
            self.X_val, self.y_val = X_val, y_val
            self.sample_weight_val = sample_weight_val

        def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
            metadata = None
            if self.sample_weight_val is not None:
                metadata = {"sample_weight": self.sample_weight_val}
            return super().on_fit_task_end(
                estimator,
                context,
                X=self.X_val,
                y=self.y_val,
                metadata=metadata,
                fitted_estimator=fitted_estimator,
            )

    ValidationScoringMonitor.__module__ = __name__
    ValidationScoringMonitor.__qualname__ = "ValidationScoringMonitor"
    return ValidationScoringMonitor


_VALIDATION_DOC = f"""scikit-learn's ``ScoringMonitor`` scoring on held-out data (scikit-learn >=
    {CALLBACKS_SINCE}).

    ``ScoringMonitor`` scores each task's model on the data the task trained on; this one scores
    it on ``X_val``, ``y_val`` (and ``sample_weight_val``) instead: one validation score per epoch
    (or L-BFGS iteration) and one for the final model, in the same log
    (``get_logs()``, ``ScoringMonitorLog``: rows with ``task_name`` "epoch" are the epochs).

    Parameters
    ----------
    scoring : str, callable, list, tuple or dict
        As ``sklearn.callback.ScoringMonitor``'s.
    X_val, y_val : array-like
        The held-out data.
    sample_weight_val : array-like, default=None
    """


def __getattr__(name):  # the subclass exists only where scikit-learn has ScoringMonitor
    if name == "ValidationScoringMonitor":
        cls = _validation_scoring_monitor()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
