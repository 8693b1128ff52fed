"""forward / loss_grad / train_epoch of the C++ core against mlpfast.reference on several
configurations (both solvers, momentum on/off, Nesterov on/off, batch sizes 1, 7, full, a short
last batch, sample weights, L2), one training step worked out by hand, and the lecture's XOR."""

import numpy as np
import pytest

import mlpfast._core as core
from mlpfast import reference as ref

from core_helpers import DTYPES, random_problem, tol

SGD_VARIANTS = [
    dict(solver="sgd", momentum=0.0, nesterov=False),
    dict(solver="sgd", momentum=0.9, nesterov=False),
    dict(solver="sgd", momentum=0.9, nesterov=True),
    dict(solver="adam"),
    dict(solver="adam", beta_1=0.8, beta_2=0.99, epsilon=1e-6),
]


def run_both(params, state, units, act, out, X, Y, sw, order, batch_size, epochs, **kw):
    """`epochs` epochs with the core and with the reference from copies of the same state;
    returns the two final (params, state) pairs and the two loss curves."""
    p_c, s_c, p_r, s_r = params.copy(), state.copy(), params.copy(), state.copy()
    t_c = t_r = kw.pop("t", 0)
    curve_c, curve_r = [], []
    for _ in range(epochs):
        loss_c, t_c = core.train_epoch(
            p_c, s_c, units, act, out, X, Y, sw, order, batch_size, t=t_c, **kw
        )
        loss_r, t_r = ref.train_epoch(
            p_r, s_r, units, act, out, X, Y, sw, order, batch_size, t=t_r, **kw
        )
        assert t_c == t_r
        curve_c.append(loss_c)
        curve_r.append(loss_r)
    return (p_c, s_c), (p_r, s_r), curve_c, curve_r


