"""The full back-propagated gradient of the C++ core against central finite differences of its
own loss (float64): networks of 0, 1, 2 and 3 hidden layers, every hidden activation (PReLU's
slopes included), every output activation / loss, with and without sample weights and L2.

What the core returns is scikit-learn's gradient: dJ/dparams of
    J = c * data_loss + alpha / (2 m) * sum ||W||^2,
with c = n_outputs for the squared error (its loss is a mean over outputs, its gradient p - y is
not) and c = 1 for the other losses. Softmax targets are rows of the simplex, the precondition
of dZ = p - y."""

import numpy as np
import pytest

import mlpfast._core as core
from mlpfast import reference as ref

from core_helpers import HIDDEN, OUTPUTS, random_problem

DEPTHS = {0: [4, 3], 1: [4, 5, 3], 2: [3, 5, 4, 3], 3: [3, 4, 5, 4, 2]}


def objective(params, units, activation, out_activation, X, Y, sw, alpha):
    """The function whose exact gradient the core's loss_grad returns (see module doc)."""
    loss_penalised, _ = core.loss_grad(params, units, activation, out_activation, X, Y, sw, alpha)
    if out_activation != "identity":
        return loss_penalised
    data, _ = core.loss_grad(params, units, activation, out_activation, X, Y, sw, 0.0)
    return units[-1] * data + (loss_penalised - data)


def finite_difference_grad(f, params, *args, h=1e-6):
    """Central differences of f(params, *args) in each entry of params."""
    grad = np.empty_like(params)
    for i in range(params.size):
        old = params[i]
        params[i] = old + h
        up = f(params, *args)
        params[i] = old - h
        down = f(params, *args)
        params[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


# with no hidden layer the hidden activation plays no part: one case per output there
CASES = [
    (depth, activation, out_activation)
    for depth in sorted(DEPTHS)
    for activation in (HIDDEN if depth else ["identity"])
    for out_activation in OUTPUTS
]


@pytest.mark.parametrize("depth, activation, out_activation", CASES)
def test_gradient_matches_finite_differences(depth, activation, out_activation):
    units = DEPTHS[depth]
    seed = 1000 * depth + 10 * HIDDEN.index(activation) + OUTPUTS.index(out_activation)
    rng = np.random.default_rng(seed)
    for weights, alpha in ((False, 0.0), (True, 0.7)):
        params, X, Y, sw = random_problem(
            rng, units, activation, out_activation, 9, np.float64, weights
        )
        X *= 1.5
        _, grad = core.loss_grad(params, units, activation, out_activation, X, Y, sw, alpha)
        args = (units, activation, out_activation, X, Y, sw, alpha)
        fd = finite_difference_grad(objective, params.copy(), *args)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)
        assert np.abs(grad).max() > 1e-3  # a non-trivial gradient was checked


def test_prelu_slopes_have_their_own_gradient():
    # The slopes sit after the biases in the flat buffer; their gradient is
    # sum(dA * min(Z, 0)) / m (He et al. 2015, eq. 4), without the L2 term.
    rng = np.random.default_rng(5)
    units = [3, 6, 2]
    params, X, Y, _ = random_problem(rng, units, "prelu", "identity", 12, np.float64)
    X *= 2
    _, grad = core.loss_grad(params, units, "prelu", "identity", X, Y, None, 10.0)
    _, grad0 = core.loss_grad(params, units, "prelu", "identity", X, Y, None, 0.0)
    n_slopes = units[1]
    np.testing.assert_allclose(grad[-n_slopes:], grad0[-n_slopes:], rtol=1e-14)
    assert np.abs(grad0[-n_slopes:]).max() > 1e-3
    _, grad_r = ref.loss_grad(params, units, "prelu", "identity", X, Y, None, 0.0)
    np.testing.assert_allclose(grad0, grad_r, rtol=1e-10, atol=1e-13)
