"""mlpfast._core.gemm against NumPy: every form, dtype and ISA level, epilogues, awkward shapes,
thread-count determinism, views, bad input, and the per-ISA symbol hygiene of the kernel objects.

The reference is NumPy in float64 (or longer sums for float32 inputs): the error allowed for an
element is a small multiple of eps * (k + 2) * (|alpha| |op(A)| |op(B)| + |beta C| + |bias|),
the classic dot-product bound, so a wrong index or a missed block fails by orders of magnitude.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import mlpfast._core as core
from mlpfast.reference import ACTIVATIONS

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ISAS = core.available_isas()
DTYPES = [np.float32, np.float64]
FORMS = [(False, False), (False, True), (True, False), (True, True)]
FORM_IDS = ["NN", "NT", "TN", "TT"]
EPILOGUES = ["identity", "logistic", "tanh", "relu", "leaky_relu", "softplus"]


@pytest.fixture(params=ISAS)
def isa(request):
    before = core.isa()
    core.set_isa(request.param)
    yield request.param
    core.set_isa(before)


def operands(rng, m, k, n, trans_a, trans_b, dtype):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def reference(a, b, trans_a, trans_b, alpha=1.0, beta=0.0, c=None, bias=None, act=None):
    """Returns (expected, error bound per element), both float64."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    opa, opb = (a64.T if trans_a else a64), (b64.T if trans_b else b64)
    z = alpha * (opa @ opb)
    scale = abs(alpha) * (np.abs(opa) @ np.abs(opb))
    if beta != 0.0:
        z = z + beta * c.astype(np.float64)
        scale = scale + abs(beta) * np.abs(c.astype(np.float64))
    if bias is not None:
        z = z + bias.astype(np.float64)
        scale = scale + np.abs(bias.astype(np.float64))
    k = opa.shape[1]
    eps = np.finfo(a.dtype).eps
    bound = 4 * eps * (k + 2) * scale + 4 * np.finfo(a.dtype).tiny
    if act not in (None, "identity"):
        # every epilogue activation is 1-Lipschitz: the error does not grow through it
        z = ACTIVATIONS[act][0](z)
        bound = bound + 4 * eps * np.abs(z)
    return z, bound


def check(result, expected, bound):
    err = np.abs(result.astype(np.float64) - expected)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else None
    assert np.all(err <= bound), f"error {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst}"