@pytest.mark.parametrize("dtype", DTYPES)
# 1 and 2: the small-batch path (weights stepped with their gradient formed on the fly); 3 and 7
# with a short last batch (of 1 and 5), 40 = full batch, 64 > n
@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 40, 64])
@pytest.mark.parametrize("variant", range(len(SGD_VARIANTS)))
def test_train_epoch_matches_reference(variant, batch_size, dtype):
    rng = np.random.default_rng(100 * variant + batch_size)
    units, act, out = [6, 10, 7, 4], "relu", "softmax"
    params, X, Y, sw = random_problem(rng, units, act, out, 40, dtype, weights=variant % 2 == 0)
    kw = dict(SGD_VARIANTS[variant], alpha=1e-2, learning_rate=0.02)
    n = ref.n_params(units, act)
    state = np.zeros(ref.opt_state_size(kw["solver"], n), dtype)
    order = rng.permutation(40)
    (p_c, s_c), (p_r, s_r), curve_c, curve_r = run_both(
        params, state, units, act, out, X, Y, sw, order, batch_size, epochs=3, t=5, **kw
    )
    assert p_c.dtype == dtype and s_c.dtype == dtype
    loose = dict(rtol=tol(dtype)["rtol"] * 10, atol=tol(dtype)["atol"] * 10)
    np.testing.assert_allclose(curve_c, curve_r, **loose)
    np.testing.assert_allclose(p_c, p_r, **loose)
    np.testing.assert_allclose(s_c, s_r, **loose)
    assert not np.array_equal(p_c, params)  # it did train


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "act, out, units",
    [
        ("logistic", "logistic", [5, 8, 3]),
        ("tanh", "identity", [5, 8, 6, 2]),
        ("leaky_relu", "exp", [5, 7, 1]),
        ("softplus", "softmax", [5, 6, 3]),
        ("prelu", "softmax", [5, 9, 8, 3]),
        ("prelu", "logistic", [5, 4, 1]),
        ("identity", "identity", [5, 3]),
    ],
)
def test_every_activation_trains_like_reference(act, out, units, dtype):
    rng = np.random.default_rng(len(units) * 31 + len(act))
    params, X, Y, sw = random_problem(rng, units, act, out, 30, dtype, weights=True)
    n = ref.n_params(units, act)
    for kw in (dict(solver="sgd", momentum=0.9, nesterov=True), dict(solver="adam")):
        state = np.zeros(ref.opt_state_size(kw["solver"], n), dtype)
        # an order with repeats and a subset: the core follows it, whatever it is
        order = np.concatenate([rng.permutation(30)[:20], [3, 3, 7]]).astype(np.intp)
        hyper = dict(alpha=1e-3, learning_rate=0.01, **kw)
        (p_c, s_c), (p_r, s_r), curve_c, curve_r = run_both(
            params, state, units, act, out, X, Y, sw, order, 6, epochs=2, **hyper
        )
        loose = dict(rtol=tol(dtype)["rtol"] * 10, atol=tol(dtype)["atol"] * 10)
        np.testing.assert_allclose(curve_c, curve_r, **loose)
        np.testing.assert_allclose(p_c, p_r, **loose)
        np.testing.assert_allclose(s_c, s_r, **loose)


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_in_chunks_and_strided_inputs(dtype):
    # more rows than one forward chunk, and X in every memory layout the bindings accept
    rng = np.random.default_rng(3)
    units, act = [7, 13, 5], "tanh"
    params, X, _, _ = random_problem(rng, units, act, "softmax", 5000, dtype)
    expected = ref.forward(params, units, act, "softmax", X)
    for Xv in (X, np.asfortranarray(X), np.repeat(X, 2, axis=0)[::2], X[:, ::-1].copy()[:, ::-1]):
        np.testing.assert_allclose(
            core.forward(params, units, act, "softmax", Xv), expected, **tol(dtype)
        )
    wide = rng.standard_normal((3000, 2000)).astype(dtype)  # chunking by the 2^20 element budget
    units = [2000, 3, 2]
    params = rng.standard_normal(ref.n_params(units, act)).astype(dtype) * 0.02
    np.testing.assert_allclose(
        core.forward(params, units, act, "identity", wide),
        ref.forward(params, units, act, "identity", wide),
        **tol(dtype),
    )
    assert core.forward(params, units, act, "identity", wide[:0]).shape == (0, 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_grad_strided_inputs_and_1d_targets(dtype):
    rng = np.random.default_rng(4)
    units, act, out = [4, 6, 1], "relu", "logistic"
    params, X, Y, sw = random_problem(rng, units, act, out, 50, dtype, weights=True)
    expected = ref.loss_grad(params, units, act, out, X, Y, sw, 0.1)
    big_sw = np.repeat(sw, 3)
    for Xv, Yv, swv in (
        (np.asfortranarray(X), np.asfortranarray(Y), sw),
        (np.repeat(X, 2, axis=0)[::2], np.repeat(Y, 2, axis=0)[::2], big_sw[::3]),
        (X, Y[:, 0], sw),  # (n,) targets for a single output
    ):
        loss, grad = core.loss_grad(params, units, act, out, Xv, Yv, swv, 0.1)
        np.testing.assert_allclose(loss, expected[0], **tol(dtype))
        np.testing.assert_allclose(grad, expected[1], **tol(dtype))


def test_one_step_by_hand():
    # Net 2-1-1, ReLU hidden unit, identity output (squared error), one sample, SGD lr 0.1.
    #   params = [W1 = (0.5, -0.25), W2 = 2.0, b1 = 0.1, b2 = -0.1]
    #   x = (1, 2), y = 1
    # forward:  z1 = 0.5*1 - 0.25*2 + 0.1 = 0.1   a1 = relu(0.1) = 0.1
    #           z2 = 2.0*0.1 - 0.1 = 0.1          p = 0.1
    # loss:     0.5 * (0.1 - 1)^2 = 0.405
    #           + alpha/2 * ||W||^2 / m = 0.05 * (0.25 + 0.0625 + 4) = 0.215625  (alpha = 0.1)
    # backward: dz2 = p - y = -0.9
    #           dW2 = a1 * dz2 + alpha*W2 = -0.09 + 0.2 = 0.11      db2 = -0.9
    #           da1 = dz2 * W2 = -1.8;  dz1 = da1 * relu'(z1) = -1.8
    #           dW1 = x * dz1 + alpha*W1 = (-1.8 + 0.05, -3.6 - 0.025) = (-1.75, -3.625)
    #           db1 = -1.8
    # SGD (no momentum): p -= 0.1 * grad
    #           W1 = (0.675, 0.1125), W2 = 1.989, b1 = 0.28, b2 = -0.01
    params = np.array([0.5, -0.25, 2.0, 0.1, -0.1])
    X, Y = np.array([[1.0, 2.0]]), np.array([[1.0]])
    units = [2, 1, 1]
    loss, grad = core.loss_grad(params, units, "relu", "identity", X, Y, None, 0.1)
    np.testing.assert_allclose(loss, 0.405 + 0.215625, rtol=1e-14)
    np.testing.assert_allclose(grad, [-1.75, -3.625, 0.11, -1.8, -0.9], rtol=1e-14)
    velocity = np.zeros(5)
    one_batch = (units, "relu", "identity", X, Y, None, np.array([0]), 1)
    sgd = dict(solver="sgd", alpha=0.1, learning_rate=0.1, momentum=0.0, nesterov=False)
    loss, t = core.train_epoch(params, velocity, *one_batch, **sgd)
    np.testing.assert_allclose(loss, 0.620625, rtol=1e-14)
    assert t == 0  # sgd leaves Adam's step count alone
    np.testing.assert_allclose(params, [0.675, 0.1125, 1.989, 0.28, -0.01], rtol=1e-14)
    np.testing.assert_allclose(velocity, [0.175, 0.3625, -0.011, 0.18, 0.09], rtol=1e-14)

    # Adam's first step from zero moments: m = 0.1 g, v = 0.001 g^2 and
    # lr_t = lr sqrt(1 - 0.999) / (1 - 0.9), so each parameter moves by
    # lr * g / (|g| + eps / sqrt(0.001)) = lr * sign(g) up to 3e-7 relative.
    params = np.array([0.5, -0.25, 2.0, 0.1, -0.1])
    state = np.zeros(10)
    _, t = core.train_epoch(params, state, *one_batch, solver="adam", alpha=0.1, learning_rate=0.01)
    assert t == 1
    g = np.array([-1.75, -3.625, 0.11, -1.8, -0.9])
    np.testing.assert_allclose(params, [0.5, -0.25, 2.0, 0.1, -0.1] - 0.01 * np.sign(g), rtol=1e-6)
    np.testing.assert_allclose(state, np.concatenate([0.1 * g, 0.001 * g**2]), rtol=1e-14)


XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])


