"""The fast path of predict / predict_proba / predict_log_proba (issue 14, part 3).

A plain NumPy array goes through one core call (mlpfast._core.predict_forward: scikit-learn's
checks and the forward pass); everything else takes scikit-learn's path. References: the same
estimator with the fast path switched off (scikit-learn's validation, then _forward_pass_fast),
bit for bit, and scikit-learn's own MLP for warnings and errors.
"""

import threading
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from test_to_sklearn import TASKS, X, fit, make  # the same six tasks and data

from mlpfast import MLPClassifier, MLPRegressor, _engine

pytestmark = pytest.mark.skipif(
    _engine.predict_forward is None, reason="the fast path needs the compiled core"
)

NF = X.shape[1]  # the fitted width
rng = np.random.RandomState(1)
DTYPES = [np.float32, np.float64]


def fitted(task, dtype=np.float64, **params):
    model, y = make(task, **params)
    return fit(model, X.astype(dtype), y)


def methods(model):
    if isinstance(model, MLPClassifier):
        return ("predict", "predict_proba", "predict_log_proba")
    return ("predict",)


@pytest.fixture
def spy(monkeypatch):
    """Records what each core fast-path call returned: True (answered) or False (None)."""
    calls = []
    real = _engine.predict_forward

    def recording(*args):
        out = real(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(_engine, "predict_forward", recording)
    return calls


def slow(model, method, data, monkeypatch):
    """model.method(data) through scikit-learn's path (the fast path switched off)."""
    with monkeypatch.context() as m:
        m.setattr(_engine, "predict_forward", None)
        return getattr(model, method)(data)


def assert_identical(a, b):
    assert type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
    if a.dtype.kind == "f":
        assert a.tobytes() == b.tobytes()  # bit for bit
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("x_dtype", DTYPES)
@pytest.mark.parametrize("model_dtype", DTYPES)
@pytest.mark.parametrize("task", TASKS)
def test_fast_path_equals_slow_path_bitwise(task, model_dtype, x_dtype, spy, monkeypatch):
    model = fitted(task, model_dtype)
    data = np.ascontiguousarray(rng.randn(23, NF).astype(x_dtype) * 3)
    for method in methods(model):
        expected = slow(model, method, data, monkeypatch)
        spy.clear()
        got = getattr(model, method)(data)
        assert spy == [True], method  # the fast path answered
        assert_identical(got, expected)
        assert got.dtype == (
            np.float32 if model_dtype == x_dtype == np.float32 else np.float64
        ) or (method == "predict" and isinstance(model, MLPClassifier))
    one = np.ascontiguousarray(data[:1])  # the serving case: one row
    for method in methods(model):
        assert_identical(getattr(model, method)(one), slow(model, method, one, monkeypatch))


@pytest.mark.parametrize("activation", ["prelu", "tanh", "logistic", "identity"])
def test_fast_path_other_activations(activation, spy, monkeypatch):
    model = fitted("multiclass", activation=activation)
    for method in methods(model):
        spy.clear()
        assert_identical(getattr(model, method)(X), slow(model, method, X, monkeypatch))
        assert spy == [True]


def test_weights_assigned_from_outside(spy, monkeypatch):
    """coefs_ no longer views into the flat buffer: the fast path steps aside once, scikit-learn's
    path re-packs them, and the prediction uses the new weights."""
    model = fitted("multiclass")
    model.coefs_[0] = model.coefs_[0] * 2.0  # a new array, not a view
    expected = SkMLPClassifier.predict_proba(model, X)  # re-packs, through _forward_pass_fast
    model = fitted("multiclass")
    model.coefs_[0] = model.coefs_[0] * 2.0
    spy.clear()
    assert_identical(model.predict_proba(X), expected)
    assert spy[0] is False
    spy.clear()
    assert_identical(model.predict_proba(X), expected)  # re-packed: fast again
    assert spy == [True]


def _fallback_inputs():
    Xc = np.ascontiguousarray(X[:8])
    return {
        "list": Xc.tolist(),
        "fortran": np.asfortranarray(Xc),
        "strided rows": X[:16:2],
        "int": np.round(Xc * 3).astype(np.int64),
        "float16": Xc.astype(np.float16),
        "big-endian": Xc.astype(">f8"),
    }


@pytest.mark.parametrize("kind", list(_fallback_inputs()))
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_other_inputs_take_sklearns_path(task, kind, spy, monkeypatch):
    model = fitted(task)
    data = _fallback_inputs()[kind]
    for method in methods(model):
        expected = slow(model, method, data, monkeypatch)
        spy.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = getattr(model, method)(data)
        assert not any(spy), f"{kind}: the fast path answered"
        assert_identical(got, expected)


def test_sparse_input_takes_the_slow_path_with_the_same_result(spy):
    model = fitted("multiclass")
    for method in methods(model):
        spy.clear()
        got = getattr(model, method)(sp.csr_matrix(X))
        assert not any(spy), f"{method}: the fast path answered a sparse X"
        np.testing.assert_allclose(got, getattr(model, method)(X), rtol=1e-12, atol=1e-14)


def _warning_texts(model, method, data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = getattr(model, method)(data)
    return out, [(w.category, str(w.message)) for w in caught]


@pytest.mark.parametrize("fit_with_names", [True, False])
@pytest.mark.parametrize("predict_with_names", [True, False])
def test_feature_names_warnings_as_sklearn(fit_with_names, predict_with_names):
    pd = pytest.importorskip("pandas")
    columns = [f"f{i}" for i in range(NF)]
    frame = pd.DataFrame(X, columns=columns)
    y = TASKS["multiclass"][2]
    train = frame if fit_with_names else X
    test = frame.iloc[:7] if predict_with_names else np.ascontiguousarray(X[:7])
    params = dict(hidden_layer_sizes=(7,), max_iter=5, random_state=0)
    ours, theirs = MLPClassifier(**params), SkMLPClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.fit(train, y)
        theirs.fit(train, y)
    for method in methods(ours):
        got, got_warnings = _warning_texts(ours, method, test)
        expected, expected_warnings = _warning_texts(theirs, method, test)
        assert got_warnings == expected_warnings
        if fit_with_names != predict_with_names:
            assert got_warnings  # scikit-learn warns about the mismatch
        if method == "predict":
            np.testing.assert_array_equal(got, expected)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


BAD_INPUTS = {
    "too narrow": np.ones((3, NF - 1)),
    "too wide": np.ones((3, NF + 1), dtype=np.float32),
    "NaN": np.where(np.eye(3, NF) > 0, np.nan, 1.0),
    "inf float32": np.where(np.eye(3, NF) > 0, np.inf, 1.0).astype(np.float32),
    "-inf": np.where(np.eye(3, NF) > 0, -np.inf, 1.0),
    "1-D": np.ones(NF),
    "3-D": np.ones((2, 3, NF)),
    "no rows": np.ones((0, NF)),
    "np.matrix": np.ones((3, NF)).view(np.matrix),  # a subclass: scikit-learn's TypeError
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_bad_input_errors_as_sklearn(task, kind):
    """The same exception type and message as scikit-learn's own MLP (its copy: to_sklearn)."""
    model = fitted(task)
    theirs = model.to_sklearn()
    data = BAD_INPUTS[kind]
    for method in methods(model):
        with pytest.raises(Exception) as expected:
            getattr(theirs, method)(data)
        with pytest.raises(expected.type) as got:
            getattr(model, method)(data)
        assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_unfitted_model_errors_as_sklearn(estimator):
    sk_estimator = SkMLPClassifier if estimator is MLPClassifier else SkMLPRegressor
    data = np.ones((2, NF))
    for method in methods(estimator()):
        with pytest.raises(NotFittedError) as expected:
            getattr(sk_estimator(), method)(data)
        with pytest.raises(NotFittedError) as got:
            getattr(estimator(), method)(data)
        assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("task", ["multiclass", "binary", "multioutput"])
def test_concurrent_predictions_from_threads(task, monkeypatch):
    """Four Python threads predicting on one model at once (the core releases the GIL): every
    answer equals the single-threaded one."""
    model = fitted(task)
    method = "predict_proba" if isinstance(model, MLPClassifier) else "predict"
    batches = [np.ascontiguousarray(rng.randn(n, NF)) for n in (1, 3, 50, 400)]
    expected = [slow(model, method, b, monkeypatch) for b in batches]
    labels = [slow(model, "predict", b, monkeypatch) for b in batches]
    failures = []
    barrier = threading.Barrier(4)

    def worker(i):
        barrier.wait()
        for r in range(200):
            j = (i + r) % len(batches)
            if getattr(model, method)(batches[j]).tobytes() != expected[j].tobytes():
                failures.append((i, r, method))
            got = model.predict(batches[j])
            if not np.array_equal(got, labels[j]):
                failures.append((i, r, "predict"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# --- the estimator's lock: predictions share it, training has it alone --------------------------
# Each test below holds one side of the lock with an Event and checks which other calls can get
# through (they either finish or are still waiting when checked): states, not timings. A wait
# that should end is given 60 s, far beyond any of these calls.


def _in_thread(fn):
    """Runs fn in a thread; returns (thread, done Event, results list)."""
    done, results = threading.Event(), []

    def run():
        results.append(fn())
        done.set()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, done, results


def _hold_prediction(model):
    """A thread that stays inside a prediction of model (its lock's read side) until the
    returned Event is set; returns (thread, Event) once it is inside."""
    inside, leave = threading.Event(), threading.Event()

    def long_prediction():
        with model._lock().read:
            inside.set()
            leave.wait(60)

    holder, _, _ = _in_thread(long_prediction)
    assert inside.wait(60)
    return holder, leave


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "sklearn-path"])
def test_predictions_do_not_wait_for_each_other(fast, monkeypatch):
    """While one thread is inside a prediction, another thread's prediction goes through (the
    estimator's lock is shared by predictions: concurrent predictions scale)."""
    model = fitted("multiclass")
    expected = slow(model, "predict_proba", X, monkeypatch)
    if not fast:
        monkeypatch.setattr(_engine, "predict_forward", None)
    holder, leave = _hold_prediction(model)
    try:
        _, done, results = _in_thread(lambda: model.predict_proba(X))
        assert done.wait(60), "a prediction waited for another thread's prediction"
        assert results[0].tobytes() == expected.tobytes()
    finally:
        leave.set()
        holder.join(60)


@pytest.mark.filterwarnings("ignore")
def test_training_waits_for_predictions_and_holds_off_new_ones():
    """partial_fit waits for a running prediction to end; a prediction that starts while
    partial_fit waits comes after it (so a stream of predictions cannot starve training), and
    answers with the trained model."""
    model = fitted("multiclass")
    holder, leave = _hold_prediction(model)
    y = model.predict(X)
    trainer, trained, _ = _in_thread(lambda: model.partial_fit(X, y))
    lock = model._lock()
    while not lock._waiting:  # partial_fit has reached the lock and waits for the prediction
        assert trainer.is_alive()
        threading.Event().wait(0.01)
    _, predicted, results = _in_thread(lambda: model.predict_proba(X))
    assert not trained.wait(0.5), "partial_fit ran during a prediction"
    assert not predicted.is_set(), "a new prediction overtook the waiting partial_fit"
    leave.set()
    assert trained.wait(60) and predicted.wait(60)
    holder.join(60)
    # the late prediction saw the trained weights
    np.testing.assert_array_equal(results[0], model.predict_proba(X))


def test_training_from_inside_its_own_prediction_is_refused():
    model = fitted("multiclass")
    with model._lock().read:
        with pytest.raises(RuntimeError, match="inside one of its own predictions"):
            model.partial_fit(X, model.predict(X))
        # the thread may predict again inside its prediction (nested reads)
        model.predict_proba(X)
    model.partial_fit(X, model.predict(X))  # and train once it is out
