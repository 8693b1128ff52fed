"""Hostile input to every _core entry point (issue 9, item 5): any dtype and byte order, strides
(negative, zero, non-contiguous, Fortran), misaligned and read-only buffers, overlapping
buffers, sizes 0 / 1 / large-but-cheap, NaN and infinity. Each call must either give the
reference's answer (NumPy for gemm, mlpfast.reference for the training core), computed on the
values that were actually passed, or raise TypeError / ValueError; a call whose inputs are
valid (native float32 or float64 throughout, matching shapes, finite where the core checks
finiteness, writeable in-place buffers) must not raise.

The properties run in-process. What crashed before issue 9's fixes is drawn too (the
subprocess tests of test_core_crashes.py pin each case down): layer_units entries whose
__index__ raises (their own exception propagates) or that are >= 2**63, hyper-parameters outside
their domain (scikit-learn's _parameter_constraints, finite in the training dtype; t such that
the epoch's steps fit int64), and set_isa names with an embedded NUL.
The examples are derandomised (a fixed, reproducible set per run) and bounded: about 20 s in
all on a 2-core machine.
"""

from contextlib import contextmanager
from functools import partial

import numpy as np
import pytest
from scipy.sparse import csr_matrix

import mlpfast._core as core
from mlpfast import reference as ref

from core_helpers import random_targets

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

NATIVE = ("float32", "float64")
# mostly the two legal dtypes; every other kind and the byte-swapped floats now and then
DTYPES = st.sampled_from(
    NATIVE * 6 + (">f4", ">f8", "<f2", "int64", "int32", "uint8", "complex128", "bool", "object")
)
LAYOUTS = st.sampled_from(
    ["C"] * 4
    + ["F", "reversed", "strided", "misaligned", "readonly", "zero_stride", "broadcast"]
    + ["subclass", "extra_axis", "list"]
)
SIZES = st.sampled_from([0, 1, 1, 2, 3, 5, 8, 17, 33])
# every level this CPU runs: each call of a property runs at one of them
LEVELS = st.sampled_from(core.available_isas())


@contextmanager
def at_isa(level):
    before = core.isa()
    core.set_isa(level)
    try:
        yield
    finally:
        core.set_isa(before)


class Sub(np.ndarray):
    """An ndarray subclass: accepted like an ndarray."""


def materialise(values, dtype, layout):
    """`values` (float64) as an array of `dtype` laid out as `layout`. zero_stride repeats the
    first row, broadcast the first column (np.broadcast_to; the values change, the oracle reads
    what was passed); extra_axis appends an axis of length 1 (a wrong shape), list is a nested
    Python list (not an array: a TypeError)."""
    a = np.array(values, dtype=dtype)
    if layout == "C" or a.ndim == 0:
        return a
    if layout == "broadcast":
        return np.broadcast_to(a[..., :1], a.shape) if a.shape[-1] else a
    if layout == "subclass":
        return a.view(Sub)
    if layout == "extra_axis":
        return a[..., None]
    if layout == "list":
        return a.tolist()
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "reversed":  # negative strides on every axis, same values
        flipped = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])
        return flipped[(slice(None, None, -1),) * a.ndim]
    if layout == "strided":  # every other element of a larger buffer, along every axis
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        view = big[(slice(None, None, 2),) * a.ndim]
        view[...] = a
        return view
    if layout == "misaligned":
        if a.dtype.itemsize == 1 or a.dtype.hasobject:
            return a
        buf = bytearray(a.nbytes + 1)
        m = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        m[...] = a
        return m
    if layout == "readonly":
        a.setflags(write=False)
        return a
    if layout == "zero_stride":
        if a.shape[0] == 0:
            return a
        return np.lib.stride_tricks.as_strided(
            a[:1], shape=a.shape, strides=(0,) + a.strides[1:], writeable=False
        )
    raise ValueError(layout)


def is_native_float(x, dtype=None, shape=None):
    return (
        isinstance(x, np.ndarray)
        and (shape is None or x.shape == shape)
        and x.dtype.isnative
        and x.dtype.name in NATIVE
        and (dtype is None or x.dtype == dtype)
    )


def as_dtype(x, dtype):
    """What the reference gets: the values passed, in the call's dtype (None stays None)."""
    return None if x is None else np.array(x, dtype=dtype)


