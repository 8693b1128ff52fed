"""Every hidden activation and every output activation / loss of the C++ core against
mlpfast.reference, forward and gradient, in float32 and float64; the loss values at the extremes
(clipping, overflow) where a naive log(p) would break."""

import numpy as np
import pytest

import mlpfast._core as core
from mlpfast import reference as ref

from core_helpers import DTYPES, HIDDEN, OUTPUTS, SOLVERS, random_problem, tol


def test_reference_and_core_implement_the_same_names():
    # The reference is the oracle of every name the core implements: a name added to one and
    # not the other would go untested (or the estimators would accept an untested name).
    assert set(HIDDEN) == set(ref.HIDDEN_ACTIVATIONS)
    assert set(OUTPUTS) == set(ref.OUTPUT_ACTIVATIONS)
    assert set(SOLVERS) == set(ref.SOLVERS)
    assert len(set(HIDDEN)) == len(HIDDEN) and len(set(OUTPUTS)) == len(OUTPUTS)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", HIDDEN)
def test_hidden_activation_forward_and_gradient(activation, dtype):
    rng = np.random.default_rng(hash(activation) % 2**32)
    units = [5, 9, 3]
    # scale up the inputs so every activation sees both signs and its saturated ranges
    params, X, Y, _ = random_problem(rng, units, activation, "identity", 37, dtype)
    X *= 3
    out = core.forward(params, units, activation, "identity", X)
    assert out.dtype == dtype and out.shape == (37, 3)
    np.testing.assert_allclose(
        out, ref.forward(params, units, activation, "identity", X), **tol(dtype)
    )
    loss, grad = core.loss_grad(params, units, activation, "identity", X, Y)
    loss_r, grad_r = ref.loss_grad(params, units, activation, "identity", X, Y)
    assert grad.dtype == dtype and grad.shape == params.shape
    np.testing.assert_allclose(loss, loss_r, **tol(dtype))
    np.testing.assert_allclose(grad, grad_r, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("out_activation", OUTPUTS)
def test_output_loss_forward_and_gradient(out_activation, weights, dtype):
    rng = np.random.default_rng(7 + OUTPUTS.index(out_activation))
    for units in ([6, 4], [6, 1], [3, 5, 2]):
        params, X, Y, sw = random_problem(rng, units, "tanh", out_activation, 23, dtype, weights)
        out = core.forward(params, units, "tanh", out_activation, X)
        np.testing.assert_allclose(
            out, ref.forward(params, units, "tanh", out_activation, X), **tol(dtype)
        )
        for alpha in (0.0, 0.3):
            loss, grad = core.loss_grad(params, units, "tanh", out_activation, X, Y, sw, alpha)
            loss_r, grad_r = ref.loss_grad(params, units, "tanh", out_activation, X, Y, sw, alpha)
            assert isinstance(loss, float)
            np.testing.assert_allclose(loss, loss_r, **tol(dtype))
            np.testing.assert_allclose(grad, grad_r, **tol(dtype))


def _one_layer(z, dtype):
    """A net [1, k] with X = [[1]] whose output pre-activations are exactly z."""
    z = np.asarray(z, dtype=dtype)
    params = np.concatenate([z, np.zeros_like(z)]).astype(dtype)  # W = z (1 x k), b = 0
    return params, [1, z.shape[0]], np.ones((1, 1), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_extreme_logits_are_clipped_like_sklearn(dtype):
    eps = np.finfo(dtype).eps
    # confident and right: p = 1 is clipped to 1 - eps, loss = -log(1 - eps)
    params, units, X = _one_layer([1000.0, -1000.0, 0.0], dtype)
    loss, grad = core.loss_grad(params, units, "relu", "softmax", X, np.array([[1, 0, 0]], dtype))
    np.testing.assert_allclose(loss, -np.log1p(-eps), rtol=1e-6)
    # confident and wrong: p = e^-2000 is clipped to eps, loss = -log(eps)
    loss, grad = core.loss_grad(params, units, "relu", "softmax", X, np.array([[0, 1, 0]], dtype))
    np.testing.assert_allclose(loss, -np.log(eps), rtol=1e-6)
    assert np.all(np.isfinite(grad))
    # the gradient is p - y, unclipped: (1, 0, 0) - (0, 1, 0) on W and b
    np.testing.assert_allclose(grad, [1, -1, 0, 1, -1, 0], atol=1e-6)
    loss_r, grad_r = ref.loss_grad(
        params, units, "relu", "softmax", X, np.array([[0, 1, 0]], dtype)
    )
    np.testing.assert_allclose(loss, loss_r, rtol=1e-6)
    np.testing.assert_allclose(grad, grad_r, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logistic_extreme_logits_are_clipped_like_sklearn(dtype):
    eps = np.finfo(dtype).eps
    z = [-800.0, -40.0, -3.0, 0.0, 2.5, 40.0, 800.0]
    params, units, X = _one_layer(z, dtype)
    for y in (0.0, 1.0):
        Y = np.full((1, len(z)), y, dtype)
        loss, grad = core.loss_grad(params, units, "relu", "logistic", X, Y)
        loss_r, grad_r = ref.loss_grad(params, units, "relu", "logistic", X, Y)
        assert np.isfinite(loss) and np.all(np.isfinite(grad))
        np.testing.assert_allclose(loss, loss_r, rtol=1e-5 if dtype == np.float32 else 1e-12)
        np.testing.assert_allclose(grad, grad_r, atol=1e-7)
    # each saturated wrong output costs exactly -log(eps) (sklearn's clip), not 800
    Y = np.zeros((1, 1), dtype)
    loss, _ = core.loss_grad(*_one_layer([800.0], dtype)[:2], "relu", "logistic", X, Y)
    np.testing.assert_allclose(loss, -np.log(eps), rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logistic_loss_is_accurate_where_naive_float32_is_not(dtype):
    # z = 10: log(1 - sigmoid(10)) = -10.0000454; computing 1 - p in float32 loses 3 digits.
    params, units, X = _one_layer([10.0], dtype)
    loss, _ = core.loss_grad(params, units, "relu", "logistic", X, np.zeros((1, 1), dtype))
    np.testing.assert_allclose(loss, 10.0 + np.log1p(np.exp(-10.0)), rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_poisson_loss_zero_and_positive_counts(dtype):
    params, units, X = _one_layer([-2.0, 0.5, 3.0], dtype)
    Y = np.array([[0.0, 2.0, 30.0]], dtype)
    loss, grad = core.loss_grad(params, units, "relu", "exp", X, Y)
    p = np.exp([-2.0, 0.5, 3.0])
    y = Y[0].astype(float)
    expected = p[0] + (2 * np.log(2 / p[1]) - 2 + p[1]) + (30 * np.log(30 / p[2]) - 30 + p[2])
    np.testing.assert_allclose(loss, expected, rtol=1e-5 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(grad, np.concatenate([p - y, p - y]), rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_squared_error_is_mean_over_outputs_gradient_is_not(dtype):
    # scikit-learn: loss = 0.5 * mean over samples and outputs; dZ = p - y (not divided by n_out)
    params, units, X = _one_layer([1.0, -2.0], dtype)
    Y = np.array([[0.0, 2.0]], dtype)
    loss, grad = core.loss_grad(params, units, "relu", "identity", X, Y)
    np.testing.assert_allclose(loss, 0.5 * (1.0 + 16.0) / 2, rtol=1e-6)
    np.testing.assert_allclose(grad, [1.0, -4.0, 1.0, -4.0], rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_activation", OUTPUTS)
def test_forward_output_activation_at_extremes(out_activation, dtype):
    z = [-700.0, -30.0, 0.0, 30.0, 80.0]
    params, units, X = _one_layer(z, dtype)
    with np.errstate(over="ignore"):
        expected = ref.forward(params, units, "relu", out_activation, X)
    out = core.forward(params, units, "relu", out_activation, X)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    if out_activation == "softmax":
        np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-6)
