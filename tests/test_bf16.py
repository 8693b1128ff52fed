"""matmul_precision="bfloat16": the bf16 GEMM against NumPy on bf16-rounded operands (every ISA
level, the emulated kernel and the AVX512-BF16 and AMX ones where the CPU has them), the
training core against mlpfast.reference's bf16
products, training against float32 training, the estimators (scikit-learn's checks, pickling,
float64 input, ONNX export), and thread independence.

Error bound of the GEMM (stated, and asserted): with op(A), op(B) rounded to bf16 exactly as
reference.round_bf16 does, every product of two bf16 values is exact in float32, and the float32
sum of k of them (plus alpha, beta * C) is within (k + 2) * 2**-24 * |alpha| (|op(A)| |op(B)|)
of the exact sum of the rounded products (Higham, Accuracy and Stability of Numerical
Algorithms, 2nd ed., eq. 3.5, with u = 2**-24 and a margin for alpha and beta * C).
"""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

import mlpfast._core as core
from mlpfast import MLPClassifier, MLPRegressor
from mlpfast import reference as ref

from core_helpers import random_problem

ISAS = core.available_isas()


@pytest.fixture(autouse=True)
def restore_dispatch():
    before = core.isa()
    yield
    core.set_isa(before)
    core.set_bf16_kernel("best")


def kernels():
    """(isa, kernel): every bf16 kernel of every ISA level this CPU runs."""
    out = []
    for isa in ISAS:
        core.set_isa(isa)
        out += [(isa, kernel) for kernel in core.bf16_kernels()]
    core.set_isa(ISAS[-1])
    return out


KERNELS = kernels()


def use(isa, kernel):
    core.set_isa(isa)
    core.set_bf16_kernel(kernel)
    assert core.bf16_kernel() == kernel


