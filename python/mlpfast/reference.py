"""The lecture's equations, written plainly with NumPy.

This module is the oracle every kernel of the C++ core is tested against, and the NumPy baseline
of the benchmarks. It favours clarity over speed: one function per equation, no fusion.

Notation (samples in rows, row-major weights, as in the lecture)::

    forward      Z[l] = A[l-1] W[l] + b[l]          A[0] = X
                 A[l] = g(Z[l])                     hidden layers
                 A[L] = out(Z[L])                   output layer (identity, logistic, softmax, exp)
    loss         J = data_loss(Y, A[L]) + (alpha / 2) * sum_l ||W[l]||^2 / m
    backward     dZ[L] = A[L] - Y                   canonical output/loss pairs (x sample weight)
                 dZ[l] = (dZ[l+1] W[l+1]^T) * g'(Z[l])
                 dW[l] = (A[l-1]^T dZ[l] + alpha W[l]) / m
                 db[l] = sum(dZ[l], axis=0) / m

m is the number of samples in the batch, or the sum of the sample weights when they are given:
exactly scikit-learn's `_backprop`, so that results can be compared with
`sklearn.neural_network` step by step.

The parameters of a network live in ONE flat buffer, in scikit-learn's packing order::

    [W[1], W[2], ..., W[L], b[1], b[2], ..., b[L], s[1], ..., s[L-1]]

where W[l] has shape (layer_units[l-1], layer_units[l]) row-major, and s[l] are PReLU's learned
slopes (one per unit of each hidden layer; present only for activation="prelu").
Optimizer state is flat too: SGD keeps one velocity buffer, Adam its first and second moments
([m, v], each the size of the parameters).

matmul_precision="bfloat16" (forward, loss_grad, train_epoch): every matrix product rounds its
operands to bfloat16 first (round_bf16) and is computed in float32, as the core's bf16 GEMM.
"""

import functools

import numpy as np
from scipy.special import expit, xlogy

__all__ = [
    "ACTIVATIONS",
    "HIDDEN_ACTIVATIONS",
    "OUTPUT_ACTIVATIONS",
    "SOLVERS",
    "LEAKY_RELU_SLOPE",
    "PRELU_INIT_SLOPE",
    "n_params",
    "unpack",
    "MATMUL_PRECISIONS",
    "round_bf16",
    "matmul",
    "forward_pass",
    "forward",
    "data_loss",
    "loss_grad",
    "sgd_update",
    "adam_update",
    "opt_state_size",
    "train_epoch",
]

LEAKY_RELU_SLOPE = 0.01
PRELU_INIT_SLOPE = 0.25


# --- activations: each a (g, g') pair; g' takes Z and A = g(Z) -------------------------------


def _softplus(z):
    return np.logaddexp(0, z)


ACTIVATIONS = {
    "identity": (lambda z: z, lambda z, a: np.ones_like(z)),
    "logistic": (expit, lambda z, a: a * (1 - a)),
    "tanh": (np.tanh, lambda z, a: 1 - a**2),
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
    "leaky_relu": (
        lambda z: np.where(z > 0, z, LEAKY_RELU_SLOPE * z),
        lambda z, a: np.where(z > 0, 1, LEAKY_RELU_SLOPE).astype(z.dtype),
    ),
    "softplus": (_softplus, lambda z, a: expit(z)),
    # prelu's slope is a parameter: see _prelu / _prelu_derivative
}

# Every hidden activation the reference implements: the (g, g') pairs above, and prelu.
HIDDEN_ACTIVATIONS = (*ACTIVATIONS, "prelu")


def _prelu(z, slope):
    return np.where(z > 0, z, slope * z)


def _prelu_derivative(z, slope):
    return np.where(z > 0, 1, slope).astype(z.dtype)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


OUTPUT_ACTIVATIONS = {
    "identity": lambda z: z,
    "logistic": expit,
    "softmax": _softmax,
    "exp": np.exp,
}


# --- the flat parameter buffer ----------------------------------------------------------------


def n_params(layer_units, activation):
    """Length of the flat parameter buffer of a network."""
    units = list(layer_units)
    n = sum(a * b for a, b in zip(units[:-1], units[1:])) + sum(units[1:])
    if activation == "prelu":
        n += sum(units[1:-1])
    return n


def unpack(params, layer_units, activation):
    """Views (coefs, intercepts, slopes) into the flat buffer; slopes is [] unless prelu."""
    units = list(layer_units)
    coefs, intercepts, slopes = [], [], []
    start = 0
    for fan_in, fan_out in zip(units[:-1], units[1:]):
        coefs.append(params[start : start + fan_in * fan_out].reshape(fan_in, fan_out))
        start += fan_in * fan_out
    for fan_out in units[1:]:
        intercepts.append(params[start : start + fan_out])
        start += fan_out
    if activation == "prelu":
        for fan_out in units[1:-1]:
            slopes.append(params[start : start + fan_out])
            start += fan_out
    if start != params.shape[0]:
        raise ValueError(
            f"params has {params.shape[0]} entries; layer_units {units} with activation "
            f"{activation!r} need {start}"
        )
    return coefs, intercepts, slopes


