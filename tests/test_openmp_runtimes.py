"""mlpfast next to PyTorch: two OpenMP runtimes (or one shared) in one process.

PyTorch ships its own OpenMP runtime (libgomp, or libomp on macOS); mlpfast links the system's
(a source build) or bundles a renamed copy (the repaired wheel). Each test runs in a fresh
interpreter (import order matters: the first library to load a given soname decides what the
second gets), imports torch before or after mlpfast, and there
- trains with both, interleaved, on two threads: mlpfast's MLPClassifier against
  scikit-learn's (float64: the same model up to rounding), PyTorch's SGD on a linear model
  against the same steps in NumPy, and a PyTorch matmul against NumPy's;
- checks that threadpoolctl.threadpool_limits(1) reaches mlpfast (_core.max_threads() == 1
  inside, 2 after) and that a fit under it is bitwise the fit on two threads;
- checks that threadpoolctl.threadpool_info() lists the OpenMP runtime each library actually
  calls (found with dladdr on the omp_get_max_threads each resolves to).
Skipped when PyTorch is not installed.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="PyTorch is not installed"
)

_CHILD = textwrap.dedent(
    r"""
    import ctypes, json, os, sys
    if sys.argv[1] == "torch_first":
        import torch
        import mlpfast
    else:
        import mlpfast
        import torch
    import numpy as np
    from numpy.testing import assert_allclose
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    from threadpoolctl import threadpool_info, threadpool_limits
    from mlpfast import _core

    torch.set_num_threads(2)
    X, y = load_digits(return_X_y=True)
    X = X[:400] / 16.0
    y = y[:400]
    params = dict(hidden_layer_sizes=(64,), solver="adam", max_iter=8, random_state=0)

    def fit_mlpfast():
        return mlpfast.MLPClassifier(**params).fit(X, y)

    def torch_sgd(steps=20, lr=0.05):
        # least squares on a linear model; the same steps in NumPy are the reference
        rng = np.random.default_rng(1)
        A = rng.standard_normal((256, 32))
        b = rng.standard_normal(256)
        w = torch.zeros(32, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([w], lr=lr)
        At, bt = torch.from_numpy(A), torch.from_numpy(b)
        for _ in range(steps):
            opt.zero_grad()
            loss = 0.5 * ((At @ w - bt) ** 2).mean()
            loss.backward()
            opt.step()
        w_ref = np.zeros(32)
        for _ in range(steps):
            w_ref -= lr * A.T @ (A @ w_ref - b) / len(b)
        assert_allclose(w.detach().numpy(), w_ref, rtol=1e-10, atol=1e-12)
        M = rng.standard_normal((384, 384))
        assert_allclose((torch.from_numpy(M) @ torch.from_numpy(M)).numpy(), M @ M,
                        rtol=1e-10, atol=1e-10)

    torch_sgd()
    ours = fit_mlpfast()
    torch_sgd()
    theirs = SkMLPClassifier(**params).fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-7)
    assert abs(ours.score(X, y) - theirs.score(X, y)) <= 1 / len(y)

    threads_before = _core.max_threads()
    with threadpool_limits(1):
        threads_inside = _core.max_threads()
        one_thread = fit_mlpfast()
        torch_sgd()
    threads_after = _core.max_threads()
    bitwise = all(np.array_equal(a, b) for a, b in
                  zip(one_thread.coefs_ + one_thread.intercepts_,
                      ours.coefs_ + ours.intercepts_))

    class DlInfo(ctypes.Structure):
        _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                    ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]

    libc = ctypes.CDLL(None)

    def runtime_of(path):
        # the library that path's omp_get_max_threads resolves to (dlsym searches path's
        # own dependency scope), by dladdr
        fn = ctypes.CDLL(path).omp_get_max_threads
        info = DlInfo()
        libc.dladdr(ctypes.cast(fn, ctypes.c_void_p), ctypes.byref(info))
        return os.path.realpath(info.fname.decode())

    torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    print(json.dumps(dict(
        threads=[threads_before, threads_inside, threads_after],
        bitwise=bitwise,
        mlpfast_runtime=runtime_of(_core.__file__),
        torch_runtime=runtime_of(torch_lib),
        openmp=[os.path.realpath(i["filepath"]) for i in threadpool_info()
                if i["user_api"] == "openmp"],
    )))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dladdr lookup is Linux-only")
@pytest.mark.parametrize("order", ["torch_first", "mlpfast_first"])
def test_mlpfast_and_torch_in_one_process(order, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    env.pop("MLPFAST_ISA", None)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, order],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["threads"] == [2, 1, 2], "threadpool_limits(1) did not reach mlpfast's runtime"
    assert out["bitwise"], "a fit on one thread differs from the fit on two"
    assert out["mlpfast_runtime"] in out["openmp"], out
    assert out["torch_runtime"] in out["openmp"], out
    print(order, "mlpfast:", out["mlpfast_runtime"], "torch:", out["torch_runtime"])
