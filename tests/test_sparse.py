"""Sparse X (scipy.sparse CSR / CSC, matrices and arrays).

The core's sparse first layer (csrc/sparse_kernels.cpp) against the dense path on the dense copy
of the same data and against mlpfast.reference (which multiplies with scipy's own sparse
products); the estimators against scikit-learn (which accepts sparse X natively) and against
themselves on the dense copy; bitwise independence of the thread count; bad sparse input gets
scikit-learn's behaviour (its error message, or the correct result), never a crash.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.neural_network as sknn
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

import mlpfast._core as core
from mlpfast import MLPClassifier, MLPRegressor
from mlpfast import reference as ref

from core_helpers import DTYPES, HIDDEN, SOLVERS, random_params, random_targets, tol

# float64 training on the same data, sparse vs dense or vs scikit-learn: the sums run in another
# order (per nonzero instead of the GEMM's blocks), so the loss curves agree to rounding.
CURVE_RTOL = 1e-9


def text_like(rng, n, d, density, dtype=np.float64):
    """A CSR matrix of positive counts-like values with an empty row and an all-zero column."""
    X = sp.random(n, d, density=density, format="csr", random_state=rng, dtype=dtype)
    X.data = (1.0 + 3.0 * X.data).astype(dtype)
    X = X.tolil()
    X[1, :] = 0  # a row without nonzeros
    X[:, 2] = 0  # a feature that never occurs
    X = X.tocsr()
    X.eliminate_zeros()
    return X


def with_int64_indices(X):
    X = X.copy()
    X.indices = X.indices.astype(np.int64)
    X.indptr = X.indptr.astype(np.int64)
    return X


def reversed_rows(X):
    """The same matrix with each row's nonzeros stored in reverse (unsorted) order."""
    X = X.copy()
    for i in range(X.shape[0]):
        a, b = X.indptr[i], X.indptr[i + 1]
        X.indices[a:b] = X.indices[a:b][::-1].copy()
        X.data[a:b] = X.data[a:b][::-1].copy()
    X.has_sorted_indices = False
    return X


def split_duplicates(X):
    """The same matrix with every value stored as two halves at the same column (duplicates)."""
    halves = np.repeat(X.data / 2, 2)
    out = sp.csr_matrix((halves, np.repeat(X.indices, 2), X.indptr * 2), shape=X.shape)
    assert not out.has_canonical_format
    return out