# --- forward ----------------------------------------------------------------------------------


# --- matrix products: matmul_precision -------------------------------------------------------

MATMUL_PRECISIONS = ("highest", "bfloat16")


def round_bf16(x):
    """float32 x rounded to bfloat16 (nearest even; subnormals to signed zero; NaN stays NaN),
    returned as float32: what VCVTNEPS2BF16 does, and the core's bf16 GEMM with it."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    r = ((u.astype(np.uint64) + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    r = np.where((u & 0x7FFFFFFF) > 0x7F800000, (u | 0x00400000) & 0xFFFF0000, r)
    r = np.where((u & 0x7F800000) == 0, u & 0x80000000, r)
    return r.astype(np.uint32).view(np.float32).reshape(np.shape(x))


def matmul(a, b, matmul_precision="highest"):
    """a @ b; with "bfloat16" the operands are rounded to bf16 first and the product is float32."""
    if matmul_precision == "highest":
        return a @ b
    if matmul_precision != "bfloat16":
        raise ValueError(f"matmul_precision must be one of {MATMUL_PRECISIONS}")
    return round_bf16(a) @ round_bf16(b)


def forward_pass(params, layer_units, activation, out_activation, X, matmul_precision="highest"):
    """Forward propagation storing every layer: returns (Z, A) with A[0] = X, Z[0] = None."""
    coefs, intercepts, slopes = unpack(params, layer_units, activation)
    L = len(coefs)
    Z, A = [None], [X]
    for layer in range(L):
        z = matmul(A[-1], coefs[layer], matmul_precision) + intercepts[layer]
        if layer == L - 1:
            a = OUTPUT_ACTIVATIONS[out_activation](z)
        elif activation == "prelu":
            a = _prelu(z, slopes[layer])
        else:
            a = ACTIVATIONS[activation][0](z)
        Z.append(z)
        A.append(a)
    return Z, A


def forward(params, layer_units, activation, out_activation, X, *, matmul_precision="highest"):
    """The network's output A[L] for the rows of X (what predict needs)."""
    return forward_pass(params, layer_units, activation, out_activation, X, matmul_precision)[1][-1]


# --- losses (scikit-learn's definitions, probabilities clipped to [eps, 1 - eps]) ---------------


def data_loss(out_activation, Y, P, sample_weight=None):
    """Loss of predictions P = A[L] against targets Y, averaged over samples (weighted)."""
    if out_activation == "identity":  # squared error, halved, mean over outputs too
        return 0.5 * np.average((Y - P) ** 2, weights=sample_weight, axis=0).mean()
    if out_activation == "exp":  # Poisson deviance (halved deviance per sample, summed outputs)
        return np.average(xlogy(Y, Y / P) - Y + P, weights=sample_weight, axis=0).sum()
    eps = np.finfo(P.dtype).eps
    P = np.clip(P, eps, 1 - eps)
    if out_activation == "logistic":  # binary cross-entropy, summed over outputs (multilabel)
        per_sample = -(xlogy(Y, P) + xlogy(1 - Y, 1 - P))
        return np.average(per_sample, weights=sample_weight, axis=0).sum()
    if out_activation == "softmax":  # categorical cross-entropy
        return -np.average(xlogy(Y, P), weights=sample_weight, axis=0).sum()
    raise ValueError(f"unknown output activation {out_activation!r}")


# --- back-propagation -------------------------------------------------------------------------


def loss_grad(
    params,
    layer_units,
    activation,
    out_activation,
    X,
    Y,
    sample_weight=None,
    alpha=0.0,
    *,
    matmul_precision="highest",
):
    """Loss J and its gradient dJ/dparams (flat, same layout as params) on one batch."""
    coefs, intercepts, slopes = unpack(params, layer_units, activation)
    L = len(coefs)
    m = X.shape[0] if sample_weight is None else sample_weight.sum()
    Z, A = forward_pass(params, layer_units, activation, out_activation, X, matmul_precision)
    mm = functools.partial(matmul, matmul_precision=matmul_precision)

    loss = data_loss(out_activation, Y, A[L], sample_weight)
    loss += 0.5 * alpha * sum(np.dot(W.ravel(), W.ravel()) for W in coefs) / m

    grad = np.zeros_like(params)
    dcoefs, dintercepts, dslopes = unpack(grad, layer_units, activation)

    dZ = A[L] - Y  # canonical link: d loss / d Z[L]
    if sample_weight is not None:
        dZ = dZ * sample_weight[:, None]
    for layer in range(L - 1, -1, -1):  # layer holds W[layer+1] in the lecture's numbering
        dcoefs[layer][...] = (mm(A[layer].T, dZ) + alpha * coefs[layer]) / m
        dintercepts[layer][...] = dZ.sum(axis=0) / m
        if layer == 0:
            break
        dA = mm(dZ, coefs[layer].T)
        z, a = Z[layer], A[layer]
        if activation == "prelu":
            dslopes[layer - 1][...] = (dA * np.minimum(z, 0)).sum(axis=0) / m
            dZ = dA * _prelu_derivative(z, slopes[layer - 1])
        else:
            dZ = dA * ACTIVATIONS[activation][1](z, a)
    return loss, grad


