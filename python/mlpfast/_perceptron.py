"""mlpfast.Perceptron: scikit-learn's Perceptron with its per-sample loop in C++.

scikit-learn's ``Perceptron`` is ``SGDClassifier(loss="perceptron", learning_rate="constant",
eta0=1)``: for each one-vs-rest class, ``_plain_sgd`` (sklearn/linear_model/_sgd_fast.pyx.tp)
walks the shuffled rows and, where ``y * (w.x + b) <= 0``, steps ``w += eta0 * y * x``.
mlpfast subclasses it and replaces only the two private methods that run those loops
(``_fit_binary``, ``_fit_multiclass``); parameters, validation, ``partial_fit``, ``predict``,
``decision_function``, ``score``, ``densify``/``sparsify`` are scikit-learn's own.

The loop itself is ``_core.perceptron_epoch`` (csrc/perceptron.cpp): one epoch for every class
at once, with the GIL released; the stopping rules between epochs are here. See
docs/perceptron.md for the design and the fidelity argument.
"""

import numpy as np
import scipy.sparse as sp
import sklearn
from joblib import effective_n_jobs
from sklearn.linear_model import Perceptron as SklearnPerceptron
from sklearn.utils import check_random_state

from . import _core

# scikit-learn's constants (linear_model/_stochastic_gradient.py, _base.py)
_MAX_INT = np.iinfo(np.int32).max
_PENALTY_CODES = {None: 0, "l1": 1, "l2": 2, "elasticnet": 3}
_SPARSE_INTERCEPT_DECAY = 0.01

# A dense float64 X of at least this many bytes whose values are all float32 values (data that
# began as float32, or integers up to 2**24) is read from a float32 copy: the same numbers
# widened exactly, so the same coef_, but half the memory traffic, which bounds the speed once
# X outgrows the caches. Only where X is read at least _COMPACT_MIN_READS times per fit
# (max_iter x one-vs-rest vectors; the copy costs about one and a half, and fits stop early).
_COMPACT_MIN_BYTES = 32 << 20
_COMPACT_MIN_READS = 32

# scikit-learn 1.7 stops on the summed training loss; 1.8 and later on the objective (the mean
# loss plus the penalty), _plain_sgd's two versions of the same test.
_STOP_ON_OBJECTIVE = tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 8)


