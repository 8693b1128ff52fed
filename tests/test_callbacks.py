"""scikit-learn's callbacks (sklearn.callback, >= 1.9) in mlpfast's estimators (issue 13, part 1),
and mlpfast.callback's monitors.

References: a fit stopped by a callback after k epochs is checked against a fit with
max_iter=k (the same model, bit for bit); fitted_estimator against such fits too; the gradient
norms against mlpfast.reference (NumPy) and against finite differences of reference.loss_grad.
"""

import sys
import threading
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import mlpfast
import mlpfast.callback
from mlpfast import MLPClassifier, MLPRegressor, reference

try:
    import sklearn.callback as callback
except ImportError:  # scikit-learn 1.7, 1.8
    callback = None
needs_callbacks = pytest.mark.skipif(
    callback is None, reason="needs scikit-learn >= 1.9 (sklearn.callback)"
)


def _data(n=120, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    return X, y[:n] % k


class Recorder:
    """Records every hook call as (hook, task_name, task_id, depth); optionally stops at an
    epoch's end, or calls a function on each epoch end."""

    def __init__(self, stop_at=None, on_end=None):
        self.events, self.stop_at, self.on_end = [], stop_at, on_end

    def setup(self, estimator, context):
        self.events.append(("setup", context.task_name, context.task_id, 0))

    def teardown(self, estimator, context):
        self.events.append(("teardown", context.task_name, context.task_id, 0))

    def on_fit_task_begin(self, estimator, context):
        self.events.append(("begin", context.task_name, context.task_id, _depth(context)))

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None, X=None, y=None):
        self.events.append(("end", context.task_name, context.task_id, _depth(context)))
        if context.task_name in ("epoch", "lbfgs-iter") and fitted_estimator is not None:
            if self.on_end is not None:
                self.on_end(estimator, context, fitted_estimator, X, y)
            return self.stop_at is not None and context.task_id + 1 == self.stop_at
        return False


def _depth(ctx):
    return 0 if ctx.parent is None else 1 + _depth(ctx.parent)


def _balanced(events):
    """Every begin has its end, properly nested."""
    stack = []
    for hook, name, task_id, _ in events:
        if hook == "begin":
            stack.append((name, task_id))
        elif hook == "end":
            assert stack.pop() == (name, task_id)
    assert not stack


# --- without sklearn.callback -----------------------------------------------------------------


