"""The C++ core gives bitwise identical results for any number of OpenMP threads (threadpoolctl
in-process, OMP_NUM_THREADS in subprocesses), and agrees with mlpfast.reference at every
instruction-set level this CPU supports."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import mlpfast._core as core
from mlpfast import reference as ref

from core_helpers import DTYPES, random_problem, tol

# Sizes chosen so that every kernel crosses its parallel threshold (vector_kernels.cpp): batch
# x width > 2^17 elements, more than one column block, > 2^18 parameters with several
# reduction blocks (relu-adam, and per layer for the small-batch weight steps), 20 outputs x
# batch > 2^12 for the loss.
WORKLOADS = {
    "relu-adam": ([100, 600, 400, 20], "relu", "softmax", "adam", 512, 1024),
    "prelu-sgd": ([40, 300, 150, 20], "prelu", "logistic", "sgd", 512, 1000),
    "softplus-poisson": ([40, 180, 20], "softplus", "exp", "adam", 800, 1000),
    # small batches: the fused weight steps, parallel over rows of W
    "tanh-sgd-batch2": ([100, 600, 400, 20], "tanh", "softmax", "sgd", 2, 31),
    "relu-adam-batch1": ([100, 600, 400, 20], "relu", "softmax", "adam", 1, 9),
}


def run_workload(name, dtype):
    """Every entry point on one workload; returns the bytes of all results."""
    units, act, out, solver, batch, n = WORKLOADS[name]
    rng = np.random.default_rng(11)
    params, X, Y, sw = random_problem(rng, units, act, out, n, dtype, weights=True)
    X *= 0.3
    state = np.zeros(ref.opt_state_size(solver, params.size), dtype)
    order = rng.permutation(n)
    losses = []
    t = 0
    hyper = dict(solver=solver, alpha=1e-3, learning_rate=1e-3)
    for _ in range(2):
        loss, t = core.train_epoch(
            params, state, units, act, out, X, Y, sw, order, batch, **hyper, t=t
        )
        losses.append(loss)
    loss, grad = core.loss_grad(params, units, act, out, X, Y, sw, 1e-3)
    pred = core.forward(params, units, act, out, X)
    return b"".join(
        [
            np.array(losses + [loss]).tobytes(),
            params.tobytes(),
            state.tobytes(),
            grad.tobytes(),
            pred.tobytes(),
        ]
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_threadpoolctl_thread_counts_agree_bitwise(name, dtype):
    with threadpool_limits(limits=1, user_api="openmp"):
        assert core.max_threads() == 1
        one = run_workload(name, dtype)
    with threadpool_limits(limits=2, user_api="openmp"):
        two = run_workload(name, dtype)
    with threadpool_limits(limits=7, user_api="openmp"):  # more threads than cores
        seven = run_workload(name, dtype)
    assert one == two == seven


SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_core_threads_isa import run_workload, WORKLOADS
    import mlpfast._core as core
    h = hashlib.sha256()
    for name in sorted(WORKLOADS):
        for dtype in (np.float32, np.float64):
            h.update(run_workload(name, dtype))
    print(core.max_threads(), h.hexdigest())
    """
)


def test_omp_num_threads_subprocesses_agree_bitwise():
    script = SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)))
    digests = {}
    for threads in (1, 2, 3, 16):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        res = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        used, digest = res.stdout.split()
        assert int(used) == threads
        digests[threads] = digest
    assert len(set(digests.values())) == 1, digests


@pytest.fixture
def restore_isa():
    before = core.isa()
    yield
    core.set_isa(before)


def use_isa(isa):
    """Selects a level compiled into this build, or skips (visibly) if this CPU lacks it."""
    if isa not in core.available_isas():
        pytest.skip(f"this CPU cannot run the {isa} level")
    core.set_isa(isa)
    assert core.isa() == isa