# --- the core: forward, loss_grad, train_epoch --------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", HIDDEN)
def test_core_forward_and_loss_grad_match_dense_and_reference(activation, dtype):
    rng = np.random.default_rng(0)
    units = [53, 9, 7, 3]  # two hidden layers: only the first sees the sparsity
    X = text_like(rng, 41, units[0], 0.1, dtype)
    Xd = X.toarray()
    params = random_params(rng, units, activation, dtype)
    Y = random_targets(rng, "softmax", 41, 3, dtype)
    sw = (rng.random(41) + 0.5).astype(dtype)
    out = core.forward(params, units, activation, "softmax", X)
    assert out.dtype == dtype
    assert_allclose(out, core.forward(params, units, activation, "softmax", Xd), **tol(dtype))
    assert_allclose(out, ref.forward(params, units, activation, "softmax", X), **tol(dtype))
    for weights in (None, sw):
        loss, grad = core.loss_grad(params, units, activation, "softmax", X, Y, weights, 0.01)
        dense = core.loss_grad(params, units, activation, "softmax", Xd, Y, weights, 0.01)
        oracle = ref.loss_grad(params, units, activation, "softmax", X, Y, weights, 0.01)
        for other in (dense, oracle):
            assert_allclose(loss, other[0], **tol(dtype))
            assert_allclose(grad, other[1], **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", SOLVERS)
def test_core_train_epoch_matches_dense_and_reference(solver, dtype):
    rng = np.random.default_rng(1)
    units = [61, 8, 4]
    n = 37
    X = text_like(rng, n, units[0], 0.08, dtype)
    Y = random_targets(rng, "logistic", n, 4, dtype)
    sw = (rng.random(n) + 0.5).astype(dtype)
    start = random_params(rng, units, "tanh", dtype)
    # batch sizes: the small-batch path (1, 2), uneven batches, one full batch
    for batch_size, weights in ((1, None), (2, sw), (5, None), (n, sw)):
        order = rng.permutation(n)
        results = []
        for engine, data in ((core, X), (core, X.toarray()), (ref, X)):
            params = start.copy()
            state = np.zeros(ref.opt_state_size(solver, params.size), dtype)
            t = 0
            for _ in range(2):  # the second epoch starts from a non-zero state
                loss, t = engine.train_epoch(
                    params, state, units, "tanh", "logistic", data, Y, weights, order,
                    batch_size, solver=solver, alpha=0.01, learning_rate=0.05, t=t,
                )  # fmt: skip
            results.append((loss, params, state))
        for loss, params, state in results[1:]:
            assert_allclose(results[0][0], loss, **tol(dtype))
            assert_allclose(results[0][1], params, **tol(dtype))
            assert_allclose(results[0][2], state, **tol(dtype))


def test_core_index_widths_and_storage_orders():
    rng = np.random.default_rng(2)
    units = [40, 6, 2]
    X = text_like(rng, 30, 40, 0.15)
    params = random_params(rng, units, "relu", np.float64)
    Y = random_targets(rng, "logistic", 30, 2, np.float64)

    def run(data):
        p = params.copy()
        state = np.zeros(2 * p.size)
        loss, _ = core.train_epoch(p, state, units, "relu", "logistic", data, Y, None,
                                   np.arange(30)[::-1], 4)  # fmt: skip
        return core.forward(p, units, "relu", "logistic", data), loss, p

    base = run(X)
    for same in (with_int64_indices(X), sp.csr_array(X)):  # the same arithmetic, bit for bit
        for a, b in zip(run(same), base):
            assert_array_equal(a, b)
    for close in (reversed_rows(X), split_duplicates(X)):  # other summation orders
        for a, b in zip(run(close), base):
            assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_core_results_do_not_depend_on_the_thread_count():
    # large enough for every sparse kernel to go parallel (kParallelWork)
    rng = np.random.default_rng(3)
    units = [3000, 64, 5]
    n = 500
    X = text_like(rng, n, units[0], 0.01)
    Y = random_targets(rng, "softmax", n, 5, np.float64)
    start = random_params(rng, units, "relu", np.float64)
    order = rng.permutation(n)

    def run():
        p = start.copy()
        state = np.zeros(2 * p.size)
        loss, _ = core.train_epoch(p, state, units, "relu", "softmax", X, Y, None, order, 200,
                                   solver="adam", alpha=1e-3)  # fmt: skip
        lg = core.loss_grad(p, units, "relu", "softmax", X, Y, None, 1e-3)
        return loss, p, lg[0], lg[1], core.forward(p, units, "relu", "softmax", X)

    results = []
    for threads in (1, 2, 3):
        with threadpool_limits(limits=threads, user_api="openmp"):
            results.append(run())
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.parametrize("isa", core.ISA_LEVELS)
def test_every_isa_level_matches_reference(isa):
    if isa not in core.available_isas():
        pytest.skip(f"this CPU cannot run the {isa} level")
    before = core.isa()
    rng = np.random.default_rng(7)
    units = [70, 19, 3]  # 19 units: vector bodies and remainders
    X = text_like(rng, 25, units[0], 0.1)
    params = random_params(rng, units, "softplus", np.float64)
    Y = random_targets(rng, "identity", 25, 3, np.float64)
    try:
        core.set_isa(isa)
        out = core.forward(params, units, "softplus", "identity", X)
        loss, grad = core.loss_grad(params, units, "softplus", "identity", X, Y, None, 0.1)
    finally:
        core.set_isa(before)
    assert_allclose(out, ref.forward(params, units, "softplus", "identity", X), **tol(np.float64))
    oracle = ref.loss_grad(params, units, "softplus", "identity", X, Y, None, 0.1)
    assert_allclose(loss, oracle[0], **tol(np.float64))
    assert_allclose(grad, oracle[1], **tol(np.float64))


def _core_call(name, X, params=None, state=None):
    units = [10, 4, 2]
    rng = np.random.default_rng(4)
    params = random_params(rng, units, "relu", np.float64) if params is None else params
    Y = np.ones((X.shape[0], 2))
    if name == "forward":
        return core.forward(params, units, "relu", "logistic", X)
    if name == "loss_grad":
        return core.loss_grad(params, units, "relu", "logistic", X, Y)
    state = np.zeros(2 * params.size) if state is None else state
    return core.train_epoch(params, state, units, "relu", "logistic", X, Y, None,
                            np.arange(X.shape[0]), 2)  # fmt: skip


def _malformed():
    X = sp.random(6, 10, density=0.4, format="csr", random_state=5)
    nan, inf, col, ptr, last = (X.copy() for _ in range(5))
    nan.data[1] = np.nan
    inf.data[2] = -np.inf
    col.indices[3] = 10
    ptr.indptr[2] = ptr.indptr[4]
    last.indptr[-1] = X.nnz + 5
    return [
        (nan, ValueError, "NaN or infinity"),
        (inf, ValueError, "NaN or infinity"),
        (col, ValueError, r"X.indices\[3\] = 10 is out of range"),
        (ptr, ValueError, "X.indptr must be non-decreasing"),
        (last, ValueError, "exceeds the"),
        (X[:, :9], ValueError, "9 columns but layer_units"),
        (X.astype(np.float32), TypeError, "float32 but params is float64"),
        (X.tocsc(), TypeError, "CSR format, got 'csc'"),
        (X.tocoo(), TypeError, "CSR format, got 'coo'"),
    ]


@pytest.mark.parametrize("name", ["forward", "loss_grad", "train_epoch"])
def test_core_rejects_bad_sparse_input_and_touches_nothing(name):
    for X, error, message in _malformed():
        params = random_params(np.random.default_rng(4), [10, 4, 2], "relu", np.float64)
        state = np.zeros(2 * params.size)
        before = params.copy()
        with pytest.raises(error, match=message):
            _core_call(name, X, params, state)
        assert_array_equal(params, before)
        assert not state.any()
    if name != "forward":
        with pytest.raises(ValueError, match="no rows"):
            _core_call(name, sp.csr_matrix((0, 10)))
    else:
        assert _core_call(name, sp.csr_matrix((0, 10))).shape == (0, 2)


# --- the estimators -----------------------------------------------------------------------------


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _curve(model):
    return np.array(getattr(model, "loss_curve_", [model.loss_]))


RNG = np.random.default_rng(6)
X_TEXT = text_like(RNG, 160, 120, 0.05)
Y_CLASS = RNG.integers(0, 3, 160)
Y_REG = X_TEXT @ RNG.standard_normal(120) + 0.1 * RNG.standard_normal(160)

CASES = [
    (MLPClassifier, dict(solver="sgd", momentum=0.9, batch_size=16), sp.csr_matrix),
    (MLPClassifier, dict(solver="adam", batch_size=1, max_iter=3), sp.csc_array),
    (MLPClassifier, dict(solver="adam", early_stopping=True), sp.csr_array),
    (MLPClassifier, dict(solver="lbfgs", alpha=1e-3), sp.csc_matrix),
    (MLPRegressor, dict(solver="adam", batch_size=32), sp.csr_matrix),
    (MLPRegressor, dict(solver="lbfgs"), sp.csr_array),
]


def assert_same_predictions(a, b):
    if a.dtype.kind == "f":  # a regressor's
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    else:
        assert_array_equal(a, b)


@pytest.mark.parametrize("Est, params, container", CASES)
def test_estimator_matches_sklearn_and_its_dense_self(Est, params, container):
    y = Y_CLASS if Est is MLPClassifier else Y_REG
    kw = dict(dict(hidden_layer_sizes=(12,), random_state=0, max_iter=12), **params)
    X = container(X_TEXT)
    ours = _quiet(Est(**kw).fit, X, y)
    dense = _quiet(Est(**kw).fit, X_TEXT.toarray(), y)
    SkEst = getattr(sknn, Est.__name__)
    theirs = _quiet(SkEst(**kw).fit, X, y)
    for other in (dense, theirs):
        assert ours.n_iter_ == other.n_iter_
        assert_allclose(_curve(ours), _curve(other), rtol=CURVE_RTOL)
        for a, b in zip(ours.coefs_, other.coefs_):
            assert_allclose(a, b, rtol=1e-7, atol=1e-9)
        assert_same_predictions(ours.predict(X), other.predict(X))
    assert_same_predictions(ours.predict(X), ours.predict(X_TEXT.toarray()))
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-9)
    if Est is MLPClassifier:
        assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-7, atol=1e-9)


