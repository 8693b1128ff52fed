"""No call can crash the interpreter (issue 9, item 3): each item of the issue's list, with the
clear Python exception (or the correct result) the issue asks for.

Calls that crash or hang today run in a child interpreter (tests/_subprocess_util.py), so a
segfault is a failed test, not a dead pytest. Calls that today only give the wrong exception or
a silent NaN run in-process. Everything broken today is `xfail(strict=True, raises=...)`: the
`raises` type is the failure the issue describes (Crash, Hang, WrongOutcome, RuntimeError), so
any other failure is still reported, and the fix must remove the marker.
"""

import sys
import threading
import time
import warnings

import numpy as np
import pytest
from _subprocess_util import (
    CORE_IMPORT,
    SANITIZED,
    Crash,
    Hang,
    WrongOutcome,
    expect_clean_exit,
    finish,
    run_script,
    start_script,
)
from threadpoolctl import threadpool_limits

import mlpfast._core as core
from mlpfast import MLPClassifier
from mlpfast import reference as ref

UNITS = [3, 4, 2]
N = 10

PRELUDE = (
    CORE_IMPORT
    + """
import sys, threading, time
import numpy as np


def expect(excs, fn, *args, **kwargs):
    '''The call must raise one of excs; anything else (or nothing) exits 2.'''
    try:
        fn(*args, **kwargs)
    except excs as e:
        print("raised", type(e).__name__, e)
        return e
    except BaseException as e:
        print("WRONG EXCEPTION", type(e).__name__, e)
        sys.exit(2)
    print("NO EXCEPTION")
    sys.exit(2)
"""
)


def problem(dtype=np.float64, n=N, units=UNITS, act="relu", solver="adam", seed=0):
    rng = np.random.default_rng(seed)
    n_p = ref.n_params(units, act)
    return dict(
        params=(rng.standard_normal(n_p) * 0.3).astype(dtype),
        opt_state=np.zeros(ref.opt_state_size(solver, n_p), dtype),
        layer_units=list(units),
        activation=act,
        out_activation="softmax",
        X=rng.standard_normal((n, units[0])).astype(dtype),
        Y=np.eye(units[-1], dtype=dtype)[rng.integers(0, units[-1], n)],
        sample_weight=(rng.random(n) + 0.5).astype(dtype),
        order=rng.permutation(n).astype(np.int64),
        batch_size=4,
        solver=solver,
    )


POSITIONAL = (
    "params",
    "opt_state",
    "layer_units",
    "activation",
    "out_activation",
    "X",
    "Y",
    "sample_weight",
    "order",
    "batch_size",
)


def train(a, engine=core, **kw):
    """engine.train_epoch on the problem `a`, with keyword arguments `kw` replacing its own."""
    a = {**a, **kw}
    positional = [a.pop(name) for name in POSITIONAL]
    return engine.train_epoch(*positional, **a)


def ref_train(a, **kw):
    return train(a, engine=ref, **kw)


def net_args(units, X=None, p=None):
    """(params, layer_units, activation, out_activation, X) for forward with these units."""
    return (
        np.zeros(5) if p is None else p,
        units,
        "relu",
        "identity",
        np.zeros((2, 1)) if X is None else X,
    )


# --- bindings.cpp:parse_net -----------------------------------------------------------------

INDEX_RAISES_CALLS = {
    "forward": "core.forward(np.zeros(5), units, 'relu', 'identity', np.zeros((2, 1)))",
    "loss_grad": "core.loss_grad(np.zeros(5), units, 'relu', 'identity', np.zeros((2, 1)), "
    "np.zeros((2, 1)))",
    "train_epoch": "core.train_epoch(np.zeros(5), np.zeros(10), units, 'relu', 'identity', "
    "np.zeros((2, 1)), np.zeros((2, 1)), None, np.arange(2), 1)",
}


@pytest.mark.parametrize("call", sorted(INDEX_RAISES_CALLS))
def test_layer_units_failing_index_raises_its_exception(call):
    script = (
        PRELUDE
        + f"""
class Broken(Exception):
    pass


class BadIndex:
    def __index__(self):
        raise Broken("no index")


units = [BadIndex(), 1]
e = expect((Broken, TypeError), lambda: {INDEX_RAISES_CALLS[call]})
"""
    )
    expect_clean_exit(run_script(script), f"{call} with a failing __index__")


