"""Bad input to the C++ core raises ValueError / TypeError saying what was wrong, before anything
is written: params and opt_state are untouched after every failed call."""

import numpy as np
import pytest

import mlpfast._core as core
from mlpfast import reference as ref

from core_helpers import SOLVERS

UNITS = [3, 4, 2]
N = 10


def good_args(dtype=np.float64, solver="adam", act="relu"):
    rng = np.random.default_rng(0)
    n = ref.n_params(UNITS, act)
    return dict(
        params=rng.standard_normal(n).astype(dtype),
        opt_state=np.full(ref.opt_state_size(solver, n), 0.5, dtype),
        layer_units=list(UNITS),
        activation=act,
        out_activation="softmax",
        X=rng.standard_normal((N, UNITS[0])).astype(dtype),
        Y=np.eye(2, dtype=dtype)[rng.integers(0, 2, N)],
        sample_weight=np.ones(N, dtype),
        order=np.arange(N),
        batch_size=4,
        solver=solver,
    )


def call_train(a):
    a = dict(a)
    return core.train_epoch(
        a.pop("params"),
        a.pop("opt_state"),
        a.pop("layer_units"),
        a.pop("activation"),
        a.pop("out_activation"),
        a.pop("X"),
        a.pop("Y"),
        a.pop("sample_weight"),
        a.pop("order"),
        a.pop("batch_size"),
        **a,
    )


def expect_untouched(a, exc, match):
    before_p, before_s = a["params"].copy(), a["opt_state"].copy()
    with pytest.raises(exc, match=match):
        call_train(a)
    np.testing.assert_array_equal(a["params"], before_p)
    np.testing.assert_array_equal(a["opt_state"], before_s)


def test_good_args_train():
    # the baseline of every case below: these arguments do train
    a = good_args()
    before = a["params"].copy()
    loss, t = call_train(a)
    assert np.isfinite(loss) and t == 3 and not np.array_equal(a["params"], before)


def _nan_at(arr, idx):
    arr = arr.copy()
    arr[idx] = np.nan
    return arr


def _overlapping_state(a):
    # one buffer holding params and, shifted by one element, opt_state
    n, k = a["params"].size, a["opt_state"].size
    big = np.zeros(n + k)
    big[:n] = a["params"]
    a.update(params=big[:n], opt_state=big[n - 1 : n - 1 + k])


BAD_VALUE = {
    "params too short": (lambda a: a.update(params=a["params"][:-1].copy()), "params has"),
    "opt_state too short": (
        lambda a: a.update(opt_state=a["opt_state"][:-1].copy()),
        "opt_state has",
    ),
    "sgd state given to adam": (
        lambda a: a.update(opt_state=np.zeros(a["params"].size)),
        "opt_state has",
    ),
    "params 2-D": (lambda a: a.update(params=a["params"].reshape(1, -1)), "1-D"),
    "params non-contiguous": (
        lambda a: a.update(params=np.repeat(a["params"], 2)[::2]),
        "C-contiguous",
    ),
    "params read-only": (lambda a: a["params"].setflags(write=False), "read-only"),
    "opt_state read-only": (lambda a: a["opt_state"].setflags(write=False), "read-only"),
    "X columns": (lambda a: a.update(X=a["X"][:, :2].copy()), "columns"),
    "X 1-D": (lambda a: a.update(X=a["X"][:, 0].copy()), "2-D"),
    "X empty": (
        lambda a: a.update(
            X=a["X"][:0], Y=a["Y"][:0], sample_weight=a["sample_weight"][:0], order=np.arange(0)
        ),
        "empty|no rows",
    ),
    "X NaN": (lambda a: a.update(X=_nan_at(a["X"], (3, 1))), "X contains NaN"),
    "X inf": (lambda a: a["X"].__setitem__((9, 2), np.inf), "X contains NaN"),
    "Y rows": (lambda a: a.update(Y=a["Y"][:-1]), "Y must have shape"),
    "Y columns": (lambda a: a.update(Y=np.ones((N, 3))), "Y must have shape"),
    "Y NaN": (lambda a: a.update(Y=_nan_at(a["Y"], (0, 0))), "Y contains NaN"),
    "sample_weight length": (
        lambda a: a.update(sample_weight=a["sample_weight"][:-1]),
        "sample_weight must have",
    ),
    "sample_weight inf": (
        lambda a: a.update(sample_weight=_nan_at(a["sample_weight"], 2) * 0 + np.inf),
        "NaN or inf",
    ),
    "sample_weight zero batch": (
        lambda a: a["sample_weight"].__setitem__(slice(4, 8), 0.0),
        "batch 1",
    ),
    "order out of range": (lambda a: a.update(order=np.array([0, 1, N])), "out of range"),
    "order negative": (lambda a: a.update(order=np.array([0, -1])), "out of range"),
    "order empty": (lambda a: a.update(order=np.array([], dtype=np.intp)), "empty"),
    "order 2-D": (lambda a: a.update(order=np.arange(N).reshape(2, 5)), "1-D"),
    "batch_size 0": (lambda a: a.update(batch_size=0), "batch_size"),
    "unknown activation": (lambda a: a.update(activation="gelu"), "activation must be one of"),
    "unknown output": (lambda a: a.update(out_activation="sigmoid"), "out_activation must be"),
    "unknown solver": (lambda a: a.update(solver="lbfgs"), "solver must be"),
    "layer_units short": (lambda a: a.update(layer_units=[3]), "at least 2"),
    "layer_units zero": (lambda a: a.update(layer_units=[3, 0, 2]), ">= 1"),
    "layer_units mismatch": (lambda a: a.update(layer_units=[3, 5, 2]), "params has"),
    "opt_state overlaps params": (lambda a: _overlapping_state(a), "share memory"),
    "X inside params": (
        lambda a: a.update(
            X=a["params"][:24].reshape(8, 3),
            Y=a["Y"][:8],
            sample_weight=a["sample_weight"][:8],
            order=np.arange(8),
        ),
        "share memory",
    ),
    "learning_rate nan": (
        lambda a: a.update(learning_rate=float("nan")),
        "learning_rate must be finite",
    ),
    "t negative": (lambda a: a.update(t=-1), "t must be"),
}