def gemm_bf16(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the emulated kernel's notice
        return core.gemm(*args, matmul_precision="bfloat16", **kwargs)


def within_bound(C, A, B, k, alpha=1.0, beta=0.0, C0=None):
    a, b = ref.round_bf16(A).astype(np.float64), ref.round_bf16(B).astype(np.float64)
    exact = alpha * (a @ b) + (0.0 if C0 is None else beta * C0.astype(np.float64))
    size = abs(alpha) * (np.abs(a) @ np.abs(b)) + (0.0 if C0 is None else np.abs(beta * C0))
    err = np.abs(C.astype(np.float64) - exact)
    bound = (k + 2) * 2.0**-24 * size + 1e-37
    assert (err <= bound).all(), f"max err / bound = {(err / bound).max():.3g}"


def test_round_bf16_rules():
    x = np.array(
        [1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -2.5, 3.4e38, 1e-39, -1e-39, np.inf],
        np.float32,
    )
    want = np.array(
        [1.0, 1.0, 1 + 4 * 2**-8, 1 + 2**-7, -2.5, np.inf, 0.0, -0.0, np.inf], np.float32
    )
    got = ref.round_bf16(x)
    np.testing.assert_array_equal(got, want)
    assert np.signbit(got[7]) and np.isnan(ref.round_bf16(np.float32(np.nan)))
    # the core rounds the same way, in both packing orientations (A: NN and TN, B: NN and NT),
    # in the vector paths (64 values) and the scalar ones (the last 3), with every kernel
    x, want = np.tile(x[:8], 9)[:67].copy(), np.tile(want[:8], 9)[:67].copy()
    one = np.ones((1, 1), np.float32)
    e = np.zeros(67, np.float32)
    for isa, kernel in KERNELS:
        use(isa, kernel)
        col = x.reshape(-1, 1)
        np.testing.assert_array_equal(gemm_bf16(col, one), want[:, None])
        np.testing.assert_array_equal(gemm_bf16(one, col.T), want[None, :])
        np.testing.assert_array_equal(gemm_bf16(col.T.copy(), one, trans_a=True), want[:, None])
        np.testing.assert_array_equal(gemm_bf16(one, col.copy(), trans_b=True), want[None, :])
        # along k: x . e_i picks one rounded value, in the A-NN and B-NT (pairs of neighbours)
        # and the A-TN and B-NN (pairs of rows) packings
        # (values that round to infinity left out: inf * 0 would make the sum NaN)
        xk = np.where(np.isfinite(want), x, 0).astype(np.float32)
        for i in (0, 5, 33, 66):
            e[:] = 0
            e[i] = 1
            got = [
                gemm_bf16(xk[None, :], e[:, None]),
                gemm_bf16(e[None, :], xk[None, :], trans_b=True),
                gemm_bf16(xk[:, None], e[:, None], trans_a=True),
                gemm_bf16(e[None, :], xk[:, None]),
            ]
            for g in got:
                np.testing.assert_array_equal(g.ravel(), ref.round_bf16(xk[i : i + 1]))


SHAPES = [(1, 1, 1), (3, 5, 2), (7, 33, 17), (37, 1100, 61), (9, 2, 130)]


@pytest.mark.parametrize("isa, kernel", KERNELS)
def test_gemm_bf16_within_bound_of_numpy(isa, kernel):
    use(isa, kernel)
    rng = np.random.default_rng(1)
    for m, k, n in SHAPES:
        for trans_a in (False, True):
            for trans_b in (False, True):
                A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
                B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
                opA, opB = (A.T if trans_a else A), (B.T if trans_b else B)
                C = gemm_bf16(A, B, trans_a=trans_a, trans_b=trans_b)
                within_bound(C, opA, opB, k)
                C0 = rng.standard_normal((m, n)).astype(np.float32)
                out = C0.copy()
                gemm_bf16(A, B, trans_a=trans_a, trans_b=trans_b, alpha=0.25, beta=-2.0, out=out)
                within_bound(out, opA, opB, k, 0.25, -2.0, C0)
    # bias and a fused activation: edge tiles (19 columns) and whole ones (AMX: 32 x 32 tiles,
    # whose epilogue runs after the next tile's products, and a last sliver of 20 rows)
    for m, n in ((20, 19), (52, 64)):
        A = rng.standard_normal((m, 70)).astype(np.float32)
        B = rng.standard_normal((70, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        for act in ("relu", "tanh"):
            got = gemm_bf16(A, B, bias=bias, activation=act)
            plain = ref.round_bf16(A) @ ref.round_bf16(B) + bias
            want = np.maximum(plain, 0) if act == "relu" else np.tanh(plain)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_emulated_and_avx512_bf16_kernels_agree_bitwise():
    """VDPBF16PS sums a pair as fma(odd) then fma(even); the emulated kernel does the same, so
    they agree to the bit (for sums that never go subnormal, which the hardware flushes). AMX
    sums in an order of its own: it is held to the error bound only."""
    if (ISAS[-1], "avx512_bf16") not in KERNELS:
        pytest.skip("this CPU has no AVX512-BF16")
    rng = np.random.default_rng(2)
    # (100, 70, 500): the native packers' vector paths (8-row slivers of A, 16 x 16 and 8 x 16
    # register transposes, a last B sliver of 20 columns and a last A sliver of 4 rows: the
    # 4-row kernel); (57, 130, 97): A^T packed 32 rows at a time with 25 left over, 65 pairs
    # (the last one not in a whole 16, packed by masked loads)
    for m, k, n in SHAPES + [(100, 70, 500), (57, 130, 97)]:
        for trans_a in (False, True):
            for trans_b in (False, True):
                A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
                B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
                C0 = rng.standard_normal((m, n)).astype(np.float32)
                got = {}
                for kernel in ("avx512_bf16", "emulated"):
                    use(ISAS[-1], kernel)
                    out = C0.copy()  # beta: C read through the edge tiles' buffer too
                    kw = dict(trans_a=trans_a, trans_b=trans_b, alpha=0.5)
                    got[kernel] = (gemm_bf16(A, B, **kw), gemm_bf16(A, B, beta=-1.0, out=out, **kw))
                for native, emulated in zip(got["avx512_bf16"], got["emulated"]):
                    np.testing.assert_array_equal(emulated, native)


@pytest.mark.parametrize("kernel", core.bf16_kernels())
def test_gemm_bf16_bitwise_independent_of_threads(kernel):
    use(ISAS[-1], kernel)
    rng = np.random.default_rng(3)
    A = rng.standard_normal((300, 784)).astype(np.float32)
    B = rng.standard_normal((784, 500)).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        with threadpool_limits(threads, user_api="openmp"):
            results.append(
                [
                    gemm_bf16(A, B),
                    gemm_bf16(A[:, :500], B[:500].T.copy(), trans_b=True),
                    gemm_bf16(A, A[:, :77].copy(), trans_a=True),
                ]
            )
    for other in results[1:]:
        for x, y in zip(results[0], other):
            np.testing.assert_array_equal(x, y)


def test_core_calls_check_precision_and_dtype():
    rng = np.random.default_rng(4)
    units = [6, 5, 3]
    params, X, Y, _ = random_problem(rng, units, "relu", "softmax", 10, np.float64)
    with pytest.raises(TypeError, match="needs float32"):
        core.forward(params, units, "relu", "softmax", X, matmul_precision="bfloat16")
    with pytest.raises(TypeError, match="needs float32"):
        core.gemm(X, X.T.copy(), matmul_precision="bfloat16")
    with pytest.raises(ValueError, match="'highest' or 'bfloat16'"):
        core.loss_grad(params, units, "relu", "softmax", X, Y, matmul_precision="float16")
    with pytest.raises(TypeError, match="matmul_precision must be a string"):
        core.forward(params, units, "relu", "softmax", X, matmul_precision=None)
    with pytest.raises(ValueError, match="unknown or not available"):
        core.set_bf16_kernel("tpu")


@pytest.mark.parametrize("isa, kernel", KERNELS)
def test_core_matches_reference_bf16(isa, kernel):
    use(isa, kernel)
    rng = np.random.default_rng(5)
    units, act, out = [30, 40, 20, 4], "tanh", "softmax"
    params, X, Y, sw = random_problem(rng, units, act, out, 64, np.float32, weights=True)
    kw = dict(matmul_precision="bfloat16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = core.forward(params, units, act, out, X, **kw)
        loss, grad = core.loss_grad(params, units, act, out, X, Y, sw, 1e-3, **kw)
    np.testing.assert_allclose(got, ref.forward(params, units, act, out, X, **kw), atol=2e-5)
    loss_r, grad_r = ref.loss_grad(params, units, act, out, X, Y, sw, 1e-3, **kw)
    np.testing.assert_allclose(loss, loss_r, rtol=1e-5)
    # a gradient element may see one operand land on the other side of a bf16 rounding tie:
    # one bf16 ulp (2**-8 relative) of one term
    np.testing.assert_allclose(grad, grad_r, atol=2e-3 * np.abs(grad_r).max())
    # and the bf16 products are an approximation of the float32 ones (to bf16's precision)
    loss32, grad32 = core.loss_grad(params, units, act, out, X, Y, sw, 1e-3)
    np.testing.assert_allclose(loss, loss32, rtol=2e-2)
    assert np.abs(grad - grad32).max() < 0.05 * np.abs(grad32).max()


def test_train_epoch_bf16_bitwise_independent_of_threads():
    rng = np.random.default_rng(6)
    units = [64, 96, 10]
    params, X, Y, _ = random_problem(rng, units, "relu", "softmax", 500, np.float32)
    order = rng.permutation(500)
    runs = []
    for threads in (1, 2):
        p = params.copy()
        state = np.zeros(2 * p.size, np.float32)
        with threadpool_limits(threads, user_api="openmp"):
            loss, _ = core.train_epoch(
                p, state, units, "relu", "softmax", X, Y, None, order, 50,
                matmul_precision="bfloat16",
            )  # fmt: skip
        runs.append((loss, p))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


# --- training ---------------------------------------------------------------------------------


def fit_quiet(model, X, y, sample_weight=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y, sample_weight=sample_weight)


def test_xor_bf16_reaches_float32_loss():
    # stated tolerance: the final loss within 0.02 absolute of float32's (both well below 0.1)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 25, np.float32)
    y = np.array([0, 1, 1, 0] * 25)
    kw = dict(hidden_layer_sizes=(16,), activation="tanh", learning_rate_init=0.05)
    kw.update(max_iter=300, random_state=0, tol=0, n_iter_no_change=1000)
    f32 = fit_quiet(MLPClassifier(**kw), X, y)
    b16 = fit_quiet(MLPClassifier(matmul_precision="bfloat16", **kw), X, y)
    assert f32.loss_ < 0.1 and b16.loss_ < 0.1
    assert abs(b16.loss_ - f32.loss_) < 0.02
    assert (b16.predict(X) == y).all()


def test_digits_bf16_reaches_float32_loss_and_accuracy():
    # stated tolerance: loss within 10% (relative) of float32's after 30 epochs; accuracy on
    # held-out digits within 2 points
    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # float64 input: bfloat16 trains in float32
    X_train, y_train, X_test, y_test = X[:1400], y[:1400], X[1400:], y[1400:]
    kw = dict(hidden_layer_sizes=(64,), max_iter=30, random_state=0, batch_size=100)
    f32 = fit_quiet(MLPClassifier(**kw), X_train.astype(np.float32), y_train)
    b16 = fit_quiet(MLPClassifier(matmul_precision="bfloat16", **kw), X_train, y_train)
    assert b16.coefs_[0].dtype == np.float32 and b16._opt_state.dtype == np.float32
    assert abs(b16.loss_ - f32.loss_) < 0.1 * f32.loss_
    assert abs(b16.score(X_test, y_test) - f32.score(X_test, y_test)) <= 0.02
    # predict computes with bf16 products, in float32, for float64 input too
    proba = b16.predict_proba(X_test)
    assert proba.dtype == np.float32
    want = ref.forward(
        b16._params, b16._layer_units, "relu", "softmax", X_test.astype(np.float32),
        matmul_precision="bfloat16",
    )  # fmt: skip
    np.testing.assert_allclose(proba, want, atol=1e-5)
    # pickling keeps the precision and the predictions
    copy = pickle.loads(pickle.dumps(b16))
    assert copy.matmul_precision == "bfloat16"
    np.testing.assert_array_equal(copy.predict_proba(X_test), proba)


def test_lbfgs_and_regressor_bf16():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((120, 5))
    y = X[:, 0] - 0.5 * X[:, 1] ** 2
    for solver in ("lbfgs", "adam"):
        kw = dict(hidden_layer_sizes=(20,), solver=solver, max_iter=60, random_state=0)
        f32 = fit_quiet(MLPRegressor(**kw), X.astype(np.float32), y)
        b16 = fit_quiet(MLPRegressor(matmul_precision="bfloat16", **kw), X, y)
        assert b16.predict(X).dtype == np.float32
        assert abs(b16.loss_ - f32.loss_) < 0.15 * f32.loss_ + 0.01


def test_invalid_matmul_precision_raises():
    with pytest.raises(ValueError, match="matmul_precision"):
        MLPClassifier(matmul_precision="fp8").fit([[0.0], [1.0]], [0, 1])
    assert MLPClassifier().get_params()["matmul_precision"] == "highest"


def _expected_failed_checks(estimator):
    # dZ * sample_weight is rounded to bf16 before dW = A^T dZ: a weight of 3 is not three
    # repeated rows to float32 precision (the check's rtol is 1e-7); it is to bf16's (below)
    why = (
        "bf16 rounds dZ * sample_weight (a weight of 3 is not 3 repeated rows to 1e-7; "
        "test_sample_weight_as_repetition_bf16)"
    )
    return {
        "check_sample_weight_equivalence_on_dense_data": why,
        "check_sample_weight_equivalence_on_sparse_data": why,
    }


@parametrize_with_checks(
    [
        MLPClassifier(matmul_precision="bfloat16", max_iter=100, random_state=0),
        MLPRegressor(matmul_precision="bfloat16", max_iter=100, random_state=0),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_checks_bf16(estimator, check):
    check(estimator)


def test_sample_weight_as_repetition_bf16():
    # the check scikit-learn's suite makes (expected to fail above at rtol 1e-7), at bf16's
    # precision: integer weights act as repeated rows
    rng = np.random.default_rng(8)
    X = rng.standard_normal((40, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    w = rng.integers(0, 3, 40)
    kw = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=50, random_state=0)
    weighted = fit_quiet(MLPClassifier(matmul_precision="bfloat16", **kw), X, y, w)
    repeated = fit_quiet(
        MLPClassifier(matmul_precision="bfloat16", **kw), np.repeat(X, w, 0), np.repeat(y, w)
    )
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), atol=0.05)


def test_onnx_export_of_a_bf16_model():
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    from mlpfast.onnx import to_onnx

    X, y = load_digits(return_X_y=True)
    X = (X[:300] / 16.0).astype(np.float32)
    model = fit_quiet(
        MLPClassifier((32,), matmul_precision="bfloat16", max_iter=5, random_state=0), X, y[:300]
    )
    session = ort.InferenceSession(to_onnx(model).SerializeToString())
    label, proba = session.run(None, {"X": X})
    # the ONNX graph is a float32 model: it computes what matmul_precision="highest" would
    highest = pickle.loads(pickle.dumps(model)).set_params(matmul_precision="highest")
    np.testing.assert_allclose(proba, highest.predict_proba(X), atol=1e-5)
    # which is close to the bf16 products' answer
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=0.05)
    assert (label == highest.predict(X)).all()


def test_main_shows_both_precisions(capsys):
    from mlpfast.__main__ import main

    assert main(["--epochs", "3", "--hidden", "8", "--matmul-precision", "both"]) == 0
    out = capsys.readouterr().out
    assert "bfloat16" in out and "highest" in out