@pytest.mark.parametrize("isa", core.ISA_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_isa_matches_reference(isa, dtype, restore_isa):
    use_isa(isa)
    rng = np.random.default_rng(2)
    for units, act, out, solver in (
        ([7, 33, 17, 5], "tanh", "softmax", "adam"),
        ([7, 20, 3], "prelu", "logistic", "sgd"),
        ([7, 19, 2], "softplus", "exp", "sgd"),
        ([7, 2], "identity", "identity", "adam"),
    ):
        params, X, Y, sw = random_problem(rng, units, act, out, 45, dtype, weights=True)
        np.testing.assert_allclose(
            core.forward(params, units, act, out, X),
            ref.forward(params, units, act, out, X),
            **tol(dtype),
        )
        loss, grad = core.loss_grad(params, units, act, out, X, Y, sw, 0.05)
        loss_r, grad_r = ref.loss_grad(params, units, act, out, X, Y, sw, 0.05)
        np.testing.assert_allclose(loss, loss_r, **tol(dtype))
        np.testing.assert_allclose(grad, grad_r, **tol(dtype))
        p_c, p_r = params.copy(), params.copy()
        s_c = np.zeros(ref.opt_state_size(solver, params.size), dtype)
        s_r = s_c.copy()
        kw = dict(solver=solver, alpha=0.05, learning_rate=0.01, t=2)
        order = rng.permutation(45)
        loss_c, t_c = core.train_epoch(p_c, s_c, units, act, out, X, Y, sw, order, 8, **kw)
        loss_r, t_r = ref.train_epoch(p_r, s_r, units, act, out, X, Y, sw, order, 8, **kw)
        assert t_c == t_r
        np.testing.assert_allclose(loss_c, loss_r, **tol(dtype))
        np.testing.assert_allclose(p_c, p_r, **tol(dtype))
        np.testing.assert_allclose(s_c, s_r, **tol(dtype))


@pytest.mark.parametrize("isa", core.ISA_LEVELS)
def test_every_isa_detects_non_finite_input(isa, restore_isa):
    use_isa(isa)
    rng = np.random.default_rng(0)
    units = [37, 4, 2]
    params = rng.standard_normal(ref.n_params(units, "relu"))
    for bad in (np.nan, np.inf, -np.inf):
        for layout in ("C", "F"):
            X = rng.standard_normal((29, 37))
            X[17, 33] = bad  # past the vector body: in a remainder lane
            X = np.asarray(X, order=layout)
            with pytest.raises(ValueError, match="X contains NaN or infinity"):
                core.forward(params, units, "relu", "identity", X)
    # huge but finite values are valid input (x * 0 is still 0 for them)
    core.forward(params, units, "relu", "identity", rng.standard_normal((29, 37)) * 1e300)


def test_isa_levels_agree_with_each_other(restore_isa):
    # the levels round differently (vector widths, FMA), but only at the last bits
    levels = core.available_isas()
    if len(levels) < 2:
        pytest.skip(f"this CPU runs one ISA level only ({levels[0]}): no second level to compare")
    results = {}
    for isa in levels:
        core.set_isa(isa)
        results[isa] = np.frombuffer(run_workload("prelu-sgd", np.float64), dtype=np.float64)
    for isa in levels[1:]:
        np.testing.assert_allclose(
            results[isa], results[levels[0]], rtol=1e-9, atol=1e-12, err_msg=f"{isa} vs {levels[0]}"
        )


def test_isa_levels_name_what_is_compiled_and_what_runs(restore_isa):
    compiled, runs = core.ISA_LEVELS, core.available_isas()
    assert compiled[0] == "generic" and len(set(compiled)) == len(compiled)
    assert runs == [isa for isa in compiled if isa in runs]  # a subsequence, worst to best
    for isa in compiled:
        if isa in runs:
            core.set_isa(isa)
            assert core.isa() == isa
        else:
            with pytest.raises(ValueError, match="not supported"):
                core.set_isa(isa)


def test_set_isa_unknown_raises(restore_isa):
    with pytest.raises(ValueError, match="unknown or not supported"):
        core.set_isa("sse9")