# Shapes that are not multiples of any tile (MR 4..8, NR 6..48) or block (KC 256, MC 96..192),
# plus the batch-size-1 shapes of the MLP and the small-path boundaries.
SHAPES = [
    (1, 1, 1),
    (2, 3, 5),
    (1, 784, 100),
    (1, 100, 10),
    (784, 1, 100),
    (100, 1, 10),
    (1, 10, 100),
    (4, 33, 49),
    (5, 4, 50),
    (5, 5, 5),
    (9, 17, 47),
    (13, 257, 97),
    (97, 513, 49),
    (200, 300, 1),
    (193, 31, 130),
    (8, 256, 48),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_forms_match_numpy(isa, shape, form, dtype):
    m, k, n = shape
    rng = np.random.default_rng(m * 10007 + k * 101 + n)
    a, b = operands(rng, m, k, n, *form, dtype)
    got = core.gemm(a, b, trans_a=form[0], trans_b=form[1])
    assert got.dtype == dtype and got.shape == (m, n)
    check(got, *reference(a, b, *form))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("act", EPILOGUES)
@pytest.mark.parametrize(
    "shape",
    [(1, 784, 100), (784, 1, 100), (37, 300, 61), (130, 70, 200)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_bias_and_activation_epilogue(isa, shape, act, dtype):
    m, k, n = shape
    rng = np.random.default_rng(7)
    for form in FORMS:
        a, b = operands(rng, m, k, n, *form, dtype)
        bias = rng.standard_normal(n).astype(dtype)
        got = core.gemm(a, b, trans_a=form[0], trans_b=form[1], bias=bias, activation=act)
        check(got, *reference(a, b, *form, bias=bias, act=act))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (-1.5, 0.0), (2.0, 0.25)])
@pytest.mark.parametrize(
    "shape",
    [(1, 50, 30), (3, 2, 70), (50, 600, 75), (300, 200, 130)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_alpha_beta(isa, shape, alpha, beta, dtype):
    m, k, n = shape
    rng = np.random.default_rng(11)
    for form in FORMS:
        a, b = operands(rng, m, k, n, *form, dtype)
        c = rng.standard_normal((m, n)).astype(dtype)
        bias = rng.standard_normal(n).astype(dtype)
        out = c.copy()
        if beta == 0.0:
            out[...] = np.nan  # beta == 0: C is write-only, NaNs there must not leak
        got = core.gemm(
            a,
            b,
            trans_a=form[0],
            trans_b=form[1],
            bias=bias,
            out=out,
            alpha=alpha,
            beta=beta,
            activation="tanh",
        )
        assert got is out
        check(out, *reference(a, b, *form, alpha, beta, c, bias, "tanh"))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_empty_and_k_zero(isa, dtype):
    rng = np.random.default_rng(3)
    for m, n in [(0, 5), (5, 0), (0, 0)]:
        got = core.gemm(np.ones((m, 4), dtype), np.ones((4, n), dtype))
        assert got.shape == (m, n)
    # k == 0: C = act(beta * C + bias), for small and large outputs
    for m, n in [(1, 7), (300, 200)]:
        c = rng.standard_normal((m, n)).astype(dtype)
        bias = rng.standard_normal(n).astype(dtype)
        out = c.copy()
        core.gemm(
            np.ones((m, 0), dtype),
            np.ones((0, n), dtype),
            out=out,
            beta=0.5,
            bias=bias,
            activation="relu",
        )
        np.testing.assert_array_equal(out, np.maximum(dtype(0.5) * c + bias, 0))
        out[...] = np.nan
        core.gemm(np.ones((m, 0), dtype), np.ones((0, n), dtype), out=out, bias=bias)
        np.testing.assert_array_equal(out, np.broadcast_to(bias, (m, n)))
    # alpha == 0 follows BLAS: op(A) op(B) is not formed, so an inf in A does not give NaN
    a = np.full((20, 30), np.inf, dtype)
    out = np.ones((20, 10), dtype)
    core.gemm(a, np.ones((30, 10), dtype), out=out, alpha=0.0, beta=2.0)
    np.testing.assert_array_equal(out, 2.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_small_path_every_width(isa, dtype):
    # the unpacked path (m <= 4 or k <= 4) covers n in vectors, a vector overlapping the last
    # full one, narrow vectors and scalars: every n up to 4 zmm of float32, with C read (beta)
    rng = np.random.default_rng(12)
    for m, k in [(1, 9), (3, 40), (50, 2)]:
        for n in range(1, 72):
            for form in FORMS:
                a, b = operands(rng, m, k, n, *form, dtype)
                c = rng.standard_normal((m, n)).astype(dtype)
                bias = rng.standard_normal(n).astype(dtype)
                out = c.copy()
                core.gemm(
                    a, b, trans_a=form[0], trans_b=form[1], bias=bias, out=out, alpha=-0.5, beta=1.5
                )
                check(out, *reference(a, b, *form, -0.5, 1.5, c, bias))


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(0, 70),
    k=st.integers(0, 300),
    n=st.integers(0, 110),
    form=st.sampled_from(FORMS),
    dtype=st.sampled_from(DTYPES),
    beta=st.sampled_from([0.0, 1.0, -0.5]),
    use_bias=st.booleans(),
    act=st.sampled_from(EPILOGUES),
    isa_name=st.sampled_from(ISAS),
    seed=st.integers(0, 2**31),
)
def test_property_random_shapes(m, k, n, form, dtype, beta, use_bias, act, isa_name, seed):
    rng = np.random.default_rng(seed)
    a, b = operands(rng, m, k, n, *form, dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype) if use_bias else None
    out = c.copy()
    before = core.isa()
    core.set_isa(isa_name)
    try:
        core.gemm(
            a,
            b,
            trans_a=form[0],
            trans_b=form[1],
            bias=bias,
            activation=act,
            out=out,
            alpha=0.75,
            beta=beta,
        )
    finally:
        core.set_isa(before)
    check(out, *reference(a, b, *form, 0.75, beta, c, bias, act))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_strided_and_transposed_views(isa, dtype):
    rng = np.random.default_rng(5)
    a0 = rng.standard_normal((60, 90)).astype(dtype)
    b0 = rng.standard_normal((90, 70)).astype(dtype)
    views_a = {
        "F-order": np.asfortranarray(a0),  # transposed buffer, no copy
        "row-step": rng.standard_normal((120, 90)).astype(dtype)[::2],  # lda = 2 * 90
        "col-slice": rng.standard_normal((60, 200)).astype(dtype)[:, 10:100],
        "col-step": rng.standard_normal((60, 180)).astype(dtype)[:, ::2],  # copied
        "reversed": a0[::-1],
        ".T of C": np.ascontiguousarray(a0.T).T,
    }
    views_b = {
        "C": b0,
        "F-order": np.asfortranarray(b0),
        "slice": rng.standard_normal((90, 99)).astype(dtype)[:, 7:77],
        "reversed": b0[:, ::-1],
    }
    for a in views_a.values():
        for b in views_b.values():
            for ta, tb in FORMS:
                aa, bb = (a.T if ta else a), (b.T if tb else b)
                got = core.gemm(aa, bb, trans_a=ta, trans_b=tb)
                check(got, *reference(aa, bb, ta, tb))


def test_transposed_slice_with_leading_dimension():
    # a transposed slice of a wider buffer: read in place with ld = 300 > its 150 columns
    rng = np.random.default_rng(6)
    base = rng.standard_normal((200, 300))
    a = base[:150, :100].T  # 100 x 150, F-ordered with ld = 300
    b = rng.standard_normal((150, 40))
    check(core.gemm(a, b), *reference(a, b, False, False))


# ---------------------------------------------------------------------------------------------
# Determinism: threads split M and N only, so the bits do not depend on the thread count.

DET_SHAPES = [(300, 400, 500), (257, 300, 131), (1000, 64, 37), (9, 1000, 1000), (700, 900, 6)]


def _det_case(shape, form, dtype, seed):
    m, k, n = shape
    rng = np.random.default_rng(seed)
    a, b = operands(rng, m, k, n, *form, dtype)
    bias = rng.standard_normal(n).astype(dtype)
    return a, b, bias


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_bitwise_identical_for_threadpool_limits(isa, dtype):
    for i, shape in enumerate(DET_SHAPES):
        for form in FORMS:
            a, b, bias = _det_case(shape, form, dtype, i)
            results = []
            for limit in (1, 2, None):
                if limit is None:
                    got = core.gemm(
                        a, b, trans_a=form[0], trans_b=form[1], bias=bias, activation="logistic"
                    )
                else:
                    with threadpool_limits(limits=limit, user_api="openmp"):
                        assert core.max_threads() == limit
                        got = core.gemm(
                            a, b, trans_a=form[0], trans_b=form[1], bias=bias, activation="logistic"
                        )
                results.append(got)
            for r in results[1:]:
                np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_bitwise_identical_wherever_an_element_falls(isa, dtype):
    # An element of C must come out the same whichever micro-tile (full, edge, buffered) computes
    # it, since threads cut C at different places: compare C with products of row and column
    # slices of the operands, which shift every element to other tile positions.
    # k = 300 > KC: two K blocks, so C is read back; alpha and beta not 1.
    rng = np.random.default_rng(13)
    m, k, n = 70, 300, 150
    for (ta, tb), alpha, beta in zip(FORMS * 2, [1.0] * 4 + [1.25] * 4, [0.0, 0.5] * 4):
        a, b = operands(rng, m, k, n, ta, tb, dtype)
        bias = rng.standard_normal(n).astype(dtype)
        c = rng.standard_normal((m, n)).astype(dtype)
        full = c.copy()
        core.gemm(a, b, trans_a=ta, trans_b=tb, bias=bias, out=full, alpha=alpha, beta=beta)
        for i0, j0 in [(0, 1), (0, 5), (0, 17), (3, 0), (9, 33), (8, 48), (13, 7)]:
            ai = a[:, i0:] if ta else a[i0:]
            bj = b[j0:] if tb else b[:, j0:]
            part = c[i0:, j0:].copy()
            core.gemm(
                ai, bj, trans_a=ta, trans_b=tb, bias=bias[j0:], out=part, alpha=alpha, beta=beta
            )
            np.testing.assert_array_equal(part, full[i0:, j0:])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_narrow_outputs_equal_the_wide_products_columns(isa, dtype):
    # Outputs narrower than a packed tile (a classifier's 10 classes, a regressor's 1 to 3
    # outputs; NN and TN) take their own path (gemm_narrow.h), which must give each element the
    # bits the packed path gives it: compare with the same columns of a product 64 columns wider
    # (packed), over 1 and 2 threads, K in one and in several blocks, every epilogue option.
    rng = np.random.default_rng(21)
    for m, k, n in [(37, 64, 10), (1500, 600, 10), (257, 100, 1), (64, 33, 3), (45, 20, 47)]:
        for ta in (False, True):
            a, b = operands(rng, m, k, n + 64, ta, False, dtype)
            bias = rng.standard_normal(n + 64).astype(dtype)
            c = rng.standard_normal((m, n + 64)).astype(dtype)
            for alpha, beta, act in [(1.0, 0.0, None), (0.75, 0.5, "relu"), (1.0, 1.0, "tanh")]:
                wide = c.copy()
                core.gemm(
                    a, b, trans_a=ta, bias=bias, out=wide, alpha=alpha, beta=beta, activation=act
                )
                for threads in (1, 2):
                    narrow = c[:, :n].copy()
                    with threadpool_limits(threads):
                        core.gemm(
                            a,
                            np.ascontiguousarray(b[:, :n]),
                            trans_a=ta,
                            bias=bias[:n],
                            out=narrow,
                            alpha=alpha,
                            beta=beta,
                            activation=act,
                        )
                    np.testing.assert_array_equal(narrow, wide[:, :n])


_DET_SCRIPT = r"""
import hashlib, json, sys
import numpy as np
import mlpfast._core as core
shapes = %r
out = {}
for isa in core.available_isas():
    core.set_isa(isa)
    h = hashlib.sha256()
    for i, (m, k, n) in enumerate(shapes):
        for ta in (False, True):
            for tb in (False, True):
                for dt in (np.float32, np.float64):
                    rng = np.random.default_rng(i)
                    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dt)
                    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dt)
                    c = rng.standard_normal((m, n)).astype(dt)
                    core.gemm(a, b, trans_a=ta, trans_b=tb, out=c, beta=0.5, alpha=1.25)
                    h.update(c.tobytes())
    out[isa] = h.hexdigest()
out["threads"] = core.max_threads()
print(json.dumps(out))
"""


def test_bitwise_identical_for_omp_num_threads():
    script = _DET_SCRIPT % (DET_SHAPES,)
    runs = {}
    for threads in ("1", "2", "16"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        env.pop("MLPFAST_ISA", None)
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        runs[threads] = json.loads(proc.stdout.strip().splitlines()[-1])
        assert runs[threads].pop("threads") == int(threads)
    assert runs["1"] == runs["2"] == runs["16"]


def test_concurrent_calls_from_python_threads():
    # Python threads calling gemm at once (each releases the GIL, each has its own packing
    # buffers and OpenMP team): results stay exact.
    import threading

    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 250))
    want = core.gemm(a, b)
    got = [None] * 4

    def work(i):
        got[i] = core.gemm(a, b)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for g in got:
        np.testing.assert_array_equal(g, want)


# ---------------------------------------------------------------------------------------------
# ISA selection from the environment


def _run_env(isa_name, code):
    env = dict(os.environ, MLPFAST_ISA=isa_name)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_env_selects_generic():
    proc = _run_env(
        "generic",
        "import mlpfast._core as c, numpy as np; "
        "a = np.arange(12.).reshape(3, 4); "
        "assert np.array_equal(c.gemm(a, a, trans_b=True), a @ a.T); "
        "print(c.isa())",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "generic"


def test_env_unknown_isa_fails_import_cleanly():
    proc = _run_env("sse9000", "import mlpfast")
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr and "sse9000" in proc.stderr
    assert "Segmentation" not in proc.stderr


def test_set_isa_rejects_unknown():
    with pytest.raises(ValueError, match="unknown or not supported"):
        core.set_isa("sse9000")


# ---------------------------------------------------------------------------------------------
# Bad input


def test_bad_input_raises():
    a = np.ones((3, 4))
    b = np.ones((4, 5))
    with pytest.raises(ValueError, match="2-D"):
        core.gemm(np.ones(4), b)
    with pytest.raises(ValueError, match="2-D"):
        core.gemm(a, np.ones((4, 5, 1)))
    with pytest.raises(ValueError, match="inner dimensions"):
        core.gemm(a, np.ones((5, 5)))
    with pytest.raises(ValueError, match="inner dimensions"):
        core.gemm(a, b, trans_a=True)
    with pytest.raises(TypeError, match="same dtype"):
        core.gemm(a, b.astype(np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        core.gemm(a.astype(np.int64), b.astype(np.int64))
    with pytest.raises(TypeError, match="ndarray"):
        core.gemm([[1.0]], [[1.0]])
    with pytest.raises(ValueError, match="C-contiguous"):
        core.gemm(a, b, out=np.ones((5, 3)).T)
    with pytest.raises(ValueError, match="C-contiguous"):
        core.gemm(a, b, out=np.ones((3, 10))[:, ::2])
    ro = np.ones((3, 5))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        core.gemm(a, b, out=ro)
    with pytest.raises(ValueError, match="shape"):
        core.gemm(a, b, out=np.ones((3, 4)))
    with pytest.raises(TypeError, match="dtype"):
        core.gemm(a, b, out=np.ones((3, 5), np.float32))
    sq = np.ones((4, 4))
    with pytest.raises(ValueError, match="share memory"):
        core.gemm(sq, np.ones((4, 4)), out=sq)
    buf = np.ones(40)
    with pytest.raises(ValueError, match="share memory"):  # partial overlap of a and out
        core.gemm(buf[:16].reshape(4, 4), np.ones((4, 4)), out=buf[8:24].reshape(4, 4))
    with pytest.raises(ValueError, match="share memory"):
        core.gemm(np.ones((4, 4)), sq, out=sq)
    with pytest.raises(ValueError, match="bias"):
        core.gemm(a, b, bias=np.ones(4))
    with pytest.raises(TypeError, match="bias dtype"):
        core.gemm(a, b, bias=np.ones(5, np.float32))
    with pytest.raises(ValueError, match="activation"):
        core.gemm(a, b, activation="prelu")
    with pytest.raises(ValueError, match="activation"):
        core.gemm(a, b, activation="swish")
    with pytest.raises(ValueError, match="beta"):
        core.gemm(a, b, beta=1.0)


# ---------------------------------------------------------------------------------------------
# Symbol hygiene: each kernel source compiled for each ISA level must define nothing weak or
# vague (std:: templates, inline functions with external linkage) that the linker could merge
# across levels, and export only its register_* functions (docs/kernels.md).

ROOT = Path(__file__).resolve().parents[1]
CMAKELISTS = ROOT / "CMakeLists.txt"


def _cmake_build_config():
    """What CMakeLists.txt compiles the kernel objects with: the common flags, the kernel
    sources and each level's flags (its mlpfast_isa_level(name flags...) entries). Empty when
    the sources are not here (an installed package)."""
    if not CMAKELISTS.exists():
        return [], [], {}
    text = re.sub(r"#[^\n]*", "", CMAKELISTS.read_text())  # comments out

    def cmake_set(var):
        m = re.search(r"set\(\s*" + var + r"\s+([^)]*)\)", text)
        assert m, f"CMakeLists.txt has no set({var} ...)"
        return m.group(1).split()

    levels = {
        m.group(1): m.group(2).split()
        for m in re.finditer(r"\bmlpfast_isa_level\(\s*(\w+)([^)]*)\)", text)
    }
    return cmake_set("MLPFAST_COMMON_FLAGS"), cmake_set("MLPFAST_KERNEL_SOURCES"), levels


COMMON_FLAGS, KERNEL_SOURCES, ISA_FLAGS = _cmake_build_config()


def test_cmake_levels_are_the_compiled_levels():
    if not ISA_FLAGS:
        pytest.skip("CMakeLists.txt not found (tests run without the sources)")
    assert set(core.ISA_LEVELS) <= set(ISA_FLAGS)
    assert list(ISA_FLAGS)[: len(core.ISA_LEVELS)] == list(core.ISA_LEVELS)  # worst to best
    assert KERNEL_SOURCES and COMMON_FLAGS


def _compiler():
    for name in ("c++", "g++", "clang++"):
        if shutil.which(name):
            return name
    return None


@pytest.mark.skipif(shutil.which("nm") is None or _compiler() is None, reason="needs nm and c++")
@pytest.mark.skipif(not KERNEL_SOURCES, reason="needs the sources (CMakeLists.txt, csrc/)")
@pytest.mark.parametrize("level", core.ISA_LEVELS)
@pytest.mark.parametrize("source", KERNEL_SOURCES)
def test_kernel_objects_have_no_vague_symbols(tmp_path, level, source):
    if level not in ISA_FLAGS:
        pytest.skip(f"level {level} is not in this CMakeLists.txt")
    obj = tmp_path / f"{level}.o"
    # The project's flags (CMakeLists.txt). At -O0, <cmath>'s inline float overloads
    # (std::exp(float), ...) used by activations.h become weak symbols as well.
    cmd = [
        _compiler(),
        "-std=c++17",
        "-fopenmp",
        *COMMON_FLAGS,
        *ISA_FLAGS[level],
        f"-DMLPFAST_ISA_NS={level}",
        "-c",
        str(ROOT / source),
        "-o",
        str(obj),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 and "fopenmp" in proc.stderr:
        cmd.remove("-fopenmp")
        proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    syms = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True, check=True)
    bad, exported = [], []
    for line in syms.stdout.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) < 3:
            continue  # undefined: "U name"
        kind, name = parts[1], parts[2]
        if name.startswith("DW.ref.__gxx_personality"):
            continue  # the unwinder's personality pointer: the same bytes in every object
        if kind in "WVvwui":
            bad.append(line)
        elif kind.isupper() and kind not in "U":
            exported.append(name)
    assert not bad, "weak/vague symbols in a per-ISA object:\n" + "\n".join(bad)
    for name in exported:
        assert name.startswith(f"mlpfast::{level}::register_"), f"exported: {name}"


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm")
def test_extension_exports_no_kernel_symbols():
    proc = subprocess.run(
        ["nm", "-D", "-C", "--defined-only", core.__file__], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(proc.stderr)
    # register_* are the per-ISA objects' only external symbols (they are unique per level)
    leaked = [
        ln for ln in proc.stdout.splitlines() if "mlpfast::" in ln and "::register_" not in ln
    ]
    assert not leaked, "\n".join(leaked)