@pytest.mark.parametrize(
    "units",
    [[2**63, 1], [2**64, 1], [1, 2**100], [3, 2**63 + 5, 2]],
    ids=["2**63", "2**64", "2**100-out", "2**63+5-hidden"],
)
def test_layer_units_beyond_int64_is_value_error(units):
    with pytest.raises(ValueError, match="layer_units"):
        core.forward(*net_args(units))


def test_layer_units_bound_rejects_2_pow_31():
    with pytest.raises(ValueError, match=r"2\*\*31"):
        core.forward(*net_args([2**31, 1]))


def test_layer_units_just_below_the_bound_passes_it():
    # 2**31 - 1 is a legal size: the call gets past the bound and fails on params' length
    with pytest.raises(ValueError, match="params has"):
        core.forward(*net_args([2**31 - 1, 1]))


@pytest.mark.parametrize("units", [[-1, 1], [3, -(2**63), 2], [0, 1]])
def test_layer_units_negative_or_zero_is_value_error(units):
    with pytest.raises(ValueError, match="layer_units"):
        core.forward(*net_args(units))


# --- misaligned (C-contiguous but not aligned) arrays ------------------------------------------


def misaligned(a):
    """A copy of `a` in a C-contiguous but misaligned buffer (data address odd)."""
    a = np.ascontiguousarray(a)
    buf = bytearray(a.nbytes + 1)
    m = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    m[...] = a
    assert not m.flags.aligned and m.flags.c_contiguous
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_misaligned_inputs_give_the_aligned_result(dtype):
    units = [7, 9, 3]
    a = problem(dtype, n=37, units=units)
    expected_fw = core.forward(a["params"], units, "relu", "softmax", a["X"])
    np.testing.assert_allclose(
        expected_fw,
        ref.forward(a["params"], units, "relu", "softmax", a["X"]),
        rtol=1e-4,
        atol=1e-5,
    )
    got = core.forward(misaligned(a["params"]), units, "relu", "softmax", misaligned(a["X"]))
    np.testing.assert_array_equal(got, expected_fw)

    expected_lg = core.loss_grad(
        a["params"], units, "relu", "softmax", a["X"], a["Y"], a["sample_weight"], 1e-3
    )
    got = core.loss_grad(
        misaligned(a["params"]),
        units,
        "relu",
        "softmax",
        misaligned(a["X"]),
        misaligned(a["Y"]),
        misaligned(a["sample_weight"]),
        1e-3,
    )
    assert got[0] == expected_lg[0]
    np.testing.assert_array_equal(got[1], expected_lg[1])

    b = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in a.items()}
    loss_a = train(a)
    loss_b = train(
        b,
        X=misaligned(b["X"]),
        Y=misaligned(b["Y"]),
        sample_weight=misaligned(b["sample_weight"]),
        order=misaligned(b["order"]),
    )
    assert loss_a == loss_b
    np.testing.assert_array_equal(a["params"], b["params"])
    np.testing.assert_array_equal(a["opt_state"], b["opt_state"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mkn", [(3, 5, 7), (67, 131, 45)])
def test_gemm_misaligned_operands_and_out(dtype, mkn):
    m, k, n = mkn
    rng = np.random.default_rng(1)
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    expected = core.gemm(A, B, bias=bias, activation="relu")
    np.testing.assert_allclose(
        expected, np.maximum(A.astype(float) @ B + bias, 0), rtol=1e-4, atol=1e-4
    )
    got = core.gemm(misaligned(A), misaligned(B), bias=misaligned(bias), activation="relu")
    np.testing.assert_array_equal(got, expected)
    got = core.gemm(misaligned(A.T), misaligned(B.T), trans_a=True, trans_b=True)
    np.testing.assert_array_equal(
        got, core.gemm(A.T.copy(), B.T.copy(), trans_a=True, trans_b=True)
    )
    # a misaligned out: rejected with ValueError, or written correctly
    out = misaligned(np.zeros((m, n), dtype))
    try:
        core.gemm(A, B, bias=bias, activation="relu", out=out)
    except ValueError:
        return
    np.testing.assert_array_equal(out, expected)


def test_train_epoch_misaligned_params_rejected():
    a = problem()
    before = a["params"].copy()
    with pytest.raises(ValueError, match="aligned"):
        train(a, params=misaligned(a["params"]))
    with pytest.raises(ValueError, match="aligned"):
        train(a, opt_state=misaligned(a["opt_state"]))
    np.testing.assert_array_equal(a["params"], before)


# --- hyper-parameters outside their domain ----------------------------------------------------
# The domains are scikit-learn's own (BaseMultilayerPerceptron._parameter_constraints: alpha >= 0,
# learning_rate_init > 0, momentum in [0, 1], beta_1 and beta_2 in [0, 1), epsilon > 0), which
# are also where the update formulas are defined: beta_1 = 1 divides by 1 - beta_1**t = 0,
# beta_2 > 1 takes the square root of 1 - beta_2**t < 0, epsilon = 0 divides 0 by 0 wherever a
# gradient is exactly 0, momentum > 1 grows the velocity geometrically. The core must raise
# ValueError before it writes anything, instead of returning NaN weights.

OUT_OF_DOMAIN = {
    "beta_1=1": dict(beta_1=1.0),
    "beta_1=1.5": dict(beta_1=1.5),
    "beta_1<0": dict(beta_1=-0.1),
    "beta_2=1": dict(beta_2=1.0),
    "beta_2=1.5": dict(beta_2=1.5),
    "beta_2<0": dict(beta_2=-0.1),
    "epsilon=0": dict(epsilon=0.0),
    "epsilon<0": dict(epsilon=-1e-8),
    "learning_rate=0": dict(learning_rate=0.0),
    "learning_rate<0": dict(learning_rate=-1e-3),
    "learning_rate overflows float32": dict(learning_rate=1e39, dtype=np.float32),
    "sgd learning_rate overflows float32": dict(learning_rate=1e39, dtype=np.float32, solver="sgd"),
    "alpha<0": dict(alpha=-1e-3),
    "alpha overflows float32": dict(alpha=1e39, dtype=np.float32),
    "momentum>1": dict(momentum=1.5, solver="sgd"),
    "momentum<0": dict(momentum=-0.1, solver="sgd"),
    "t=2**63-1": dict(t=2**63 - 1),
    "t+batches overflows int64": dict(t=2**63 - 2),  # 3 batches: t would pass 2**63 - 1
}

IN_DOMAIN = {
    "beta_1=0": dict(beta_1=0.0),
    "beta_2=0": dict(beta_2=0.0),
    "epsilon tiny": dict(epsilon=1e-300),
    "momentum=0": dict(momentum=0.0, solver="sgd"),
    "momentum=1": dict(momentum=1.0, solver="sgd"),
    "alpha=0": dict(alpha=0.0),
    "learning_rate tiny": dict(learning_rate=1e-30),
    "t large but safe": dict(t=2**62),
}


def hyper_problem(kw):
    kw = dict(kw)
    dtype = kw.pop("dtype", np.float64)
    a = problem(dtype, solver=kw.get("solver", "adam"))
    a["X"][:, 0] = 0.0  # the first input's weights get an exactly-zero gradient
    return a, kw


@pytest.mark.parametrize("case", sorted(OUT_OF_DOMAIN))
def test_hyper_parameter_outside_domain_is_value_error(case):
    a, kw = hyper_problem(OUT_OF_DOMAIN[case])
    before = (a["params"].copy(), a["opt_state"].copy())
    try:
        result = train(a, **kw)
    except ValueError:
        np.testing.assert_array_equal(a["params"], before[0])
        np.testing.assert_array_equal(a["opt_state"], before[1])
        return
    raise WrongOutcome(
        f"{case}: accepted; returned {result}, params finite: {np.isfinite(a['params']).all()}"
    )


@pytest.mark.parametrize("case", sorted(IN_DOMAIN))
def test_hyper_parameter_inside_domain_is_accepted(case):
    a, kw = hyper_problem(IN_DOMAIN[case])
    b = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in a.items()}
    loss, t = train(a, **kw)
    loss_ref, t_ref = ref_train(b, **kw)
    assert t == t_ref
    assert np.isfinite(loss) and np.isfinite(a["params"]).all()
    np.testing.assert_allclose(a["params"], b["params"], rtol=1e-9, atol=1e-12)


# --- concurrency -----------------------------------------------------------------------------
# train_epoch validates `order` and `sample_weight`, then releases the GIL and reads them again
# for every batch. Another Python thread can write them in between. The writer below sleeps
# until the epoch is well under way (the epoch takes ~0.5 s; validation a few microseconds), so
# the write lands after validation in practice every time: deterministic enough for strict
# xfail. With the fix (validate and use a private copy) the epoch must equal a serial epoch
# with the original arrays, or raise ValueError.

RACE_SETUP = """
rng = np.random.default_rng(0)
units = [200, 256, 10]
n = 20000
p0 = (rng.standard_normal(n_params(units)) * 0.05).astype(np.float32)
X = rng.standard_normal((n, units[0])).astype(np.float32)
Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
sw = (rng.random(n) + 0.5).astype(np.float32)
order0 = rng.permutation(n).astype(np.int64)


def epoch(order, weights):
    p, s = p0.copy(), np.zeros(2 * p0.size, np.float32)
    loss, t = core.train_epoch(p, s, units, "relu", "softmax", X, Y, weights, order, 32)
    return loss, p


def racing_epoch(order, weights, write):
    result = {}
    def trainer():
        try:
            result["value"] = epoch(order, weights)
        except ValueError as e:
            result["error"] = e
    th = threading.Thread(target=trainer)
    th.start()
    time.sleep(0.05)  # the epoch (~0.3 s) is under way: validation is long done
    write()
    th.join()
    return result
"""


def race_namespace():
    """RACE_SETUP's names, in this process (races that cannot crash run in-process)."""
    ns = {
        "np": np,
        "core": core,
        "threading": threading,
        "time": time,
        "n_params": lambda units: ref.n_params(units, "relu"),
    }
    exec(RACE_SETUP, ns)
    return ns


def test_order_rewritten_during_epoch_is_harmless():
    script = (
        PRELUDE
        + RACE_SETUP
        + """
expected = epoch(order0.copy(), sw)
order = order0.copy()
def write():
    order[n // 2:] = 2**40  # far outside X
r = racing_epoch(order, sw, write)
if "error" not in r:
    loss, p = r["value"]
    assert loss == expected[0] and np.array_equal(p, expected[1]), "the epoch used the new order"
print("OK", r.keys())
"""
    )
    expect_clean_exit(run_script(script, env={"OMP_NUM_THREADS": "1"}), "order rewrite race")


def test_sample_weight_rewritten_during_epoch_is_harmless():
    race = race_namespace()
    expected = race["epoch"](race["order0"], race["sw"].copy())
    weights = race["sw"].copy()

    def write():
        weights[:] = 0.0

    r = race["racing_epoch"](race["order0"], weights, write)
    if "error" not in r:
        loss, p = r["value"]
        if not (loss == expected[0] and np.array_equal(p, expected[1])):
            raise WrongOutcome(
                f"the epoch used the new weights: loss {loss} vs {expected[0]}, "
                f"params finite {np.isfinite(p).all()}"
            )


def test_set_isa_during_an_epoch_does_not_mix_levels():
    levels = core.available_isas()
    if len(levels) < 2:
        pytest.skip("one ISA level only")
    race = race_namespace()
    before = core.isa()
    results = {}
    try:
        with threadpool_limits(1, user_api="openmp"):
            for level in levels:
                core.set_isa(level)
                results[level] = race["epoch"](race["order0"], race["sw"])
            if len({r[1].tobytes() for r in results.values()}) < 2:
                pytest.skip("the ISA levels give identical bits on this problem")
            core.set_isa(levels[0])
            stop = threading.Event()

            def toggle():
                i = 0
                while not stop.is_set():
                    try:
                        core.set_isa(levels[i % len(levels)])
                    except (RuntimeError, ValueError):
                        pass  # refusing to switch during a call is a fix too
                    i += 1
                    time.sleep(0.0005)

            th = threading.Thread(target=toggle)
            th.start()
            try:
                got = race["epoch"](race["order0"], race["sw"])
            finally:
                stop.set()
                th.join()
    finally:
        core.set_isa(before)
    if not any(r[0] == got[0] and np.array_equal(r[1], got[1]) for r in results.values()):
        raise WrongOutcome(
            "the epoch matches no single ISA level: kernels of several levels ran in one call"
        )


def _fit_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 64)).astype(np.float32)
    y = rng.integers(0, 4, 4000)
    return X, y