def test_sample_weight_matches_sklearn():
    sw = np.random.default_rng(8).random(160) + 0.2
    kw = dict(hidden_layer_sizes=(8,), random_state=0, max_iter=6, solver="sgd", batch_size=20)
    ours = _quiet(MLPRegressor(**kw).fit, X_TEXT, Y_REG, sample_weight=sw)
    theirs = _quiet(sknn.MLPRegressor(**kw).fit, X_TEXT, Y_REG, sample_weight=sw)
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=CURVE_RTOL)
    assert_allclose(ours.predict(X_TEXT), theirs.predict(X_TEXT), rtol=1e-9, atol=1e-12)


def test_partial_fit_and_float32():
    kw = dict(hidden_layer_sizes=(10,), random_state=0)
    ours, theirs = MLPClassifier(**kw), sknn.MLPClassifier(**kw)
    for _ in range(3):
        ours.partial_fit(X_TEXT, Y_CLASS, classes=[0, 1, 2])
        theirs.partial_fit(X_TEXT, Y_CLASS, classes=[0, 1, 2])
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=CURVE_RTOL)
    X32 = X_TEXT.astype(np.float32)
    m32 = _quiet(MLPClassifier(max_iter=5, **kw).fit, X32, Y_CLASS)
    d32 = _quiet(MLPClassifier(max_iter=5, **kw).fit, X32.toarray(), Y_CLASS)
    assert m32.coefs_[0].dtype == np.float32
    assert m32.predict_proba(X32).dtype == np.float32
    assert_allclose(m32.loss_curve_, d32.loss_curve_, rtol=1e-5)
    assert_allclose(m32.predict_proba(X32), d32.predict_proba(X32.toarray()), atol=1e-5)


