"""GEMM speed: mlpfast._core.gemm vs numpy.matmul (OpenBLAS) side by side, default threads.

    python -m pytest bench/bench_gemm.py --benchmark-columns=median,iqr,rounds

Each pytest-benchmark group is one (form, m x k x n, dtype) case with both libraries in it; at
the end bench/conftest.py prints GFLOP/s and the ratio mlpfast/numpy (> 1: mlpfast faster) per
case. Forms: NN C = A B, TN C = A^T B (dW = A^T dZ), NT C = A B^T (dA = dZ W^T); a transposed
operand is stored as the transpose, exactly as the training loop holds it. Both write into a
preallocated `out`, so neither pays for an allocation.
"""

import numpy as np
import pytest

import mlpfast._core as core

SHAPES = [(100, 784, 500), (100, 500, 500), (256, 784, 500), (1024, 784, 500), (2048, 2048, 2048)]
FORMS = ["NN", "TN", "NT"]
# The MLP's products at batch size 1 (784-100-10): forward, dW and dA.
BATCH1 = [
    ("NN", (1, 784, 100)),
    ("NN", (1, 100, 10)),
    ("TN", (784, 1, 100)),
    ("TN", (100, 1, 10)),
    ("NT", (1, 10, 100)),
]


def _case(form, shape, dtype):
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if form == "TN" else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if form == "NT" else (k, n)).astype(dtype)
    out = np.empty((m, n), dtype)
    ta, tb = form == "TN", form == "NT"
    opa, opb = (a.T if ta else a), (b.T if tb else b)
    calls = {
        "numpy": lambda: np.matmul(opa, opb, out=out),
        "mlpfast": lambda: core.gemm(a, b, trans_a=ta, trans_b=tb, out=out),
    }
    return calls, 2.0 * m * n * k


def _run(benchmark, form, shape, dtype, library):
    calls, flops = _case(form, shape, dtype)
    m, k, n = shape
    benchmark.group = f"{form} {m}x{k}x{n} {np.dtype(dtype).name}"
    benchmark.extra_info.update(library=library, flops=flops)
    calls[library]()  # warm: threads started, pages touched
    benchmark(calls[library])


@pytest.mark.benchmark(warmup=True, min_rounds=10)
@pytest.mark.parametrize("library", ["numpy", "mlpfast"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm(benchmark, shape, form, dtype, library):
    _run(benchmark, form, shape, dtype, library)


@pytest.mark.benchmark(warmup=True, min_rounds=100)
@pytest.mark.parametrize("library", ["numpy", "mlpfast"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "form,shape", BATCH1, ids=lambda x: x if isinstance(x, str) else "x".join(map(str, x))
)
def test_gemm_batch1(benchmark, form, shape, dtype, library):
    _run(benchmark, form, shape, dtype, library)