def test_set_callbacks_without_sklearn_callback_names_the_version(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.callback", None)  # as in 1.7, 1.8: import fails
    with pytest.raises(ImportError, match=r"scikit-learn >= 1\.9"):
        MLPClassifier().set_callbacks(Recorder())


def test_no_callbacks_no_context(monkeypatch):
    """Without callbacks a fit creates no context at all (the epoch loop tests one `is None`)."""

    def fail(*args, **kwargs):
        raise AssertionError("a context was created without callbacks")

    monkeypatch.setattr(mlpfast._callbacks.CallbackSupport, "_init_callback_context", fail)
    X, y = _data()
    for solver in ("adam", "lbfgs"):
        clf = MLPClassifier((5,), solver=solver, max_iter=3, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y).partial_fit(X, y) if solver == "adam" else clf.fit(X, y)
    assert not {"_callback_fit_ctx", "_mlpfast_tasks"} & set(clf.__dict__)


# --- the task tree ------------------------------------------------------------------------------


@needs_callbacks
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_task_tree(solver):
    X, y = _data()
    rec = Recorder()
    clf = MLPClassifier((5,), solver=solver, max_iter=4, random_state=0).set_callbacks(rec)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    _balanced(rec.events)
    assert rec.events[0][0] == "setup" and rec.events[-1][0] == "teardown"
    assert rec.events[1] == ("begin", "fit", 0, 0) and rec.events[-2] == ("end", "fit", 0, 0)
    subtasks = [e for e in rec.events if e[0] == "end" and e[3] == 1]
    if solver == "lbfgs":  # one per iteration, and the empty one scipy never ran
        assert [e[1:3] for e in subtasks] == [("lbfgs-iter", i) for i in range(clf.n_iter_ + 1)]
    else:
        assert [e[1:3] for e in subtasks] == [("epoch", i) for i in range(4)]
    assert not {"_callback_fit_ctx", "_mlpfast_tasks"} & set(clf.__dict__)

    rec.events.clear()
    if solver != "lbfgs":
        clf.partial_fit(X, y)
        assert [e[:3] for e in rec.events if e[0] in ("begin", "end")] == [
            ("begin", "partial_fit", 0),
            ("begin", "epoch", 0),
            ("end", "epoch", 0),
            ("end", "partial_fit", 0),
        ]


@needs_callbacks
@pytest.mark.parametrize("early_stopping", [False, True])
def test_stop_after_epoch_is_the_model_of_max_iter(early_stopping):
    """on_fit_task_end returning True after epoch k: the model of max_iter=k, bit for bit."""
    X, y = _data(200)
    params = dict(hidden_layer_sizes=(7,), random_state=0, early_stopping=early_stopping)
    params.update(n_iter_no_change=50)
    clf = MLPClassifier(max_iter=20, **params).set_callbacks(Recorder(stop_at=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a stop is not a failure
        clf.fit(X, y)
    with pytest.warns(ConvergenceWarning):
        ref = MLPClassifier(max_iter=3, **params).fit(X, y)
    assert clf.n_iter_ == 3 and clf.loss_curve_ == ref.loss_curve_
    for a, b in zip(clf.coefs_ + clf.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_array_equal(a, b)


@needs_callbacks
def test_stop_lbfgs_at_iteration():
    X, y = _data(200)
    seen = {}

    def keep(est, ctx, fitted, X_, y_):
        seen[ctx.task_id] = [c.copy() for c in fitted.coefs_]

    clf = MLPRegressor(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=50, random_state=0)
    clf.set_callbacks(Recorder(stop_at=4, on_end=keep))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y.astype(float))
    assert clf.n_iter_ == 4 and sorted(seen) == [0, 1, 2, 3]
    for a, b in zip(clf.coefs_, seen[3]):  # the iterate the callback saw is the model
        np.testing.assert_array_equal(a, b)
    with pytest.warns(ConvergenceWarning):  # scipy's path is deterministic: max_iter=4 agrees
        ref = MLPRegressor(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=4, random_state=0).fit(
            X, y.astype(float)
        )
    np.testing.assert_allclose(clf.predict(X), ref.predict(X), rtol=1e-12, atol=1e-12)


@needs_callbacks
def test_fitted_estimator_is_the_model_after_the_epoch_and_predict_does_not_deadlock():
    X, y = _data(150)
    kw = dict(hidden_layer_sizes=(6,), random_state=0, max_iter=4)
    probas, live = {}, {}

    def look(est, ctx, fitted, X_, y_):
        probas[ctx.task_id] = fitted.predict_proba(X)
        live[ctx.task_id] = est.predict(X)  # the estimator being fitted: its own (re-entrant) lock
        assert X_.shape[0] == X.shape[0] and set(np.unique(y_)) <= set(np.unique(y))

    clf = MLPClassifier(**kw).set_callbacks(Recorder(on_end=look))
    worker = threading.Thread(target=lambda: _quiet_fit(clf, X, y))
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "a callback calling predict deadlocked the fit"
    for k in (0, 3):
        ref = _quiet_fit(MLPClassifier(**{**kw, "max_iter": k + 1}), X, y)
        np.testing.assert_array_equal(probas[k], ref.predict_proba(X))
        np.testing.assert_array_equal(live[k], ref.predict(X))
    # the copies are snapshots: later epochs did not change the first one
    assert not np.array_equal(probas[0], clf.predict_proba(X))


def _quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


@needs_callbacks
def test_fitted_estimator_is_built_only_when_asked(monkeypatch):
    from sklearn.callback import _callback_context

    calls = []
    real = _callback_context._from_reconstruction_attributes
    monkeypatch.setattr(
        _callback_context,
        "_from_reconstruction_attributes",
        lambda *a: calls.append(1) or real(*a),
    )

    class Cheap(Recorder):
        def on_fit_task_end(self, estimator, context):
            return False

    X, y = _data()
    _quiet_fit(MLPClassifier((5,), max_iter=3).set_callbacks(Cheap()), X, y)
    assert calls == []
    _quiet_fit(MLPClassifier((5,), max_iter=3).set_callbacks(Recorder()), X, y)
    assert len(calls) == 3 + 1  # the epochs and the root


# --- scikit-learn's callbacks: ProgressBar, ScoringMonitor -------------------------------------


@needs_callbacks
def test_progress_bar_fit_pipeline_and_search(capsys):
    pytest.importorskip("rich")
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data(90)
    clf = MLPClassifier((4,), max_iter=3, random_state=0)
    _quiet_fit(clf.set_callbacks(callback.ProgressBar()), X, y)
    out = capsys.readouterr().out
    assert "MLPClassifier - fit" in out and "100%" in out

    pipe = make_pipeline(StandardScaler(), MLPClassifier((4,), max_iter=3, random_state=0))
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=2)
    search.set_callbacks(callback.ProgressBar(max_propagation_depth=None))
    _quiet_fit(search, X, y)
    out = capsys.readouterr().out
    assert "GridSearchCV - fit" in out
    # the pipeline of each candidate and split, and its MLP, each with a bar of its own
    assert out.count("| Pipeline - fit #") == 2 * 2 + 1  # the fits and the refit
    assert out.count("fit-final-estimator | MLPClassifier - fit") == 2 * 2 + 1
    assert "100%" in out
    import re

    assert not re.search(r"\b[0-9]{1,2}%", out)  # every bar complete
    assert not hasattr(search.best_estimator_[-1], "_skl_callbacks")  # propagation undone


@needs_callbacks
def test_scoring_monitors_per_epoch():
    X, y = _data(200)
    X_val, y_val = _data(80, seed=1)
    train = callback.ScoringMonitor(scoring="accuracy")
    val = mlpfast.callback.ValidationScoringMonitor(scoring="accuracy", X_val=X_val, y_val=y_val)
    kw = dict(hidden_layer_sizes=(6,), random_state=0, max_iter=4)
    clf = _quiet_fit(MLPClassifier(**kw).set_callbacks(train, val), X, y)
    rows = [r for r in val.get_logs().data if r["task_name"] == "epoch"]
    assert [r["task_id"] for r in rows] == list(range(4))
    for k in (0, 3):  # the model after epoch k is the model of max_iter=k+1
        ref = _quiet_fit(MLPClassifier(**{**kw, "max_iter": k + 1}), X, y)
        assert rows[k]["accuracy"] == ref.score(X_val, y_val)
        assert train.get_logs().data[1 + k]["accuracy"] == ref.score(X, y)
    root = [r for r in val.get_logs().data if r["task_name"] == "fit"]
    assert root[0]["accuracy"] == clf.score(X_val, y_val)


# --- GradientNormMonitor -------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 2, 7, 200])
@pytest.mark.parametrize("activation", ["logistic", "relu", "prelu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_core_grad_norms_against_reference(batch_size, activation, dtype):
    """The core's record (GEMM path, and the fused 1-2 row path that never forms dW) against
    NumPy's norms of reference.loss_grad's gradient; the training itself is bitwise unchanged."""
    rng = np.random.default_rng(batch_size)
    units = [5, 8, 6, 3]
    n = 40
    X = rng.standard_normal((n, 5)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, n)]
    sw = rng.uniform(0.5, 2.0, n).astype(dtype) if batch_size == 7 else None
    order = rng.permutation(n)
    p0 = (rng.standard_normal(reference.n_params(units, activation)) * 0.4).astype(dtype)
    kw = dict(solver="adam", alpha=0.01, learning_rate=0.01)
    core = mlpfast._core

    def run(module, norms):
        p, state = p0.copy(), np.zeros(2 * p0.size, dtype)
        loss, _ = module.train_epoch(
            p, state, units, activation, "softmax", X, Y, sw, order, batch_size,
            grad_norms=norms, **kw,
        )  # fmt: skip
        return p, loss

    p_off, loss_off = run(core, None)
    norms = np.full(3, np.nan)
    p_on, loss_on = run(core, norms)
    np.testing.assert_array_equal(p_on, p_off)
    assert loss_on == loss_off
    expected = np.zeros(3)
    run(reference, expected)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(norms, expected, rtol=rtol)
    with pytest.raises(ValueError, match="grad_norms has 2 entries; the weight layers"):
        run(core, np.zeros(2))


@pytest.mark.parametrize("batch_size", [1, 2, 9])
def test_core_grad_norms_sparse_input(batch_size):
    """A CSR X (its first layer's gradient formed by the sparse kernel): the dense X's record."""
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(7)
    units, n = [30, 6, 2], 25
    X = sparse.random(n, 30, density=0.1, format="csr", random_state=1)
    Y = rng.standard_normal((n, 2))
    p0 = rng.standard_normal(reference.n_params(units, "tanh")) * 0.3
    order = rng.permutation(n)
    records = []
    for data in (X, X.toarray()):
        norms = np.zeros(2)
        mlpfast._core.train_epoch(
            p0.copy(), np.zeros(2 * p0.size), units, "tanh", "identity", data, Y, None, order,
            batch_size, grad_norms=norms,
        )  # fmt: skip
        records.append(norms)
    np.testing.assert_allclose(records[0], records[1], rtol=1e-10)


def test_reference_grad_norms_against_finite_differences():
    """reference.train_epoch's record on one batch: the norm of a central-difference gradient
    of the data loss with respect to each W_l (one output: scikit-learn's squared loss averages
    over outputs too, but its gradient does not)."""
    rng = np.random.default_rng(3)
    units, act = [4, 5, 1], "tanh"
    X, Y = rng.standard_normal((6, 4)), rng.standard_normal((6, 1))
    p0 = rng.standard_normal(reference.n_params(units, act)) * 0.5
    norms = np.zeros(2)
    reference.train_epoch(
        p0.copy(), np.zeros(p0.size), units, act, "identity", X, Y, None, np.arange(6), 6,
        solver="sgd", alpha=0.5, grad_norms=norms,
    )  # fmt: skip
    fd = np.zeros(p0.size)
    for i in range(p0.size):
        e = np.zeros(p0.size)
        e[i] = 1e-6
        up = reference.loss_grad(p0 + e, units, act, "identity", X, Y, None, 0.0)[0]
        down = reference.loss_grad(p0 - e, units, act, "identity", X, Y, None, 0.0)[0]
        fd[i] = (up - down) / 2e-6
    coefs = reference.unpack(fd, units, act)[0]
    np.testing.assert_allclose(norms, [np.linalg.norm(c) for c in coefs], rtol=1e-6)


@needs_callbacks
def test_gradient_norm_monitor_on_the_estimator():
    X, y = _data(100, k=2)
    y = X[:, 0] * 2.0 + X[:, 1]
    kw = dict(hidden_layer_sizes=(8, 5), solver="sgd", shuffle=False, batch_size=16)
    kw.update(random_state=0, learning_rate_init=0.01, max_iter=3)
    monitor = mlpfast.callback.GradientNormMonitor()
    est = _quiet_fit(MLPRegressor(**kw).set_callbacks(monitor), X, y)
    plain = _quiet_fit(MLPRegressor(**kw), X, y)
    np.testing.assert_array_equal(est._params, plain._params)  # recording changes nothing
    assert monitor.grad_norms_.shape == (3, 3)

    # a warm-started epoch from known weights, against reference.train_epoch
    est.set_params(warm_start=True, max_iter=1)
    p0 = est._params.copy()
    _quiet_fit(est, X, y)
    expected = np.zeros(3)
    reference.train_epoch(
        p0, np.zeros(p0.size), est._layer_units, "relu", "identity", X, y.reshape(-1, 1), None,
        np.arange(100), 16, solver="sgd", alpha=est.alpha, learning_rate=0.01, momentum=0.9,
        nesterov=True, grad_norms=expected,
    )  # fmt: skip
    assert len(monitor.runs_) == 2  # a fit starts a run
    np.testing.assert_allclose(monitor.grad_norms_[0], expected, rtol=1e-10)

    for _ in range(3):  # partial_fit continues the run
        est.partial_fit(X, y)
    assert len(monitor.runs_) == 2 and monitor.grad_norms_.shape == (4, 3)

    with pytest.warns(UserWarning, match="lbfgs"):
        _quiet_fit(
            MLPRegressor(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=2).set_callbacks(
                monitor
            ),
            X,
            y,
        )
    assert len(monitor.runs_) == 2