BAD_TYPE = {
    "X float32 with float64 params": (
        lambda a: a.update(X=a["X"].astype(np.float32)),
        "X has dtype",
    ),
    "Y int": (lambda a: a.update(Y=a["Y"].astype(np.int64)), "Y has dtype"),
    "sample_weight float32": (
        lambda a: a.update(sample_weight=a["sample_weight"].astype(np.float32)),
        "sample_weight has",
    ),
    "opt_state float32": (
        lambda a: a.update(opt_state=a["opt_state"].astype(np.float32)),
        "opt_state has",
    ),
    "params int": (
        lambda a: a.update(params=a["params"].astype(np.int64)),
        "params must be a float",
    ),
    "params list": (lambda a: a.update(params=list(a["params"])), "numpy.ndarray"),
    "order float": (
        lambda a: a.update(order=np.arange(N, dtype=float)),
        "order must be an array of int",
    ),
    "order bool": (
        lambda a: a.update(order=np.ones(N, dtype=bool)),
        "order must be an array of int",
    ),
    "layer_units floats": (
        lambda a: a.update(layer_units=[3.0, 4.0, 2.0]),
        "layer_units must contain ints",
    ),
    "layer_units string": (lambda a: a.update(layer_units="342"), "layer_units must be a sequence"),
    "activation None": (lambda a: a.update(activation=None), "activation must be a string"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUE))
@pytest.mark.parametrize("solver", SOLVERS)
def test_train_epoch_bad_value(case, solver):
    a = good_args(solver=solver)
    mutate, match = BAD_VALUE[case]
    if case == "sgd state given to adam" and solver == "sgd":
        a["opt_state"] = np.zeros(2 * a["params"].size)  # adam's state given to sgd
    else:
        mutate(a)
    expect_untouched(a, ValueError, match)


@pytest.mark.parametrize("case", sorted(BAD_TYPE))
def test_train_epoch_bad_type(case):
    a = good_args()
    mutate, match = BAD_TYPE[case]
    mutate(a)
    if isinstance(a["params"], list):  # nothing to leave untouched
        with pytest.raises(TypeError, match=match):
            call_train(a)
        return
    expect_untouched(a, TypeError, match)


def test_float32_everywhere_is_accepted_and_mixed_is_not():
    a = good_args(np.float32)
    loss, _ = call_train(a)
    assert np.isfinite(loss) and a["params"].dtype == np.float32
    a = good_args(np.float32)
    a["params"] = a["params"].astype(np.float64)
    with pytest.raises(TypeError, match="has dtype float32 but params is float64"):
        call_train(a)


@pytest.mark.parametrize("order_dtype", [np.int8, np.uint16, np.int32, np.intp, np.uint64])
def test_any_integer_order_dtype(order_dtype):
    a, b = good_args(), good_args()
    a["order"] = np.arange(N, dtype=order_dtype)[::-1]
    b["order"] = np.arange(N)[::-1]
    assert call_train(a) == call_train(b)
    np.testing.assert_array_equal(a["params"], b["params"])


def test_forward_and_loss_grad_bad_input():
    a = good_args()
    p, X, Y = a["params"], a["X"], a["Y"]
    args = (UNITS, "relu", "softmax")
    with pytest.raises(ValueError, match="columns"):
        core.forward(p, *args, X[:, :2])
    with pytest.raises(ValueError, match="params has"):
        core.forward(p[:-2], *args, X)
    with pytest.raises(TypeError, match="X has dtype"):
        core.forward(p, *args, X.astype(np.float32))
    with pytest.raises(ValueError, match="X contains NaN"):
        core.forward(p, *args, _nan_at(X, (1, 1)))
    with pytest.raises(ValueError, match="out_activation"):
        core.forward(p, UNITS, "relu", "tanh", X)
    with pytest.raises(ValueError, match="no rows"):
        core.loss_grad(p, *args, X[:0], Y[:0])
    with pytest.raises(ValueError, match="Y must have shape"):
        core.loss_grad(p, *args, X, Y[:, :1])
    with pytest.raises(ValueError, match="Y contains NaN"):
        core.loss_grad(p, *args, X, _nan_at(Y, (2, 0)))
    with pytest.raises(ValueError, match="positive sum"):
        core.loss_grad(p, *args, X, Y, np.zeros(N))
    with pytest.raises(ValueError, match="sample_weight must have"):
        core.loss_grad(p, *args, X, Y, np.ones(N + 1))
    with pytest.raises(ValueError, match="alpha must be finite"):
        core.loss_grad(p, *args, X, Y, None, float("inf"))
    # a read-only or non-contiguous params is fine where nothing is written
    ro = np.repeat(p, 2)[::2]
    ro.setflags(write=False)
    np.testing.assert_array_equal(core.forward(ro, *args, X), core.forward(p, *args, X))
    np.testing.assert_array_equal(
        core.loss_grad(ro, *args, X, Y)[1], core.loss_grad(p, *args, X, Y)[1]
    )