@st.composite
def hostile(draw, shape, values=None, nan=True, prefer=None, exotic=True):
    """An array of `shape`: random values (or `values`), sometimes one NaN/inf, any dtype
    (mostly `prefer` when given) and layout (not extra_axis nor list unless `exotic`)."""
    size = int(np.prod(shape))
    seed = draw(st.integers(0, 2**31 - 1))
    v = np.random.default_rng(seed).standard_normal(size).reshape(shape) * 0.5
    if values is not None:
        v = values
    if nan and size and draw(st.integers(0, 9)) == 0:
        v = v.copy()
        v.flat[draw(st.integers(0, size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    dtype = draw(DTYPES)
    if prefer is not None and draw(st.integers(0, 4)) > 0:
        dtype = prefer
    layout = draw(LAYOUTS)
    if not exotic and layout in ("extra_axis", "list"):
        layout = "C"
    return materialise(v, dtype, layout)


def call_or_reject(fn, valid):
    """Runs fn(); returns its result, or None if it raised TypeError/ValueError on an input that
    is not valid. Any other exception propagates (a failure)."""
    event("valid input" if valid else "invalid input")
    try:
        result = fn()
    except (TypeError, ValueError) as e:
        if valid:
            raise
        event(f"rejected: {type(e).__name__}")
        return None, True
    event("answered")
    return result, False


# --- gemm --------------------------------------------------------------------------------------


def gemm_expected(A, B, alpha, beta, C, bias, act):
    """BLAS conventions: alpha == 0 reads neither A nor B, beta == 0 does not read C.
    Returns (expected, allowed error), float64."""
    m, n = A.shape[0], B.shape[1]
    z, scale = np.zeros((m, n)), np.zeros((m, n))
    if alpha != 0:
        with np.errstate(all="ignore"):
            z += alpha * (A @ B)
            scale += abs(alpha) * (np.abs(A) @ np.abs(B))
    if beta != 0:
        z += beta * C
        scale += abs(beta) * np.abs(C)
    if bias is not None:
        z += bias
        scale += np.abs(bias)
    eps = np.finfo(np.float32).eps
    allowed = 4 * eps * (A.shape[1] + 2) * scale + 1e-30
    if act is not None:
        with np.errstate(all="ignore"):
            z = ref.ACTIVATIONS[act][0](z)
        allowed = allowed + 4 * eps * np.abs(z)
    return z, allowed


@st.composite
def gemm_case(draw):
    m, k, n = draw(SIZES), draw(SIZES), draw(SIZES)
    if draw(st.integers(0, 15)) == 0:  # large but cheap: one long dimension
        which = draw(st.integers(0, 2))
        m, k, n = [4097 if i == which else s for i, s in enumerate((m, k, n))]
    ta, tb = draw(st.booleans()), draw(st.booleans())
    a = draw(hostile((k, m) if ta else (m, k)))
    adt = np.asarray(a).dtype
    b = draw(hostile((n, k) if tb else (k, n), prefer=adt))
    bias = draw(st.one_of(st.none(), hostile((n,), prefer=adt)))
    act = draw(st.sampled_from([None] + [x for x in core.ACTIVATIONS if x != "prelu"]))
    alpha = draw(st.sampled_from([1.0, 0.0, -0.5, 3.0]))
    beta = draw(st.sampled_from([0.0, 0.0, 1.0, -2.0]))
    out_kind = draw(st.sampled_from(["none", "none", "fresh", "hostile", "aliases_a"]))
    if beta != 0 and out_kind == "none":
        out_kind = "fresh"
    if out_kind == "none":
        out = None
    elif out_kind == "fresh":
        out = (
            np.random.default_rng(0)
            .standard_normal((m, n))
            .astype(adt if is_native_float(a) else np.float64)
        )
    elif out_kind == "hostile":
        out = draw(hostile((m, n), prefer=adt))
    elif isinstance(a, np.ndarray) and a.size == m * n and a.flags.c_contiguous:
        out = a.reshape(m, n)  # out shares memory with a
    else:
        out = a
    return a, b, ta, tb, bias, act, out, alpha, beta, (m, k, n)


@SETTINGS
@given(gemm_case(), LEVELS)
def test_gemm_hostile(case, level):
    a, b, ta, tb, bias, act, out, alpha, beta, (m, k, n) = case
    dt = np.asarray(a).dtype
    out_before = None if out is None else np.array(out, dtype=np.float64)
    valid = (
        is_native_float(a, shape=(k, m) if ta else (m, k))
        and is_native_float(b, dt, shape=(n, k) if tb else (k, n))
        and (bias is None or is_native_float(bias, dt, shape=(n,)))
        and (
            out is None
            or (
                is_native_float(out, dt, shape=(m, n))
                and out.flags.c_contiguous
                and out.flags.writeable
                and out.flags.aligned
                and not np.may_share_memory(out, a)
                and not np.may_share_memory(out, b)
                and (bias is None or not np.may_share_memory(out, bias))
            )
        )
        and (beta == 0 or out is not None)
    )
    with at_isa(level):
        result, rejected = call_or_reject(
            lambda: core.gemm(
                a,
                b,
                trans_a=ta,
                trans_b=tb,
                bias=bias,
                activation=act,
                out=out,
                alpha=alpha,
                beta=beta,
            ),
            valid,
        )
    if rejected:
        if (
            isinstance(out, np.ndarray)
            and not np.may_share_memory(out, a)
            and not np.may_share_memory(out, b)
            and out.dtype.kind == "f"
        ):
            # a rejected call writes nothing
            np.testing.assert_array_equal(np.array(out, dtype=np.float64), out_before)
        return
    assert result.dtype == dt and result.flags.c_contiguous
    A = np.array(a, dtype=np.float64)
    B = np.array(b, dtype=np.float64)
    A, B = (A.T if ta else A), (B.T if tb else B)
    expected, allowed = gemm_expected(
        A, B, alpha, beta, out_before, None if bias is None else np.array(bias, np.float64), act
    )
    got = result.astype(np.float64)
    assert got.shape == expected.shape
    finite = np.isfinite(expected)
    # non-finite entries must be the same non-finite values (NaN stays NaN, inf keeps its sign)
    np.testing.assert_array_equal(got[~finite], expected[~finite])
    err = np.abs(got[finite] - expected[finite])
    assert np.all(err <= allowed[finite]), f"gemm error {err.max()} above the bound"
    if out is not None:
        assert result is out or np.shares_memory(result, out)


# --- the training core ---------------------------------------------------------------------


@st.composite
def network(draw):
    n_hidden = draw(st.integers(0, 2))
    units = [draw(st.sampled_from([1, 2, 3, 5, 17])) for _ in range(n_hidden + 2)]
    if draw(st.integers(0, 15)) == 0:  # large but cheap: a wide input layer
        units[0] = 4097
    act = draw(st.sampled_from(core.ACTIVATIONS))
    out = draw(st.sampled_from(core.OUTPUT_ACTIVATIONS))
    dtype = draw(st.sampled_from(NATIVE))
    seed = draw(st.integers(0, 2**31 - 1))
    return units, act, out, np.dtype(dtype), np.random.default_rng(seed)


def params_for(rng, units, act):
    n = ref.n_params(units, act)
    p = rng.standard_normal(n) * 0.3
    _, _, slopes = ref.unpack(p, units, act)
    for s in slopes:
        s[...] = 0.25
    return p


def targets(rng, out, n, n_out):
    return random_targets(rng, out, n, n_out, np.float64)


def finite_array(x):
    return x.dtype.kind != "O" and np.isfinite(np.array(x, dtype=np.complex128)).all()


def draw_params_and_X(data, net, nan):
    units, act, out, dt, rng = net
    params = data.draw(
        hostile((ref.n_params(units, act),), values=params_for(rng, units, act), nan=nan, prefer=dt)
    )
    n = data.draw(SIZES)
    X = data.draw(hostile((n, units[0]), prefer=np.asarray(params).dtype))
    # params and X are both read: they may share memory (X a view of params)
    if data.draw(st.integers(0, 9)) == 0 and isinstance(params, np.ndarray):
        X = params[: (params.size // units[0]) * units[0]].reshape(-1, units[0])
        n = X.shape[0]
    return params, X, n


@SETTINGS
@given(network(), st.data())
def test_forward_hostile(net, data):
    units, act, out, dt, rng = net
    # forward does not check params for NaN: the NaN must reach the output as in the reference
    params, X, n = draw_params_and_X(data, net, nan=True)
    pdt = np.asarray(params).dtype
    valid = (
        is_native_float(params, shape=(ref.n_params(units, act),))
        and is_native_float(X, pdt, shape=(n, units[0]))
        and finite_array(X)
    )
    with at_isa(data.draw(LEVELS)):
        result, rejected = call_or_reject(lambda: core.forward(params, units, act, out, X), valid)
    if rejected:
        return
    P = np.array(params, dtype=params.dtype)
    with np.errstate(all="ignore"):
        expected = ref.forward(P, units, act, out, np.array(X, dtype=params.dtype))
    assert result.dtype == params.dtype and result.shape == (n, units[-1])
    np.testing.assert_allclose(result, expected, equal_nan=True, **loose(params.dtype, 1))


class Broken(Exception):
    pass


class Index:
    """An integer through __index__ only; value None: __index__ raises Broken."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        if self.value is None:
            raise Broken("__index__ failed")
        return self.value

    def __repr__(self):
        return f"Index({self.value})"


# mostly small sizes (a valid call), else an int out of range, a non-int, or an __index__ object
LAYER_SIZE = st.sampled_from(
    [1, 2, 3] * 12
    + [0, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63), 2**100]
    + [True, 2.0, "2", None]
    + [Index(v) for v in (None, 2, 2**31, 2**63, -1)]
)


@SETTINGS
@given(st.lists(LAYER_SIZE, max_size=4), st.sampled_from(["forward", "loss_grad", "train_epoch"]))
def test_layer_units_hostile(units, call):
    def size(u):
        return u.value if isinstance(u, Index) else u

    small = len(units) >= 2 and all(
        type(u) is int or (isinstance(u, Index) and u.value is not None) for u in units
    )
    small = small and all(1 <= size(u) <= 3 for u in units)
    plain = [size(u) for u in units] if small else [1, 1]
    rng = np.random.default_rng(0)
    p = params_for(rng, plain, "tanh") if small else np.zeros(5)
    X = rng.standard_normal((4, plain[0]))
    Y = np.ones((4, plain[-1]))
    calls = {
        "forward": lambda engine, u: engine.forward(p.copy(), u, "tanh", "identity", X),
        "loss_grad": lambda engine, u: engine.loss_grad(p.copy(), u, "tanh", "identity", X, Y)[0],
        "train_epoch": lambda engine, u: engine.train_epoch(
            p.copy(), np.zeros(2 * p.size), u, "tanh", "identity", X, Y, None, np.arange(4), 2
        )[0],
    }
    event("valid input" if small else "invalid input")
    try:
        got = calls[call](core, units)
    except (TypeError, ValueError, Broken) as e:
        assert not small, f"a valid layer_units {units} raised {e!r}"
        event(f"rejected: {type(e).__name__}")
        return
    assert small, f"layer_units {units} accepted"
    expected = calls[call](ref, plain)  # the reference takes plain ints
    np.testing.assert_allclose(got, expected, **loose(np.dtype(np.float64), 1))


def loose(dtype, factor):
    return dict(
        rtol=(2e-4 if dtype == np.float32 else 1e-10) * factor,
        atol=(2e-5 if dtype == np.float32 else 1e-12) * factor,
    )


@SETTINGS
@given(network(), st.data())
def test_loss_grad_hostile(net, data):
    units, act, out, dt, rng = net
    params, X, n = draw_params_and_X(data, net, nan=False)
    Y = data.draw(hostile((n, units[-1]), values=targets(rng, out, n, units[-1]), prefer=dt))
    sw = data.draw(st.one_of(st.none(), hostile((n,), values=rng.random(n) + 0.1, prefer=dt)))
    alpha = data.draw(st.sampled_from([0.0, 1e-4, 1.0]))
    dtype = np.asarray(params).dtype
    valid = (
        is_native_float(params, shape=(ref.n_params(units, act),))
        and n > 0
        and is_native_float(X, dtype, shape=(n, units[0]))
        and is_native_float(Y, dtype, shape=(n, units[-1]))
        and (sw is None or is_native_float(sw, dtype, shape=(n,)))
        and all(finite_array(x) for x in (X, Y, sw) if x is not None)
        and (sw is None or np.array(sw, np.float64).sum() > 0)
    )
    with at_isa(data.draw(LEVELS)):
        result, rejected = call_or_reject(
            lambda: core.loss_grad(params, units, act, out, X, Y, sw, alpha), valid
        )
    if rejected:
        return
    loss, grad = result
    conv = partial(as_dtype, dtype=dtype)
    with np.errstate(all="ignore"):
        loss_r, grad_r = ref.loss_grad(
            conv(params), units, act, out, conv(X), conv(Y), conv(sw), alpha
        )
    assert grad.dtype == dtype and grad.shape == (ref.n_params(units, act),)
    np.testing.assert_allclose(loss, loss_r, **loose(dtype, 10))
    np.testing.assert_allclose(grad, grad_r, **loose(dtype, 10))


@st.composite
def order_case(draw, n):
    kind = draw(
        st.sampled_from(
            ["perm"] * 12
            + ["repeat", "out_of_range", "negative", "float", "int32", "uint64", "list", "empty"]
        )
    )
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    length = max(n, 1)
    o = rng.permutation(n) if n else np.zeros(0, np.int64)
    if kind == "repeat" and n:
        o = rng.integers(0, n, length)
    elif kind == "out_of_range":
        o = np.append(o, n + draw(st.sampled_from([0, 1, 2**40])))
    elif kind == "negative":
        o = np.append(o, -1)
    elif kind == "float":
        o = o.astype(np.float64)
    elif kind == "int32":
        o = o.astype(np.int32)
    elif kind == "uint64":
        o = o.astype(np.uint64)
    elif kind == "empty":
        o = np.zeros(0, np.int64)
    if kind == "list":
        return [int(i) for i in o]
    layout = draw(st.sampled_from(["C", "reversed", "strided", "misaligned", "readonly"]))
    return materialise(o, o.dtype, layout)


def hyper_in_domain(h, dtype, n_batches):
    """scikit-learn's _parameter_constraints, the scales finite (and epsilon, learning_rate
    positive) in the training dtype, and t + the epoch's steps within int64."""
    big = float(np.finfo(dtype).max)

    def in_dtype(v):
        return abs(v) <= big  # False for NaN

    return (
        in_dtype(h["alpha"])
        and h["alpha"] >= 0
        and in_dtype(h["learning_rate"])
        and dtype.type(h["learning_rate"]) > 0
        and 0 <= h["momentum"] <= 1
        and 0 <= h["beta_1"] < 1
        and 0 <= h["beta_2"] < 1
        and in_dtype(h["epsilon"])
        and dtype.type(h["epsilon"]) > 0
        and h["t"] + n_batches <= 2**63 - 1
    )


@settings(SETTINGS, max_examples=150)  # most draws are invalid somewhere: more of them
@given(network(), st.data())
def test_train_epoch_hostile(net, data):
    units, act, out, dt, rng = net
    solver = data.draw(st.sampled_from(core.SOLVERS))
    n = data.draw(SIZES)
    n_p = ref.n_params(units, act)
    # params and opt_state are written in place: mostly plain, sometimes hostile
    plain = data.draw(st.integers(0, 7)) > 0
    p0 = params_for(rng, units, act)
    params = p0.astype(dt) if plain else data.draw(hostile((n_p,), values=p0, nan=False, prefer=dt))
    dtype = np.asarray(params).dtype
    state_len = ref.opt_state_size(solver, n_p)
    state_kind = data.draw(st.sampled_from(["zeros"] * 3 + ["hostile", "overlaps_params"]))
    if state_kind == "zeros":
        state = np.zeros(state_len, dtype)
    elif state_kind == "hostile":
        state = data.draw(
            hostile((state_len,), values=np.zeros(state_len), nan=False, prefer=dtype)
        )
    else:
        big = np.zeros(n_p + state_len, dtype)
        big[:n_p] = np.array(params, dtype=np.float64)
        params, state = big[:n_p], big[n_p - 1 : n_p - 1 + state_len]
    X = data.draw(hostile((n, units[0]), prefer=dtype))
    if data.draw(st.integers(0, 9)) == 0 and isinstance(params, np.ndarray):
        # X is read while params is written: a view of params must be refused
        X = params[: min(n * units[0], params.size) // units[0] * units[0]].reshape(-1, units[0])
        n = X.shape[0]
    Y = data.draw(hostile((n, units[-1]), values=targets(rng, out, n, units[-1]), prefer=dtype))
    sw = data.draw(st.one_of(st.none(), hostile((n,), values=rng.random(n) + 0.1, prefer=dtype)))
    order = data.draw(order_case(n))
    batch_size = data.draw(st.sampled_from([1, 2, 3, 7, 64, 2**40] * 2 + [0, -1]))
    # mostly inside the hyper-parameters' domains, now and then on an edge or outside
    hyper = dict(
        solver=solver,
        alpha=data.draw(st.sampled_from([0.0, 1e-4] * 6 + [-1e-3, 1e39, np.nan])),
        learning_rate=data.draw(st.sampled_from([1e-3, 0.1] * 6 + [0.0, -0.1, 1e39, np.inf])),
        momentum=data.draw(st.sampled_from([0.0, 0.9] * 6 + [1.0, 1.5, -0.1])),
        nesterov=data.draw(st.booleans()),
        beta_1=data.draw(st.sampled_from([0.9] * 12 + [0.0, 1.0, -0.1])),
        beta_2=data.draw(st.sampled_from([0.999] * 12 + [0.0, 1.0, 1.5])),
        epsilon=data.draw(st.sampled_from([1e-8] * 12 + [0.0, -1e-8, 1e-300])),
        t=data.draw(st.sampled_from([0, 5] * 6 + [2**62, 2**63 - 1])),
    )
    order_arr = np.asarray(order)
    in_place_ok = all(
        is_native_float(x, dtype, shape=(size,))
        and x.flags.c_contiguous
        and x.flags.aligned
        and x.flags.writeable
        for x, size in ((params, n_p), (state, state_len))
    )
    read = [x for x in (X, Y, sw) if x is not None]
    valid = (
        in_place_ok
        and not np.may_share_memory(params, state)
        and not any(np.may_share_memory(w, r) for w in (params, state) for r in read)
        and n > 0
        and is_native_float(X, dtype, shape=(n, units[0]))
        and is_native_float(Y, dtype, shape=(n, units[-1]))
        and (sw is None or is_native_float(sw, dtype, shape=(n,)))
        and all(finite_array(x) for x in read)
        and order_arr.dtype.kind in "iu"
        and order_arr.size > 0
        and order_arr.min() >= 0
        and order_arr.max() < n
        and batch_size >= 1
    )
    if valid:
        valid = hyper_in_domain(hyper, dtype, -(-order_arr.size // batch_size))
    if valid and sw is not None:  # every batch needs a positive total weight
        w = np.array(sw, np.float64)[order_arr.astype(np.int64)]
        valid = all(w[i : i + batch_size].sum() > 0 for i in range(0, len(w), batch_size))
    before = (np.array(params, np.float64), np.array(state, np.float64))
    with at_isa(data.draw(LEVELS)):
        result, rejected = call_or_reject(
            lambda: core.train_epoch(
                params, state, units, act, out, X, Y, sw, order, batch_size, **hyper
            ),
            valid,
        )
    if rejected:  # nothing written
        np.testing.assert_array_equal(np.array(params, np.float64), before[0])
        np.testing.assert_array_equal(np.array(state, np.float64), before[1])
        return
    conv = partial(as_dtype, dtype=dtype)
    p_ref, s_ref = before[0].astype(dtype), before[1].astype(dtype)
    with np.errstate(all="ignore"):
        loss_r, t_r = ref.train_epoch(
            p_ref,
            s_ref,
            units,
            act,
            out,
            conv(X),
            conv(Y),
            conv(sw),
            order_arr.astype(np.int64),
            min(batch_size, 2**31),
            **hyper,
        )
    loss, t = result
    assert t == t_r
    np.testing.assert_allclose(loss, loss_r, **loose(dtype, 100))
    np.testing.assert_allclose(params, p_ref, **loose(dtype, 100))
    np.testing.assert_allclose(state, s_ref, **loose(dtype, 100))


# --- the predict fast path -------------------------------------------------------------------


@st.composite
def estimator_state(draw, net):
    """An estimator's __dict__ as predict_forward reads it: mostly a fitted model's (coefs_ and
    intercepts_ views into _params), sometimes with one thing off (feature names, another
    width, weights not views, a missing key, a value of the wrong type)."""
    units, act, out, dt, rng = net
    values = params_for(rng, units, act)
    params = draw(
        hostile((ref.n_params(units, act),), values=values, nan=True, prefer=dt, exotic=False)
    )
    coefs, intercepts, slopes = ref.unpack(params, units, act)
    state = dict(
        _params=params,
        _layer_units=list(units),
        activation=act,
        out_activation_=out,
        n_features_in_=units[0],
        coefs_=coefs,
        intercepts_=intercepts,
    )
    if slopes:
        state["prelu_slopes_"] = slopes
    flaw = draw(st.sampled_from([None] * 6 + ["names", "width", "copy", "missing", "type"]))
    if flaw == "names":
        state["feature_names_in_"] = np.array([f"f{i}" for i in range(units[0])], dtype=object)
    elif flaw == "width":
        state["n_features_in_"] = units[0] + 1
    elif flaw == "copy":
        state["coefs_"] = [c.copy() for c in coefs]
    elif flaw == "missing":
        del state[draw(st.sampled_from(sorted(state)))]
    elif flaw == "type":
        key = draw(st.sampled_from(["activation", "_layer_units", "coefs_", "n_features_in_"]))
        state[key] = draw(st.sampled_from(["relu", [1], None, 2.0, 2**70, -(2**70)]))
    return state, flaw


@SETTINGS
@given(network(), st.data())
def test_predict_forward_hostile(net, data):
    """Answers when the estimator and X are the plain case, with forward's result in the dtype
    numpy gives X @ params (bit for bit); otherwise None, never an exception."""
    units, act, out, dt, rng = net
    state, flaw = data.draw(estimator_state(net))
    params = state.get("_params")
    n = data.draw(SIZES)
    X = data.draw(hostile((n, units[0]), prefer=dt))
    proba = data.draw(st.booleans())
    level = data.draw(LEVELS)
    with at_isa(level):
        result = core.predict_forward(state, X, proba)
    plain = (
        is_native_float(params)
        and params.flags.c_contiguous
        and params.flags.aligned
        and is_native_float(X, shape=(n, units[0]))
        and X.flags.c_contiguous
        and X.flags.aligned
        and X.shape[0] > 0
        and finite_array(X)
    )
    event("answered" if result is not None else "declined")
    if not plain or flaw in ("names", "width", "copy"):
        assert result is None
        return
    if result is None:  # declined: only for a flaw (a missing prelu_slopes_ can still answer)
        assert flaw is not None
        return
    dtype = np.float32 if X.dtype == params.dtype == np.float32 else np.float64
    with np.errstate(all="ignore"), at_isa(level):
        expected = core.forward(params.astype(dtype), units, act, out, X.astype(dtype))
    if proba and units[-1] == 1:
        expected = np.c_[1 - expected, expected]
    assert result.dtype == dtype and result.tobytes() == expected.tobytes()


# --- huge shapes --------------------------------------------------------------------------------
# Zero-stride views (np.broadcast_to) and empty arrays with a dimension of 2**59 (NumPy's
# largest for one float64 column) or 2**40: shapes that no memory could hold, made without
# allocating. A call answers when it needs only a few rows (train_epoch's order) or nothing (an
# empty result), and otherwise raises before it allocates what cannot exist: never a crash, nor
# a scan of 2**59 rows that would not end.

H = 2**59  # a copy, result or workspace of this many rows is 2**62 bytes or more
G = 2**40  # 8 TiB or more: numpy's MemoryError
UNITS = [1, 3, 1]


def big(shape, value=0.5, dtype=np.float64):
    return np.broadcast_to(np.asarray(value, dtype), shape)


def huge_params():
    return params_for(np.random.default_rng(0), UNITS, "relu")


def huge_epoch(order):
    X, Y = big((H, 1)), big((H, 1))
    return partial(
        core.train_epoch,
        huge_params(),
        np.zeros(20),
        UNITS,
        "relu",
        "identity",
        X,
        Y,
        None,
        order,
        2,
    )


# each entry makes its inputs (which must work) and returns the call (which must raise)
HUGE_REFUSED = {
    "gemm m": lambda: partial(core.gemm, big((H, 1)), np.ones((1, 2))),
    "gemm m 2**40": lambda: partial(core.gemm, big((G, 1)), np.ones((1, 2))),
    "gemm k": lambda: partial(core.gemm, big((2, H // 2)), big((H // 2, 2))),
    "gemm 2**28 x 2**28": lambda: partial(core.gemm, big((2**28, 2**28)), big((2**28, 1))),
    "gemm n transposed": lambda: partial(core.gemm, np.ones((2, 1)), big((H, 1)), trans_b=True),
    "gemm result too big": lambda: partial(core.gemm, np.empty((H, 0)), np.empty((0, 2))),
    "forward": lambda: partial(core.forward, huge_params(), UNITS, "relu", "identity", big((H, 1))),
    "forward 2**40": lambda: partial(
        core.forward, huge_params(), UNITS, "relu", "identity", big((G, 1))
    ),
    "loss_grad": lambda: partial(
        core.loss_grad,
        huge_params(),
        UNITS,
        "relu",
        "identity",
        big((H, 1)),
        big((H, 1)),
        big((H,), 1.0),
    ),
    "train_epoch order 2**40": lambda: huge_epoch(big((G,), 3, np.int64)),
    "train_epoch order 2**59": lambda: huge_epoch(big((H,), 3, np.int64)),
}


@pytest.mark.parametrize("case", sorted(HUGE_REFUSED))
def test_huge_shapes_refused(case):
    call = HUGE_REFUSED[case]()
    with pytest.raises((ValueError, MemoryError, OverflowError)):
        call()


@pytest.mark.parametrize("level", core.available_isas())
def test_huge_shapes_answered(level):
    # results with no elements: nothing to compute, whatever the other dimension
    with at_isa(level):
        assert core.gemm(np.empty((H, 0)), np.empty((0, 0))).shape == (H, 0)
        assert core.gemm(np.empty((0, H)), big((H, 0))).shape == (0, 0)
        # (the operands are not copied for an empty result)
        assert core.gemm(big((0, H // 2)), big((H // 2, 2))).shape == (0, 2)
        assert core.gemm(big((2, H // 2)), big((H // 2, 0))).shape == (2, 0)
    # train_epoch reads only the rows of order: a zero-stride X of 2**62 rows is a valid input
    rng = np.random.default_rng(1)
    x_row = rng.standard_normal(1)
    X, Y, sw = big((H, 1), x_row[0]), big((H, 1), 0.25), big((H,), 2.0)
    order = np.array([0, 5, H - 1, 2**40, 7])
    p, p_ref = huge_params(), huge_params()
    s, s_ref = np.zeros(2 * p.size), np.zeros(2 * p.size)
    with at_isa(level):
        loss, t = core.train_epoch(p, s, UNITS, "relu", "identity", X, Y, sw, order, 2)
    loss_r, t_r = ref.train_epoch(
        p_ref, s_ref, UNITS, "relu", "identity", X[order], Y[order], sw[order], np.arange(5), 2
    )
    assert t == t_r
    np.testing.assert_allclose(loss, loss_r, rtol=1e-10)
    np.testing.assert_allclose(p, p_ref, rtol=1e-10, atol=1e-12)
    # a batch_size of 2**62: one batch of order's 5 rows
    with at_isa(level):
        loss, t = core.train_epoch(p, s, UNITS, "relu", "identity", X, Y, sw, order, H, t=t)
    loss_r, t_r = ref.train_epoch(
        p_ref,
        s_ref,
        UNITS,
        "relu",
        "identity",
        X[order],
        Y[order],
        sw[order],
        np.arange(5),
        5,
        t=t_r,
    )
    assert t == t_r
    np.testing.assert_allclose(loss, loss_r, rtol=1e-10)
    np.testing.assert_allclose(p, p_ref, rtol=1e-10, atol=1e-12)
    # the predict fast path declines (not C-contiguous; no columns), scikit-learn's path decides
    p = huge_params()
    coefs, intercepts, _ = ref.unpack(p, UNITS, "relu")
    state = dict(
        _params=p,
        _layer_units=UNITS,
        activation="relu",
        out_activation_="identity",
        n_features_in_=1,
        coefs_=coefs,
        intercepts_=intercepts,
    )
    assert core.predict_forward(state, big((H, 1)), False) is None
    assert core.predict_forward(state, np.empty((H, 0)), True) is None


# --- ISA control and the informational entry points ------------------------------------------


@settings(SETTINGS, max_examples=50)
@given(
    st.one_of(
        st.text(max_size=20),
        st.sampled_from([name + "\0" for name in core.ISA_LEVELS]),
        st.sampled_from(list(core.ISA_LEVELS) + ["AVX2", " avx2", "avx2 ", "generic" * 50, ""]),
        st.none(),
        st.integers(),
        st.binary(),
    )
)
def test_set_isa_hostile(name):
    before = core.isa()
    try:
        core.set_isa(name)
    except (TypeError, ValueError):
        assert core.isa() == before  # a refused level changes nothing
        return
    finally:
        after = core.isa()
        core.set_isa(before)
    assert name in core.available_isas() and after == name


# found by test_set_isa_hostile: set_isa passed name.c_str() to the dispatcher
def test_set_isa_embedded_nul_rejected():
    before = core.isa()
    level = core.available_isas()[0]
    try:
        core.set_isa(level + "\0garbage")
    except ValueError:
        return
    finally:
        core.set_isa(before)
    raise AssertionError(f"set_isa({level + chr(0) + 'garbage'!r}) was accepted")


def test_set_bf16_kernel_hostile():
    # a refused name raises and changes nothing; every name bf16_kernels() lists is taken
    refused = ["", "AMX", " best", "amx\0", "emulated\0x", "best" * 50, "tpu", None, 3, 1.5]
    try:
        for name in refused:
            before = core.bf16_kernel()
            with pytest.raises((TypeError, ValueError)):
                core.set_bf16_kernel(name)
            assert core.bf16_kernel() == before, name
        for name in core.bf16_kernels():
            core.set_bf16_kernel(name)
            assert core.bf16_kernel() == name
    finally:
        core.set_bf16_kernel("best")


def test_informational_entry_points():
    assert core.isa() in core.available_isas()
    assert set(core.available_isas()) <= set(core.ISA_LEVELS)
    assert core.max_threads() >= 1
    assert set(core.thread_stats()) >= {"load_adaptation", "team_regions", "late", "solo"}
    assert core.bf16_kernel() in core.bf16_kernels() and core.bf16_kernels()[0] == "emulated"
    for fn in (
        core.isa,
        core.available_isas,
        core.max_threads,
        core.thread_stats,
        core.bf16_kernel,
        core.bf16_kernels,
    ):
        with pytest.raises(TypeError):
            fn(1)


PERCEPTRON_KEYS = {  # state key -> (dtype: "T" is X's, shape: "m", "n", "md", "mn")
    "coef": ("T", "md"), "intercept": ("float64", "m"), "label": ("int32", "n"),
    "sample_weight": ("T", "n"), "val_mask": ("uint8", "n"), "order": ("int32", "mn"),
    "seed": ("uint32", "m"), "positive": ("int32", "m"), "weight_pos": ("float64", "m"),
    "weight_neg": ("float64", "m"), "wscale": ("T", "m"), "sq_norm": ("T", "m"),
    "l1_norm": ("T", "m"), "u": ("float64", "m"), "q": ("T", "md"), "sumloss": ("float64", "m"),
    "objective": ("float64", "m"), "nonfinite": ("uint8", "m"),
}  # fmt: skip


@settings(SETTINGS, max_examples=120)
@given(st.data())
def test_perceptron_epoch_hostile(data):
    """Every array of the state may be hostile (dtype, layout, shape, values out of range); the
    call raises TypeError / ValueError or runs, and a run leaves each order a permutation."""
    draw = data.draw
    m, n, d = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    T = draw(st.sampled_from(NATIVE))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    sparse = draw(st.booleans())
    shapes = {"m": (m,), "n": (n,), "md": (m, d), "mn": (m, n)}
    state = {}
    for key, (dt, shape) in PERCEPTRON_KEYS.items():
        dt = T if dt == "T" else dt
        values = rng.integers(0, 2, shapes[shape]).astype(dt)
        if key == "order":
            values = np.array([rng.permutation(n) for _ in range(m)], dtype=np.int32)
        if key in ("wscale", "sample_weight", "weight_pos", "weight_neg"):
            values = np.ones(shapes[shape], dtype=dt)
        state[key] = values
    Xd = rng.standard_normal((n, d)).astype(T)
    if sparse:
        Xs = csr_matrix(Xd * (rng.random((n, d)) < 0.5))
        args = [Xs.data.astype(T), Xs.indices.astype(np.int32), Xs.indptr.astype(np.int32)]
    else:
        args = [Xd, None, None]
    must_reject = False
    active = np.arange(m, dtype=np.int64)
    victim = draw(
        st.sampled_from(["none"] * 3 + sorted(PERCEPTRON_KEYS) + ["X", "active", "x_float32"])
    )
    x_float32 = None  # X's float32 copy: for a dense float64 X only, exactly its shape
    if victim == "x_float32":
        x_float32 = materialise(Xd, draw(DTYPES), draw(LAYOUTS))
        must_reject = not (
            not sparse
            and T == "float64"
            and not isinstance(x_float32, list)
            and x_float32.dtype == np.float32
            and x_float32.shape == Xd.shape
            and x_float32.flags.c_contiguous
            and x_float32.flags.aligned
        )
    how = draw(st.sampled_from(["dtype", "layout", "shape", "value"]))
    penalty = draw(st.integers(0, 3))
    if victim == "x_float32":
        pass
    elif victim == "X" and how == "value" and sparse:  # the CSR structure out of range
        if len(args[1]):
            args[1] = args[1].copy()
            args[1][0] = draw(st.sampled_from([-1, d, 2**31 - 1]))
        else:
            args[2] = args[2].copy()
            args[2][-1] = 5
        must_reject = True
    elif victim == "active" and how == "value":
        active = np.array(draw(st.sampled_from([[0, 0], [m], [-1]])), dtype=np.int64)
        must_reject = True
    elif victim == "order" and how == "value":
        state["order"][0, 0] = draw(st.sampled_from([-1, n, 2**31 - 1]))
        must_reject = True
    elif victim != "none" and how != "value":
        target = args[0] if victim == "X" else (active if victim == "active" else state[victim])
        if how == "dtype":
            new = materialise(target.astype(np.float64), draw(DTYPES), "C")
        elif how == "layout":
            new = materialise(target.astype(np.float64), target.dtype, draw(LAYOUTS))
        else:
            new = np.zeros(tuple(s + 1 for s in target.shape), dtype=target.dtype)
        written = victim in ("coef", "intercept", "order", "wscale", "sq_norm", "l1_norm", "u",
                             "q", "sumloss", "objective", "nonfinite")  # fmt: skip
        used = victim != "q" or penalty in (1, 3)
        fine = not isinstance(new, list) and (  # (a list: not an array at all)
            new.dtype == target.dtype  # the exact dtype, native byte order
            and new.shape == target.shape
            and new.flags.c_contiguous
            and new.flags.aligned
            and (new.flags.writeable or not written)
        )
        must_reject = used and not fine
        if victim == "X":
            args[0] = new
        elif victim == "active":
            active = new
        else:
            state[victim] = new
    opts = dict(penalty=penalty, alpha=1e-3, l1_ratio=0.5, eta0=1.0, intercept_decay=1.0,
                fit_intercept=True, shuffle=draw(st.booleans()),
                n_threads=draw(st.integers(1, 3)))  # fmt: skip
    try:
        core.perceptron_epoch(args[0], args[1], args[2], state, active, x_float32=x_float32, **opts)
    except (TypeError, ValueError):
        event("rejected")
        return
    event("ran")
    assert not must_reject, (victim, how)
    for row in np.asarray(state["order"]):  # still a permutation: no index was lost
        assert sorted(row) == list(range(n))


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.integers(-(2**70), 2**70),
        st.sampled_from([0, 1, 2, 3, 2**31 - 1, 2**31, -1]),
        st.floats(allow_nan=True),
        st.text(max_size=3),
        st.none(),
    )
)
def test_set_default_threads_hostile(n):
    import joblib

    try:
        try:
            core.set_default_threads(n)
        except (TypeError, ValueError):
            assert not (type(n) is int and 1 <= n < 2**31), n
            return
        assert type(n) is int and 1 <= n < 2**31, n
        assert core.max_threads() >= 1
    finally:  # what mlpfast's import set
        core.set_default_threads(joblib.cpu_count(only_physical_cores=False))


@settings(SETTINGS, max_examples=60)
@given(st.data())
def test_float32_copy_if_exact_hostile(data):
    """Only a float64, 2-D, C-contiguous, aligned X is read; the answer is None or a float32
    array that widens back to X exactly, None exactly when some value is not a float32."""
    draw = data.draw
    rows, cols = draw(SIZES), draw(SIZES)
    values = np.random.default_rng(draw(st.integers(0, 2**16))).integers(-4, 5, (rows, cols))
    values = values * draw(st.sampled_from([1.0, 0.5, 0.1, 1e300, 2.0**-140]))
    X = materialise(values, draw(DTYPES), draw(LAYOUTS))
    fine = (
        not isinstance(X, list)
        and X.dtype == np.float64
        and X.ndim == 2
        and X.flags.c_contiguous
        and X.flags.aligned
    )
    try:
        out = core.float32_copy_if_exact(X)
    except (TypeError, ValueError):
        assert not fine
        return
    assert fine
    exact = np.array_equal(X.astype(np.float32).astype(np.float64), X)
    if out is None:
        assert not exact
    else:
        assert exact and out.dtype == np.float32 and out.shape == X.shape
        assert np.array_equal(out.astype(np.float64), X)


def test_every_entry_point_is_covered():
    """A new _core function must get a hostile-input property here."""
    covered = {
        "gemm",
        "forward",
        "predict_forward",
        "loss_grad",
        "train_epoch",
        "set_isa",
        "isa",
        "available_isas",
        "max_threads",
        "perceptron_epoch",
        "float32_copy_if_exact",
        "thread_stats",
        "set_default_threads",
        "bf16_kernels",
        "bf16_kernel",
        "set_bf16_kernel",
    }
    public = {
        name for name in dir(core) if callable(getattr(core, name)) and not name.startswith("_")
    }
    assert public <= covered, f"no hostile-input test for {sorted(public - covered)}"
