"""Hostile sparse X for the core entry points that take one (issue 9, item 5): forward,
predict_forward, loss_grad and train_epoch, with X a scipy.sparse matrix or array built hostile.
test_core_hostile.py draws dense X only; these properties draw, in the same style and with the
same settings (derandomised, bounded):

- data of every dtype (native float32 / float64, byte-swapped, float16, ints, complex, bool,
  object) and every layout (negative strides, strided, misaligned, read-only, zero-stride, a
  subclass, 2-D, a list), set on the matrix as X.data = ...;
- indices and indptr of any integer dtype (int32, int64, mixed, byte-swapped, unsigned, narrow)
  or not integer at all, in the same layouts; int64 values beyond int32;
- unsorted and duplicate column indices (they add up, as scipy's densification sums them),
  empty rows, 0 rows, a wide input layer;
- a structure out of contract: a column out of range or negative, indptr decreasing, not
  starting at 0, its last entry beyond the stored values, or of the wrong length; data or
  indices shorter or longer than indptr[-1] needs; NaN / inf stored in or after the used part;
- X.shape at odds with the network or not a shape at all (X._shape set to anything);
- csr_matrix, csr_array and subclasses of both; the other formats (CSC, COO, LIL, DOK, BSR,
  DIA), which must raise TypeError (docs/architecture.md, Errors); a COO subclass that calls
  itself CSR, an object that is not sparse but has CSR's attributes;
- X.data a view of params (train_epoch writes params: refused).

The oracle (csr_oracle) reads the arrays that were passed, independently of the core: a valid X
is densified from them (indices as the core converts them, int64 with numpy's wrap-around) and
the call must give mlpfast.reference's answer on it; any other X must raise TypeError or
ValueError with a message naming X, and leave params and opt_state untouched. predict_forward
declines (None) every sparse X: scikit-learn's path takes it.

About 5 s in all on a 2-core machine (under load).
"""

import operator
from functools import partial

import numpy as np
import pytest
import scipy.sparse as sp
from test_core_hostile import (
    DTYPES,
    LEVELS,
    SETTINGS,
    SIZES,
    as_dtype,
    at_isa,
    is_native_float,
    loose,
    materialise,
    network,
    params_for,
    targets,
)

import mlpfast._core as core
from mlpfast import reference as ref

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# mostly the two widths scipy uses; every other kind now and then
INDEX_DTYPES = st.sampled_from(
    ["int32"] * 6
    + ["int64"] * 6
    + [">i4", ">i8", "uint32", "uint64", "int16", "uint8", "float64", "bool", "object"]
)
# test_core_hostile.materialise's layouts, C-contiguous more often (three arrays per X)
ARRAY_LAYOUTS = st.sampled_from(
    ["C"] * 8
    + ["F", "reversed", "strided", "misaligned", "readonly", "zero_stride", "broadcast"]
    + ["subclass", "extra_axis", "list"]
)


class CsrMatrixSub(sp.csr_matrix):
    """A csr_matrix subclass: accepted like a csr_matrix."""


class CsrArraySub(sp.csr_array):
    """A csr_array subclass: accepted like a csr_array."""


class CooSaysCsr(sp.coo_matrix):
    """A COO matrix whose format claims CSR: it has no indices / indptr."""

    format = "csr"


class FakeCsr:
    """Not a scipy.sparse matrix, but with CSR's attributes."""

    format = "csr"

    def __init__(self, X):
        self.shape, self.data, self.indices, self.indptr = X.shape, X.data, X.indices, X.indptr


CONTAINERS = [sp.csr_matrix, sp.csr_array] * 3 + [CsrMatrixSub, CsrArraySub]
OTHER_FORMATS = ["csc", "coo", "lil", "dok", "bsr", "dia"]
FLAWS = (
    [None] * 10
    + ["column_out_of_range", "column_negative", "column_beyond_int32"]
    + ["indptr_decreasing", "indptr_start", "indptr_last", "indptr_length"]
    + ["shape", "format", "format", "lies"]
    + ["data_is_params"] * 3
)
# X._shape = one of these (n and cols: the matrix's own): some are a valid shape
SHAPES = [
    lambda n, c: (n, c + 1),
    lambda n, c: (n, c - 1),
    lambda n, c: (n + 1, c),
    lambda n, c: (-1, c),
    lambda n, c: (np.int64(n), np.int32(c)),  # numpy ints: valid
    lambda n, c: (n, c, 1),
    lambda n, c: (float(n), c),
    lambda n, c: (True, c),
    lambda n, c: (2**63 - 1, c),
    lambda n, c: (2**64, c),
    lambda n, c: [n, c],
]