def _outcome(Est, X, y):
    """predict_proba / predict after a short fit, or the exception's type and message."""
    try:
        model = _quiet(Est(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit, X, y)
    except Exception as e:  # noqa: BLE001 - the outcome compared with scikit-learn's
        return type(e), str(e)
    return getattr(model, "predict_proba", model.predict)(X)


def _bad_inputs():
    X, y = X_TEXT[:50], Y_CLASS[:50]
    nan, inf = X.copy(), X.copy()
    nan.data[4] = np.nan
    inf.data[5] = np.inf
    return {
        "nan": (nan, y),
        "inf": (inf, y),
        "nan csc": (nan.tocsc(), y),
        "unsorted": (reversed_rows(X), y),
        "duplicates": (split_duplicates(X), y),
        "int64 indices": (with_int64_indices(X), y),
        "no samples": (X[:0], y[:0]),
        "zero row and zero column": (X, y),  # (text_like made both)
        "all zero": (sp.csr_matrix(X.shape), y),
        "coo": (X.tocoo(), y),
        "integer values": (sp.csr_matrix((X * 10).astype(np.int32)), y),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_sparse_input_as_sklearn(case):
    X, y = _bad_inputs()[case]
    ours = _outcome(MLPClassifier, X, y)
    theirs = _outcome(sknn.MLPClassifier, X, y)
    if isinstance(theirs, tuple):
        assert ours == theirs
    else:
        assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_malformed_sparse_input_is_a_value_error_not_a_crash():
    # (scikit-learn's own sparse products read out of bounds on these: not compared)
    X, y = X_TEXT[:50].copy(), Y_CLASS[:50]
    X.indices[0] = X.shape[1] + 3
    model = _quiet(MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0).fit,
                   X_TEXT[:50], y)  # fmt: skip
    before = model.coefs_[0].copy()
    for call in (
        lambda: model.fit(X, y),
        lambda: model.partial_fit(X, y),
        lambda: model.predict(X),
    ):
        with pytest.raises(ValueError, match="must be < 12"):  # scipy's check
            call()
    assert_array_equal(model.coefs_[0], before)