def glorot_uniform(rng, units, act):
    params = np.empty(ref.n_params(units, act))
    coefs, intercepts, _ = ref.unpack(params, units, act)
    for W, b in zip(coefs, intercepts):
        bound = np.sqrt(6.0 / (W.shape[0] + W.shape[1]))
        W[...] = rng.uniform(-bound, bound, W.shape)
        b[...] = rng.uniform(-bound, bound, b.shape)
    return params


def train_xor(units, seed, epochs=1000):
    params = glorot_uniform(np.random.default_rng(seed), units, "tanh")
    state, t = np.zeros(2 * params.size), 0
    for _ in range(epochs):
        loss, t = core.train_epoch(
            params,
            state,
            units,
            "tanh",
            "logistic",
            XOR_X,
            XOR_Y,
            None,
            np.arange(4),
            4,
            solver="adam",
            learning_rate=0.05,
            t=t,
        )
    return loss, core.forward(params, units, "tanh", "logistic", XOR_X)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xor_is_learned_with_a_hidden_layer(seed):
    loss, proba = train_xor([2, 4, 1], seed)
    np.testing.assert_array_equal(proba > 0.5, XOR_Y == 1)
    assert loss < 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xor_is_not_learned_without_a_hidden_layer(seed):
    # Logistic regression: XOR is not linearly separable, and the cross-entropy's only minimum
    # is w = 0, b = 0 (by symmetry): p = 1/2 for every point, loss log 2. Training must get
    # there, whatever the start.
    loss, proba = train_xor([2, 1], seed)
    np.testing.assert_allclose(proba, 0.5, atol=1e-5)
    assert abs(loss - np.log(2)) < 1e-9