@st.composite
def hostile_csr(draw, n, cols, dtype, params):
    """A sparse X of n rows and `cols` columns, mostly a valid CSR of `dtype` (duplicate and
    unsorted columns, empty rows), else hostile somewhere (the module's docstring)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    counts = rng.integers(0, draw(st.sampled_from([1, 3, 6])), n)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    nnz = int(indptr[-1])
    # columns drawn with replacement, in no order: duplicates and unsorted rows
    indices = rng.integers(0, cols, nnz)
    data = rng.standard_normal(nnz) * 0.5
    if draw(st.booleans()):  # scipy's canonical form: sorted, duplicates summed
        canonical = sp.csr_matrix((data, indices, indptr), shape=(n, cols))
        canonical.sum_duplicates()
        data, indices, indptr = canonical.data, canonical.indices, canonical.indptr
        indices, indptr = indices.astype(np.int64), indptr.astype(np.int64)
        nnz = int(indptr[-1])
    # data / indices longer or shorter than indptr[-1] needs; a NaN / inf anywhere in data
    extra_data, extra_indices = draw(st.sampled_from([0] * 4 + [-1, 2])), 0
    if draw(st.integers(0, 3)) == 0:
        extra_indices = draw(st.sampled_from([-1, 2]))
    data = np.concatenate([data, rng.standard_normal(max(extra_data, 0))])[: nnz + extra_data]
    indices = np.concatenate([indices, rng.integers(0, cols, max(extra_indices, 0))])
    indices = indices[: max(nnz + extra_indices, 0)]
    if len(data) and draw(st.integers(0, 9)) == 0:
        data[draw(st.integers(0, len(data) - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    flaw = draw(st.sampled_from(FLAWS))
    event(f"flaw: {flaw}")
    data_dtype, index_dtypes = draw(DTYPES), (draw(INDEX_DTYPES), draw(INDEX_DTYPES))
    if draw(st.integers(0, 4)) > 0:
        data_dtype = dtype
    if flaw and flaw.startswith("column") and len(indices):
        p = draw(st.integers(0, len(indices) - 1))
        indices[p] = {
            "column_out_of_range": cols + draw(st.sampled_from([0, 1, 2**31 - 1 - cols])),
            "column_negative": draw(st.sampled_from([-1, -(2**31), -(2**63)])),
            "column_beyond_int32": indices[p] + 2**32,  # int32 would wrap it back in range
        }[flaw]
        if flaw == "column_beyond_int32":
            index_dtypes = (draw(st.sampled_from(["int64", ">i8", "uint64"])), index_dtypes[1])
    elif flaw == "indptr_decreasing" and n >= 2:
        i = draw(st.integers(1, n - 1))
        indptr[i] = indptr[i + 1] + draw(st.sampled_from([1, 2**31, 2**40]))
    elif flaw == "indptr_start":
        indptr[0] = draw(st.sampled_from([1, -1, 2**32]))
    elif flaw == "indptr_last":
        indptr[-1] += draw(st.sampled_from([1, 2**31, 2**32 - nnz]))
        if draw(st.booleans()):  # int64 indptr, int32 indices: a mixed pair
            index_dtypes = (index_dtypes[0], "int64")
    elif flaw == "indptr_length":
        indptr = indptr[:-1] if draw(st.booleans()) else np.append(indptr, indptr[-1])
    elif flaw == "data_is_params":  # (X.data = params[:...] below): as many values as params
        indptr = np.minimum(indptr, params.size)

    def arr(values, dt):
        with np.errstate(invalid="ignore", over="ignore"):  # NaN or 2**63 cast to an int
            return materialise(values, dt, draw(ARRAY_LAYOUTS))

    if flaw == "format":  # a valid matrix in another format: TypeError
        dense = rng.standard_normal((n, cols)) * (rng.random((n, cols)) < 0.3)
        other = draw(st.sampled_from(CONTAINERS))(dense.astype(dtype))
        # (DIA stores every diagonal in full: only for a narrow X)
        fmt = draw(st.sampled_from(OTHER_FORMATS if cols <= 64 else OTHER_FORMATS[:-1]))
        return other.asformat(fmt)
    base = draw(st.sampled_from(CONTAINERS))((n, cols), dtype=dtype)
    base.data = arr(data, data_dtype)
    base.indices = arr(indices, index_dtypes[0])
    base.indptr = arr(indptr, index_dtypes[1])
    if flaw == "data_is_params":
        base.data = params[: min(params.size, len(data))]
    if flaw == "shape":
        base._shape = draw(st.sampled_from(SHAPES))(n, cols)
        if base._shape[0] == -1 and draw(st.booleans()):  # and indptr's length matches it
            base.indptr = base.indptr[:0]
    if flaw == "lies":
        if draw(st.booleans()):
            return FakeCsr(base)
        return CooSaysCsr(sp.coo_matrix((n, cols), dtype=dtype))
    return base


def csr_oracle(X, cols, dtype, min_rows):
    """(valid, X densified in float64 or None), from the arrays that were passed: valid when X
    is a scipy.sparse CSR of dtype `dtype` with `cols` columns and >= min_rows rows whose
    used part (the first indptr[-1] entries of data and indices) is in range and finite."""
    if not sp.issparse(X) or X.format != "csr" or isinstance(X, CooSaysCsr):
        return False, None
    shape = X.shape
    if not (
        isinstance(shape, tuple)
        and len(shape) == 2
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape)
    ):
        return False, None
    n, c = int(shape[0]), int(shape[1])
    data, ind, ptr = X.data, X.indices, X.indptr
    if not (is_native_float(data, dtype) and data.ndim == 1 and c == cols and n >= min_rows):
        return False, None
    for a in (ind, ptr):
        if not (isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype.kind in "iu"):
            return False, None
    ind, ptr = ind.astype(np.int64), ptr.astype(np.int64)  # numpy's wrap-around, as the core's
    if len(ptr) != n + 1 or ptr[0] != 0 or np.any(np.diff(ptr) < 0):
        return False, None
    used = ptr[-1]
    if used > min(len(data), len(ind)):
        return False, None
    ind, values = ind[:used], np.asarray(data[:used], dtype=np.float64)
    if np.any(ind < 0) or np.any(ind >= cols) or not np.isfinite(values).all():
        return False, None
    dense = np.zeros((n, cols))
    np.add.at(dense, (np.repeat(np.arange(n), np.diff(ptr)), ind), values)  # duplicates add up
    return True, dense


def call_checked(fn, X, valid):
    """fn()'s result, or None when it raised TypeError / ValueError on an invalid X with a
    message that names X. Another format than CSR must raise TypeError; a valid X must not
    raise; any other exception propagates (a failure)."""
    event("valid X" if valid else "invalid X")
    other_format = sp.issparse(X) and X.format != "csr"
    try:
        result = fn()
    except (TypeError, ValueError) as e:
        if valid:
            raise
        assert "X" in str(e), f"the message does not say what is wrong: {e!r}"
        assert not other_format or isinstance(e, TypeError), repr(e)
        event(f"rejected: {type(e).__name__}")
        return None
    assert valid, "an invalid sparse X was accepted"
    event("answered")
    return result


def rows_of(X):
    """Y's rows for X: its shape's first entry when that is an int in [1, 64], else 1."""
    try:
        rows = operator.index(X.shape[0])
    except (TypeError, IndexError):
        return 1
    return rows if 1 <= rows <= 64 else 1


# the solvers' hyper-parameters, the same for the core and the reference
HYPER = dict(alpha=1e-4, learning_rate=1e-2, momentum=0.9, nesterov=True, beta_1=0.9,
             beta_2=0.999, epsilon=1e-8)  # fmt: skip


def fitted_state(params, units, act, out):
    coefs, intercepts, slopes = ref.unpack(params, units, act)
    state = dict(_params=params, _layer_units=list(units), activation=act, out_activation_=out,
                 n_features_in_=units[0], coefs_=coefs, intercepts_=intercepts)  # fmt: skip
    if slopes:
        state["prelu_slopes_"] = slopes
    return state


def draw_inputs(data, net, min_rows):
    """params (plain), a hostile sparse X with the oracle's verdict on it, and for X's rows a
    plain Y and (sometimes) sample weights."""
    units, act, out, dt, rng = net
    params = params_for(rng, units, act).astype(dt)
    X = data.draw(hostile_csr(data.draw(SIZES), units[0], dt, params))
    valid, dense = csr_oracle(X, units[0], dt, min_rows)
    n = rows_of(X)
    Y = targets(rng, out, n, units[-1]).astype(dt)
    sw = (rng.random(n) + 0.1).astype(dt) if data.draw(st.booleans()) else None
    return params, X, valid, dense, Y, sw


@settings(SETTINGS, max_examples=200)
@given(network(), st.data())
def test_forward_and_predict_forward_sparse_hostile(net, data):
    units, act, out, dt, rng = net
    params, X, valid, dense, _, _ = draw_inputs(data, net, 0)
    level = data.draw(LEVELS)
    with at_isa(level):
        result = call_checked(lambda: core.forward(params, units, act, out, X), X, valid)
        # the predict fast path declines every sparse X: scikit-learn's path takes it
        state = fitted_state(params, units, act, out)
        assert core.predict_forward(state, X, data.draw(st.booleans())) is None
    if result is None:
        return
    with np.errstate(all="ignore"):
        expected = ref.forward(params, units, act, out, dense.astype(dt))
    assert result.dtype == dt and result.shape == (dense.shape[0], units[-1])
    np.testing.assert_allclose(result, expected, equal_nan=True, **loose(dt, 10))


@settings(SETTINGS, max_examples=200)
@given(network(), st.data())
def test_loss_grad_sparse_hostile(net, data):
    units, act, out, dt, rng = net
    params, X, valid, dense, Y, sw = draw_inputs(data, net, 1)
    alpha = data.draw(st.sampled_from([0.0, 1e-4, 1.0]))
    with at_isa(data.draw(LEVELS)):
        result = call_checked(
            lambda: core.loss_grad(params, units, act, out, X, Y, sw, alpha), X, valid
        )
    if result is None:
        return
    loss, grad = result
    with np.errstate(all="ignore"):
        loss_r, grad_r = ref.loss_grad(params, units, act, out, dense.astype(dt), Y, sw, alpha)
    assert grad.dtype == dt and grad.shape == params.shape
    np.testing.assert_allclose(loss, loss_r, **loose(dt, 10))
    np.testing.assert_allclose(grad, grad_r, **loose(dt, 10))


@settings(SETTINGS, max_examples=150)  # the reference's epoch is the slow part
@given(network(), st.data())
def test_train_epoch_sparse_hostile(net, data):
    units, act, out, dt, rng = net
    solver = data.draw(st.sampled_from(core.SOLVERS))
    params, X, valid, dense, Y, sw = draw_inputs(data, net, 1)
    state = np.zeros(ref.opt_state_size(solver, params.size), dt)
    if valid:  # X is read while params is written: X.data must not be a view of params
        valid = not np.may_share_memory(X.data, params)
    order = rng.permutation(len(Y))
    batch_size = data.draw(st.sampled_from([1, 2, 3, 7, 64]))
    before = params.copy(), state.copy()
    with at_isa(data.draw(LEVELS)):
        result = call_checked(
            lambda: core.train_epoch(
                params, state, units, act, out, X, Y, sw, order, batch_size, solver=solver, **HYPER
            ),
            X,
            valid,
        )
    if result is None:  # nothing written
        np.testing.assert_array_equal(params, before[0])
        np.testing.assert_array_equal(state, before[1])
        return
    p_ref, s_ref = before
    conv = partial(as_dtype, dtype=dt)
    with np.errstate(all="ignore"):
        loss_r, t_r = ref.train_epoch(p_ref, s_ref, units, act, out, conv(dense), Y, sw, order,
                                      batch_size, solver=solver, **HYPER)  # fmt: skip
    loss, t = result
    assert t == t_r
    np.testing.assert_allclose(loss, loss_r, **loose(dt, 100))
    np.testing.assert_allclose(params, p_ref, **loose(dt, 100))
    np.testing.assert_allclose(state, s_ref, **loose(dt, 100))


# --- found by the properties above -------------------------------------------------------------


def _plain():
    X = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]))
    units = [3, 2, 1]
    return X, units, params_for(np.random.default_rng(0), units, "tanh")


@pytest.mark.parametrize(
    "shape, error",
    [
        # shape[0] = -1 with an empty indptr passed the length check (0 == -1 + 1): indptr[0]
        # was read from an empty array (out of bounds; ASan's heap-buffer-overflow)
        ((-1, 3), ValueError),
        ((2**63 - 1, 3), ValueError),  # shape[0] + 1 overflowed int64 (UBSan)
        ((2**64, 3), ValueError),  # was RuntimeError "Unable to cast ... to C++ type '?'"
        ((2.0, 3), TypeError),  # (the same RuntimeError)
        ((True, 3), TypeError),
        ([2, 3], TypeError),
    ],
)
def test_sparse_shape_hostile(shape, error):
    X, units, params = _plain()
    X._shape = shape
    if shape[0] == -1:
        X.indptr = np.zeros(0, np.int32)
    for call in (
        lambda: core.forward(params, units, "tanh", "identity", X),
        lambda: core.loss_grad(params, units, "tanh", "identity", X, np.ones(2)),
    ):
        with pytest.raises(error, match="X.shape|X must"):
            call()


def test_sparse_that_lies_about_its_format():
    # a COO subclass saying "csr" raised AttributeError (no indices): now TypeError
    X, units, params = _plain()
    with pytest.raises(TypeError, match="X.indices must be a numpy.ndarray"):
        core.forward(params, units, "tanh", "identity", CooSaysCsr(X))