def _estimator():
    return MLPClassifier(
        hidden_layer_sizes=(256,), batch_size=50, random_state=0, learning_rate_init=1e-3
    )


def test_two_threads_partial_fit_same_estimator():
    """Serialised, partial_fit calls on the same data give the serial result whatever their
    interleaving (every call is the same epoch). A clear RuntimeError for a concurrent call is
    accepted instead; then the model must equal the serial run of the calls that succeeded."""
    X, y = _fit_data()
    classes = np.unique(y)
    rounds = 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est_serial = _estimator().partial_fit(X, y, classes=classes)
        snapshots = {1: [c.copy() for c in est_serial.coefs_]}
        for i in range(2, 2 * rounds + 2):
            est_serial.partial_fit(X, y)
            snapshots[i] = [c.copy() for c in est_serial.coefs_]

        est = _estimator().partial_fit(X, y, classes=classes)
        barrier = threading.Barrier(2)
        done, errors = [], []

        def worker():
            for _ in range(rounds):
                barrier.wait(timeout=60)  # both calls start together
                try:
                    est.partial_fit(X, y)
                    done.append(1)
                except RuntimeError as e:
                    errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert len(done) + len(errors) == 2 * rounds, "a worker thread died"
    n_calls = 1 + len(done)
    if any(not np.array_equal(a, b) for a, b in zip(est.coefs_, snapshots[n_calls])):
        raise WrongOutcome(
            f"{len(done)} concurrent partial_fit calls succeeded ({len(errors)} "
            f"refused) but the weights differ from {n_calls} serial calls"
        )