# --- optimizers (scikit-learn's update formulas) ----------------------------------------------


# The solvers train_epoch implements, each with the number of parameter-sized buffers in its
# flat state: SGD's velocity; Adam's first and second moments. (lbfgs is the estimators' own:
# scipy's L-BFGS-B on loss_grad.)
SOLVERS = {"sgd": 1, "adam": 2}


def opt_state_size(solver, n):
    """Length of the flat optimizer state for n parameters."""
    return SOLVERS[solver] * n


def sgd_update(params, grad, velocity, learning_rate, momentum=0.0, nesterov=False):
    """v <- momentum v - lr g;  params += v  (Nesterov: params += momentum v - lr g). In place."""
    velocity *= momentum
    velocity -= learning_rate * grad
    if nesterov:
        params += momentum * velocity - learning_rate * grad
    else:
        params += velocity


def adam_update(params, grad, m, v, t, learning_rate_init, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """One Adam step (Kingma & Ba 2015), bias correction folded into the step size as
    scikit-learn does, eps outside the square root. In place; returns the new step count t."""
    t += 1
    m *= beta_1
    m += (1 - beta_1) * grad
    v *= beta_2
    v += (1 - beta_2) * grad**2
    lr = learning_rate_init * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    params -= lr * m / (np.sqrt(v) + epsilon)
    return t


# --- one epoch --------------------------------------------------------------------------------


def train_epoch(
    params,
    opt_state,
    layer_units,
    activation,
    out_activation,
    X,
    Y,
    sample_weight,
    order,
    batch_size,
    *,
    solver="adam",
    alpha=0.0,
    learning_rate=1e-3,
    momentum=0.9,
    nesterov=True,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    t=0,
    grad_norms=None,
    matmul_precision="highest",
):
    """One epoch of mini-batch gradient descent, in place on params and opt_state.

    The batches are order[0:batch_size], order[batch_size:2*batch_size], ... (the last may be
    shorter). For "sgd", learning_rate is the current rate; for "adam" it is learning_rate_init
    and t counts the Adam steps taken so far. Returns (loss, t): loss is the mean over the
    epoch's samples of the batch losses weighted by batch length (scikit-learn's loss_), t the
    updated step count.

    grad_norms: None, or a float64 array of one entry per weight layer, set to the record of
    the epoch's gradients: for each layer l, the mean over the batches, weighted by batch length
    as the loss, of the Frobenius norm of the data loss's gradient with respect to W_l (the L2
    penalty's term excluded), at the weights the batch started from.
    """
    n = len(order)
    if grad_norms is not None:
        grad_norms[...] = 0.0
    if solver == "adam":
        half = opt_state.shape[0] // 2
        m_state, v_state = opt_state[:half], opt_state[half:]
    accumulated = 0.0
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        sw = None if sample_weight is None else sample_weight[idx]
        loss, grad = loss_grad(
            params,
            layer_units,
            activation,
            out_activation,
            X[idx],
            Y[idx],
            sw,
            alpha,
            matmul_precision=matmul_precision,
        )
        accumulated += loss * len(idx)
        if grad_norms is not None:  # the same gradient without the L2 term
            data_grad = loss_grad(
                params, layer_units, activation, out_activation, X[idx], Y[idx], sw, 0.0
            )[1]
            coefs = unpack(data_grad, layer_units, activation)[0]
            grad_norms += len(idx) * np.array([np.linalg.norm(c) for c in coefs])
        if solver == "sgd":
            sgd_update(params, grad, opt_state, learning_rate, momentum, nesterov)
        elif solver == "adam":
            t = adam_update(
                params, grad, m_state, v_state, t, learning_rate, beta_1, beta_2, epsilon
            )
        else:
            raise ValueError(f"unknown solver {solver!r}")
    if grad_norms is not None:
        grad_norms /= n
    return accumulated / n, t