class Perceptron(SklearnPerceptron):
    """Linear perceptron classifier: a drop-in for ``sklearn.linear_model.Perceptron``.

    The same parameters, defaults, methods and fitted attributes (``coef_``, ``intercept_``,
    ``n_iter_``, ``t_``, ``classes_``, ``n_features_in_``, ``feature_names_in_``), dense or
    sparse (CSR) input, binary or one-vs-rest multiclass. The per-sample SGD loop runs in C++
    with the GIL released; all classes advance together, epoch by epoch.

    Fidelity: given the same ``random_state``, ``coef_``, ``intercept_``, ``n_iter_`` and
    ``t_`` equal scikit-learn's bitwise, for float64 and float32, dense and sparse input, every
    ``penalty``, ``class_weight``, ``sample_weight``, ``warm_start``, ``partial_fit``,
    ``shuffle`` and ``early_stopping``: the C++ loop performs scikit-learn's floating-point
    operations in scikit-learn's order (its shuffle generator, ``our_rand_r``, included), and
    the random draws (per-class seeds, validation split) are made by the same calls.
    What differs:

    - One-vs-rest classes advance together (scikit-learn fits them one after another), so with
      ``verbose`` the per-epoch lines of the classes are interleaved.
    - ``n_jobs`` sets the threads over classes (scikit-learn: joblib workers over classes);
      ``None`` means mlpfast's default, OpenMP's thread count (as for the MLPs; limit it with
      threadpoolctl or OMP_NUM_THREADS), where scikit-learn runs one. The result does not
      depend on it.
    - A dense float64 X of 32 MB or more whose values are all float32 values (data that began
      as float32, integer counts or pixels) is read from a float32 copy made for the fit (the
      same numbers, half the memory traffic; half of X's memory more while it runs), when
      ``max_iter`` x classes >= 32. ``coef_`` is the same.
    - Bitwise equality needs scikit-learn's build to round like ours: no fused multiply-add
      (true of scikit-learn's x86-64 wheels). ``tol`` is compared to the objective on
      scikit-learn >= 1.8 and to the summed loss on 1.7, as each release does.

    Parameters
    ----------
    penalty, alpha, l1_ratio, fit_intercept, max_iter, tol, shuffle, verbose, eta0, n_jobs,
    random_state, early_stopping, validation_fraction, n_iter_no_change, class_weight,
    warm_start
        As in ``sklearn.linear_model.Perceptron``.
    shared_order : bool, default=False
        mlpfast only; multiclass with ``shuffle=True``. scikit-learn shuffles each
        one-vs-rest problem with its own seed, so every class reads every row in its own
        order: one read of each row per class and epoch, which bounds the speed once X
        outgrows the cache. ``True`` gives all classes the first class's order, so each row is
        read once per epoch for all of them. The order is as random, but it is not
        scikit-learn's: ``coef_`` differs from scikit-learn's (as with another
        ``random_state``) for the classes after the first.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from mlpfast import Perceptron
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = Perceptron(random_state=0).fit(X, y)
    >>> clf.coef_.shape
    (3, 4)
    """

    _parameter_constraints: dict = {
        **SklearnPerceptron._parameter_constraints,
        "shared_order": ["boolean"],
    }

    def __init__(
        self,
        *,
        penalty=None,
        alpha=0.0001,
        l1_ratio=0.15,
        fit_intercept=True,
        max_iter=1000,
        tol=1e-3,
        shuffle=True,
        verbose=0,
        eta0=1.0,
        n_jobs=None,
        random_state=0,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        class_weight=None,
        warm_start=False,
        shared_order=False,
    ):
        super().__init__(
            penalty=penalty, alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
            max_iter=max_iter, tol=tol, shuffle=shuffle, verbose=verbose, eta0=eta0,
            n_jobs=n_jobs, random_state=random_state, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            class_weight=class_weight, warm_start=warm_start,
        )  # fmt: skip
        self.shared_order = shared_order

    # scikit-learn calls these two by keyword (1.7 adds C=..., unused by the perceptron).
    def _fit_binary(self, X, y, alpha, sample_weight, learning_rate, max_iter, **_unused):
        # sklearn's fit_binary(est, 1, ..., random_state=self.random_state)
        rs = check_random_state(self.random_state)
        rs.randint(1, _MAX_INT)  # make_dataset's draw: the dataset's seed, unused by SGD
        y_i = np.ones(y.shape, dtype=X.dtype)
        y_i[y != self.classes_[1]] = -1.0
        validation_mask = self._make_validation_split(y_i, sample_mask=sample_weight > 0)
        callback = self._make_validation_score_cb(
            validation_mask, X, y_i, sample_weight, classes=np.array([-1, 1], dtype=y_i.dtype)
        )
        seed = rs.randint(_MAX_INT)
        cw = self._expanded_class_weight
        coef = self.coef_.reshape(1, -1)
        intercept = np.array([self.intercept_[0]], dtype=np.float64)
        n_iter = self._run_epochs(
            X, (y_i > 0).astype(np.int32), coef, intercept, positive=[1], seeds=[seed],
            weight_pos=[cw[1]], weight_neg=[cw[0]], sample_weight=sample_weight,
            validation_mask=validation_mask, callbacks=[callback], max_iter=max_iter,
        )  # fmt: skip
        self.t_ += n_iter[0] * X.shape[0]
        self.n_iter_ = int(n_iter[0])
        self.coef_ = coef
        self.intercept_ = np.atleast_1d(float(intercept[0]))

    def _fit_multiclass(self, X, y, alpha, learning_rate, sample_weight, max_iter, **_unused):
        n_classes = len(self.classes_)
        validation_mask = self._make_validation_split(y, sample_mask=sample_weight > 0)
        seeds = check_random_state(self.random_state).randint(_MAX_INT, size=n_classes)
        shuffle_seeds, callbacks = [], []  # (the classes' own seeds, as scikit-learn's)
        for i, class_seed in enumerate(seeds):  # fit_binary(..., random_state=class_seed)
            rs = check_random_state(class_seed)
            rs.randint(1, _MAX_INT)  # make_dataset's draw
            if self.early_stopping:
                y_i = np.ones(y.shape, dtype=X.dtype)
                y_i[y != self.classes_[i]] = -1.0
                callbacks.append(
                    self._make_validation_score_cb(
                        validation_mask,
                        X,
                        y_i,
                        sample_weight,
                        classes=np.array([-1, 1], dtype=y_i.dtype),
                    )  # fmt: skip
                )
            else:
                callbacks.append(None)
            shuffle_seeds.append(rs.randint(_MAX_INT))
        if self.shared_order:  # every class walks the first class's order: one read per row
            shuffle_seeds = [shuffle_seeds[0]] * n_classes
        # the class code of each row: its index in classes_, -1 for a label not among them
        idx = np.clip(np.searchsorted(self.classes_, y), 0, n_classes - 1)
        label = np.where(self.classes_[idx] == y, idx, -1).astype(np.int32)
        intercept = np.asarray(self.intercept_, dtype=np.float64).copy()
        n_iter = self._run_epochs(
            X, label, self.coef_, intercept, positive=list(range(n_classes)),
            seeds=shuffle_seeds, weight_pos=list(self._expanded_class_weight),
            weight_neg=[1.0] * n_classes, sample_weight=sample_weight,
            validation_mask=validation_mask, callbacks=callbacks, max_iter=max_iter,
        )  # fmt: skip
        self.intercept_[:] = intercept
        n_iter_ = int(n_iter.max())
        self.t_ += n_iter_ * X.shape[0]
        self.n_iter_ = n_iter_

    def _n_threads(self):
        """n_jobs=None: the threads mlpfast's kernels use (OpenMP's count, which threadpoolctl
        and OMP_NUM_THREADS limit); otherwise joblib's reading of n_jobs (-1: every CPU)."""
        if self.n_jobs is None:
            return max(1, int(_core.max_threads()))
        return max(1, int(effective_n_jobs(self.n_jobs)))

    def _run_epochs(
        self, X, label, coef, intercept, *, positive, seeds, weight_pos, weight_neg,
        sample_weight, validation_mask, callbacks, max_iter,
    ):  # fmt: skip
        """_plain_sgd for the rows of coef (updated in place) and intercept: epochs in C++,
        scikit-learn's stopping rules here. Returns each row's n_iter."""
        if not isinstance(coef, np.ndarray) or not coef.flags.c_contiguous:
            raise ValueError("coef_ must be a C-contiguous ndarray here; call densify() first")
        dtype = coef.dtype
        m, n_features = coef.shape
        n = X.shape[0]
        x_float32 = None  # X's float32 copy, where it is one (_COMPACT_MIN_BYTES)
        if sp.issparse(X):
            X = X.astype(dtype, copy=False)
            data, indices, indptr = X.data, X.indices, X.indptr
            intercept_decay = _SPARSE_INTERCEPT_DECAY
        else:
            data, indices, indptr = np.ascontiguousarray(X, dtype=dtype), None, None
            intercept_decay = 1.0
            if (
                dtype == np.float64
                and data.nbytes >= _COMPACT_MIN_BYTES
                and max_iter * m >= _COMPACT_MIN_READS
            ):
                x_float32 = _core.float32_copy_if_exact(data)
        penalty = _PENALTY_CODES[self.penalty]
        st = {
            "coef": coef,
            "intercept": intercept,
            "label": label,
            "sample_weight": np.ascontiguousarray(sample_weight, dtype=dtype),
            "val_mask": validation_mask.astype(np.uint8),
            "order": np.tile(np.arange(n, dtype=np.int32), (m, 1)),
            "seed": np.asarray(seeds, dtype=np.uint32),
            "positive": np.asarray(positive, dtype=np.int32),
            "weight_pos": np.asarray(weight_pos, dtype=np.float64),
            "weight_neg": np.asarray(weight_neg, dtype=np.float64),
            # WeightVector's state
            "wscale": np.ones(m, dtype=dtype),
            "sq_norm": np.einsum("ij,ij->i", coef, coef).astype(dtype),
            "l1_norm": np.abs(coef).sum(axis=1).astype(dtype),
            "u": np.zeros(m),
            "q": np.zeros((m, n_features) if penalty in (1, 3) else (0, 0), dtype=dtype),
            "sumloss": np.zeros(m),
            "objective": np.zeros(m),
            "nonfinite": np.zeros(m, dtype=np.uint8),
        }
        options = dict(
            penalty=penalty, alpha=float(self.alpha), l1_ratio=float(self.l1_ratio or 0.0),
            eta0=float(self.eta0), intercept_decay=intercept_decay,
            fit_intercept=bool(self.fit_intercept), shuffle=bool(self.shuffle),
            n_threads=self._n_threads(), x_float32=x_float32,
        )  # fmt: skip
        tol = self.tol if self.tol is not None else -np.inf
        train_count = n - int(np.sum(validation_mask))
        best = np.full(m, np.inf)  # best objective (or summed loss): lower is better
        best_score = np.full(m, -np.inf)
        no_improvement = np.zeros(m, dtype=int)
        n_iter = np.full(m, max_iter)
        active = list(range(m))
        for epoch in range(max_iter):
            if self.verbose > 0:
                print(f"-- Epoch {epoch + 1}")
            _core.perceptron_epoch(
                data, indices, indptr, st, np.asarray(active, dtype=np.int64), **options
            )
            still = []
            for k in active:
                if st["nonfinite"][k]:
                    raise ValueError(
                        f"Floating-point under-/overflow occurred at epoch #{epoch + 1}. Scaling"
                        " input data with StandardScaler or MinMaxScaler might help."
                    )
                if self.early_stopping:
                    score = callbacks[k](coef[k], float(intercept[k]))
                    if self.verbose > 0:
                        print(f"Validation score: {score:f}")
                    if tol > -np.inf and score < best_score[k] + tol:
                        no_improvement[k] += 1
                    else:
                        no_improvement[k] = 0
                    best_score[k] = max(best_score[k], score)
                else:
                    if _STOP_ON_OBJECTIVE:
                        value, margin = float(st["objective"][k]) / train_count, tol
                    else:
                        value, margin = float(st["sumloss"][k]), tol * train_count
                    if self.verbose > 0:
                        print(f"Bias: {intercept[k]:.6f}, Avg. loss: {value:f}")
                    if tol > -np.inf and value > best[k] - margin:
                        no_improvement[k] += 1
                    else:
                        no_improvement[k] = 0
                    best[k] = min(best[k], value)
                if no_improvement[k] >= self.n_iter_no_change:
                    n_iter[k] = epoch + 1
                    if self.verbose:
                        print(f"Convergence after {epoch + 1} epochs")
                else:
                    still.append(k)
            active = still
            if not active:
                break
        # WeightVector.reset_wscale at the end of each fit: w = wscale * w
        scaled = st["wscale"] != 1
        if scaled.any():
            coef[scaled] *= st["wscale"][scaled, None]
        return n_iter