@pytest.mark.filterwarnings("ignore")
def test_predict_during_partial_fit_sees_whole_epochs():
    """predict_proba while another thread runs partial_fit on the same estimator: every answer
    is the model's answer after a whole number of epochs (no torn weights)."""
    X, y = _fit_data()
    rounds, probe = 4, X[:500]

    def after_first_epoch():
        return _estimator().partial_fit(X, y, classes=np.unique(y))

    serial = after_first_epoch()
    answers = [serial.predict_proba(probe)]
    for _ in range(rounds):
        answers.append(serial.partial_fit(X, y).predict_proba(probe))
    est = after_first_epoch()
    seen, stop = [], threading.Event()

    def predictor():
        while not stop.is_set():
            seen.append(est.predict_proba(probe))

    th = threading.Thread(target=predictor)
    th.start()
    try:
        for _ in range(rounds):
            est.partial_fit(X, y)
    finally:
        stop.set()
        th.join()
    assert seen
    torn = [i for i, a in enumerate(seen) if not any(np.array_equal(a, b) for b in answers)]
    assert not torn, f"{len(torn)} of {len(seen)} predictions match no whole epoch"


def test_estimator_lock_is_private():
    """The per-estimator lock: not a parameter, not pickled, and copies get their own."""
    import copy
    import pickle

    from sklearn.base import clone

    from mlpfast._multilayer_perceptron import LOCK_ATTRIBUTE

    X, y = _fit_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = _estimator().set_params(max_iter=1).fit(X[:200], y[:200])
    assert LOCK_ATTRIBUTE in vars(est)
    assert LOCK_ATTRIBUTE not in est.get_params()
    assert LOCK_ATTRIBUTE not in est.__getstate__()
    for other in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        np.testing.assert_array_equal(other.predict_proba(X), est.predict_proba(X))
        assert vars(other)[LOCK_ATTRIBUTE] is not vars(est)[LOCK_ATTRIBUTE]
    assert LOCK_ATTRIBUTE not in vars(clone(est))


