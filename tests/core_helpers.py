"""Shared helpers of the tests/test_core_*.py files: random networks, data and targets that
suit each output activation, and the tolerances a dtype allows against mlpfast.reference."""

import numpy as np

import mlpfast._core as core
from mlpfast import reference as ref

# What the core implements, by its own account (test_core_activations_losses.py checks that
# mlpfast.reference names the same sets).
HIDDEN = core.ACTIVATIONS
OUTPUTS = core.OUTPUT_ACTIVATIONS
SOLVERS = core.SOLVERS
DTYPES = [np.float32, np.float64]

# Tolerances against the reference: the two compute the same formulas in a different order
# (fused loops, FMA, GEMM blocking), so they agree to a few ulps of the dtype, scaled by the
# depth of the computation.
RTOL = {np.float32: 2e-4, np.float64: 1e-10}
ATOL = {np.float32: 2e-5, np.float64: 1e-12}


def tol(dtype):
    dtype = np.dtype(dtype).type
    return dict(rtol=RTOL[dtype], atol=ATOL[dtype])


def random_params(rng, units, activation, dtype, scale=0.5):
    """Glorot-like random weights and biases; PReLU slopes drawn around their 0.25 init."""
    n = ref.n_params(units, activation)
    params = np.empty(n, dtype=dtype)
    coefs, intercepts, slopes = ref.unpack(params, units, activation)
    for W in coefs:
        W[...] = rng.standard_normal(W.shape) * scale * np.sqrt(2.0 / sum(W.shape))
    for b in intercepts:
        b[...] = rng.standard_normal(b.shape) * 0.1
    for s in slopes:
        s[...] = 0.25 + 0.1 * rng.standard_normal(s.shape)
    return params


def random_targets(rng, out_activation, n, n_out, dtype):
    """Targets in each loss's domain: real for squared error, [0, 1] for binary
    cross-entropy, rows on the simplex (one-hot here) for softmax, counts for Poisson."""
    if out_activation == "identity":
        Y = rng.standard_normal((n, n_out))
    elif out_activation == "logistic":
        Y = (rng.random((n, n_out)) < 0.5).astype(float)
    elif out_activation == "softmax":
        Y = np.eye(n_out)[rng.integers(0, n_out, n)]
    elif out_activation == "exp":
        Y = rng.poisson(1.5, (n, n_out)).astype(float)
    else:
        raise ValueError(out_activation)
    return Y.astype(dtype)


def random_problem(rng, units, activation, out_activation, n, dtype, weights=False):
    params = random_params(rng, units, activation, dtype)
    X = rng.standard_normal((n, units[0])).astype(dtype)
    Y = random_targets(rng, out_activation, n, units[-1], dtype)
    sw = (rng.random(n) * 2 + 0.1).astype(dtype) if weights else None
    return params, X, Y, sw
