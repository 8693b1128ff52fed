"""GEMM speed: mlpfast._core.gemm vs numpy.matmul (OpenBLAS) side by side, default threads;
and matmul_precision="bfloat16" vs PyTorch's bf16 matmul at the MLP's shapes.

    python -m pytest bench/bench_gemm.py --benchmark-columns=median,iqr,rounds

Each pytest-benchmark group is one (form, m x k x n, dtype) case with both libraries in it; at
the end bench/conftest.py prints GFLOP/s and the ratio mlpfast/numpy (> 1: mlpfast faster) per
case. Forms: NN C = A B, TN C = A^T B (dW = A^T dZ), NT C = A B^T (dA = dZ W^T); a transposed
operand is stored as the transpose, exactly as the training loop holds it. Both write into a
preallocated `out`, so neither pays for an allocation. The bf16 groups ("NN 100x784x500 bf16")
put mlpfast's bf16 product (float32 operands, rounded while packing; float32 out) beside
PyTorch's `torch.matmul` on operands already in bf16 (bf16 out), the best case for PyTorch.
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


def _operands(form, shape, dtype):
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if form == "TN" else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if form == "NT" else (k, n)).astype(dtype)
    return a, b, form == "TN", form == "NT", np.empty((m, n), dtype)


def _case(form, shape, dtype):
    m, k, n = shape
    a, b, ta, tb, out = _operands(form, shape, dtype)
    opa, opb = (a.T if ta else a), (b.T if tb else b)
    calls = {
        "numpy": lambda: np.matmul(opa, opb, out=out),
        "mlpfast": lambda: core.gemm(a, b, trans_a=ta, trans_b=tb, out=out),
    }
    return calls, 2.0 * m * n * k


def _case_bf16(form, shape):
    m, k, n = shape
    flops = 2.0 * m * n * k
    a, b, ta, tb, out = _operands(form, shape, np.float32)
    calls = {
        "mlpfast": lambda: core.gemm(
            a, b, trans_a=ta, trans_b=tb, out=out, matmul_precision="bfloat16"
        )
    }
    try:
        import torch
    except ImportError:
        return calls, flops
    a16, b16 = torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16()
    opa, opb = (a16.T if ta else a16), (b16.T if tb else b16)
    out16 = torch.empty((m, n), dtype=torch.bfloat16)
    calls["torch"] = lambda: torch.matmul(opa, opb, out=out16)
    return calls, flops


def _run(benchmark, form, shape, dtype, library):
    calls, flops = _case_bf16(form, shape) if dtype == "bf16" else _case(form, shape, dtype)
    if library not in calls:
        pytest.skip(f"{library} is not installed")
    m, k, n = shape
    name = dtype if dtype == "bf16" else np.dtype(dtype).name
    benchmark.group = f"{form} {m}x{k}x{n} {name}"
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


@pytest.mark.benchmark(warmup=True, min_rounds=10)
@pytest.mark.parametrize("library", ["torch", "mlpfast"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("shape", SHAPES[:1] + SHAPES[2:4], ids=lambda s: "x".join(map(str, s)))
def test_gemm_bf16(benchmark, shape, form, library):
    _run(benchmark, form, shape, "bf16", library)