# --- Ctrl-C inside one long core call -------------------------------------------------------
# A full-batch loss_grad (L-BFGS) or a predict on a huge X is one core call; the issue asks it to
# notice SIGINT between chunks and raise KeyboardInterrupt within about a second. Each call
# below takes ~10 s on one thread; SIGINT comes after 1 s; the script demands the
# KeyboardInterrupt within INTERRUPT_LIMIT s of the signal. Both start together when the first
# of the two tests runs (the suite pays their time once).

INTERRUPT_LIMIT = 3.0
# Under .ci/sanitize.sh a piece of work between two polls runs several times slower (ASan, -O1)
# and the machine is busy with the other tests: there the path is checked (interrupted, no
# report), with 20 s instead of 3; the 3 s goal holds in the normal suite.
if SANITIZED:
    INTERRUPT_LIMIT = 20.0

INTERRUPT_SCRIPT = (
    PRELUDE
    + """
import os, signal
# Python installs its KeyboardInterrupt handler only if SIGINT was not ignored at start-up, and
# a background job of a non-interactive shell starts with SIGINT ignored (the sanitized run in
# .ci/run was one): the child must see Ctrl-C as a user's interpreter does
signal.signal(signal.SIGINT, signal.default_int_handler)
rng = np.random.default_rng(0)
units = {units}
n = {n}
p = (rng.standard_normal(n_params(units)) * 0.02).astype(np.float32)
X = rng.standard_normal((n, units[0])).astype(np.float32)
Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
sent = []
def interrupt():
    time.sleep(1.0)
    sent.append(time.perf_counter())
    os.kill(os.getpid(), signal.SIGINT)
def watchdog():
    # decide as soon as the limit has passed: the call may still need many seconds
    time.sleep(1.0 + {limit})
    while not sent:
        time.sleep(0.1)
    time.sleep(max(0.0, sent[0] + {limit} - time.perf_counter()))
    print("NOT INTERRUPTED within", {limit}, "s of SIGINT", flush=True)
    os._exit(1)
threading.Thread(target=interrupt, daemon=True).start()
threading.Thread(target=watchdog, daemon=True).start()
start = time.perf_counter()
try:
    {call}
    finished = time.perf_counter()
    time.sleep(0.5)  # a pending KeyboardInterrupt surfaces here if the call ignored it
    print("NOT INTERRUPTED: the call ran to the end,", finished - start, "s")
    sys.exit(1)
except KeyboardInterrupt:
    late = time.perf_counter() - sent[0]
    print("interrupted", late, "s after SIGINT")
    sys.exit(0 if late < {limit} else 1)
"""
)

INTERRUPT_CALLS = {
    "loss_grad": dict(
        units=[500, 3000, 3000, 10],
        n=8000,
        call='core.loss_grad(p, units, "relu", "softmax", X, Y)',
    ),
    "forward": dict(
        units=[500, 4000, 4000, 10], n=10000, call='core.forward(p, units, "relu", "softmax", X)'
    ),
}


@pytest.fixture(scope="module")
def interrupt_runs():
    procs = {
        name: start_script(
            INTERRUPT_SCRIPT.format(limit=INTERRUPT_LIMIT, **kw), env={"OMP_NUM_THREADS": "1"}
        )
        for name, kw in INTERRUPT_CALLS.items()
    }
    yield procs
    for p in procs.values():
        finish(p, 1)


@pytest.mark.parametrize("call", sorted(INTERRUPT_CALLS))
def test_ctrl_c_interrupts_a_long_core_call(interrupt_runs, call):
    # the script's own watchdog ends it INTERRUPT_LIMIT s after the signal; this is the backstop
    outcome = finish(interrupt_runs[call], 30 + 2 * INTERRUPT_LIMIT)
    expect_clean_exit(outcome, f"SIGINT during {call}")


def test_subprocess_helper_reports_a_crash():
    """The harness itself: a segfault in the child is a Crash, not a pass."""
    with pytest.raises(Crash):
        expect_clean_exit(run_script("import ctypes; ctypes.string_at(0)"), "null read")
    with pytest.raises(Hang):
        expect_clean_exit(run_script("import time; time.sleep(30)", timeout=0.5), "sleep")


if sys.platform != "linux":  # the /proc and fork based checks of this directory assume Linux
    pytestmark = pytest.mark.skip("Linux only")
