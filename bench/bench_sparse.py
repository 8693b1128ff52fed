"""Sparse input: mlpfast vs scikit-learn on a synthetic text-like problem (issue 12).

The problem: n rows x 100,000 features at 0.1% density (about 100 nonzeros per row, columns
drawn uniformly, values in [0.5, 1.5), as tf-idf-like weights), 20 classes, one hidden layer of
100 ReLU units, Adam, batch 200: the shape of a bag-of-words classifier. Both libraries get the
same scipy CSR matrix; each epoch is one ``partial_fit`` over all rows (shuffle, every batch,
the bookkeeping). Most of an epoch is the optimizer's pass over the 10M first-layer weights
per batch (Adam's moments decay for every weight, touched or not), which both libraries do.

    python bench/bench_sparse.py [--rows N] [--rounds R] [--no-memory]

prints the median seconds per epoch, float32 and float64, side by side (rounds interleaved in
one process, so the ratio is what counts on a shared machine), then the peak resident memory of
one fit epoch, each library in a fresh process (/proc/self/status VmHWM after a reset), next to
X's own size and the size X would have densified. ``--rows`` scales the problem (the issue
names 50,000; per-epoch time grows linearly with the rows, the ratio does not change).

    python -m pytest bench/bench_sparse.py     # the same epochs as a pytest-benchmark suite

(rows from MLPFAST_BENCH_SPARSE_ROWS, default 1,000, so that ``pytest bench`` stays short.)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

N_FEATURES = 100_000
DENSITY = 0.001
N_CLASSES = 20
HIDDEN = (100,)
BATCH = 200
LIBRARIES = ["mlpfast", "sklearn"]
DTYPES = ["float32", "float64"]


def text_like(n_rows, dtype="float64", seed=0):
    """The synthetic CSR problem (X, y); labels from a sparse linear teacher, so learnable."""
    rng = np.random.default_rng(seed)
    per_row = rng.poisson(N_FEATURES * DENSITY, n_rows)
    indptr = np.concatenate([[0], np.cumsum(per_row)])
    indices = rng.integers(0, N_FEATURES, indptr[-1]).astype(np.int32)
    data = rng.random(indptr[-1]) + 0.5
    X = sp.csr_matrix((data, indices, indptr), shape=(n_rows, N_FEATURES))
    X.sum_duplicates()
    teacher = rng.standard_normal((N_FEATURES, N_CLASSES))
    y = np.asarray((X @ teacher).argmax(axis=1)).ravel()
    return X.astype(dtype), y


def estimator(library):
    if library == "mlpfast":
        from mlpfast import MLPClassifier
    else:
        from sklearn.neural_network import MLPClassifier
    return MLPClassifier(HIDDEN, solver="adam", batch_size=BATCH, random_state=0)


def epoch_runner(library, X, y):
    """A callable running one epoch (partial_fit over all of X); set-up done, untimed."""
    model = estimator(library)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X[:BATCH], y[:BATCH], classes=np.arange(N_CLASSES))
    return lambda: model.partial_fit(X, y)


# --- pytest-benchmark suite -------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_epoch(benchmark, dtype, library):
    rows = int(os.environ.get("MLPFAST_BENCH_SPARSE_ROWS", "1000"))
    X, y = text_like(rows, dtype)
    epoch = epoch_runner(library, X, y)
    benchmark.group = f"sparse: epoch of {rows} x {N_FEATURES} at {DENSITY:.1%}, 100-20, {dtype}"
    benchmark.extra_info.update(library=library, samples=rows, nnz=X.nnz)
    benchmark.pedantic(epoch, rounds=2, iterations=1, warmup_rounds=0)


# --- standalone report: time side by side, then memory ------------------------------------------

MEMORY_CHILD = r"""
import json, sys, warnings
sys.path.insert(0, {bench!r})
import numpy as np
from bench_sparse import text_like, estimator

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)

X, y = text_like({rows}, {dtype!r})
model = estimator({library!r})
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM (peak RSS) to the current RSS
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model.partial_fit(X, y, classes=np.arange({classes}))  # one epoch, initialisation included
print(json.dumps(dict(rss_before=before, peak=status("VmHWM:"))))
"""


def peak_memory(library, rows, dtype):
    code = MEMORY_CHILD.format(
        bench=os.path.dirname(os.path.abspath(__file__)),
        rows=rows,
        dtype=dtype,
        library=library,
        classes=N_CLASSES,
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{library}: memory run failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    import mlpfast._core as core

    print(
        f"sparse: {args.rows} x {N_FEATURES}, density {DENSITY:.1%}, {N_CLASSES} classes, "
        f"hidden {HIDDEN}, Adam, batch {BATCH}; mlpfast ISA {core.isa()}, "
        f"{core.max_threads()} threads"
    )
    result = dict(rows=args.rows, features=N_FEATURES, density=DENSITY, time={}, memory={})
    for dtype in DTYPES:
        X, y = text_like(args.rows, dtype)
        epochs = {lib: epoch_runner(lib, X, y) for lib in LIBRARIES}
        times = {lib: [] for lib in LIBRARIES}
        for _ in range(args.rounds):  # interleaved: both see the same machine load
            for lib in LIBRARIES:
                t0 = time.perf_counter()
                epochs[lib]()
                times[lib].append(time.perf_counter() - t0)
        med = {lib: statistics.median(times[lib]) for lib in LIBRARIES}
        result["time"][dtype] = med
        print(
            f"  {dtype}: epoch median mlpfast {med['mlpfast']:8.2f} s, sklearn "
            f"{med['sklearn']:8.2f} s  -> sklearn/mlpfast = {med['sklearn'] / med['mlpfast']:.2f}x"
            f"  (nnz {X.nnz}, rounds {args.rounds})"
        )
    if not args.no_memory:
        for dtype in DTYPES:
            item = np.dtype(dtype).itemsize
            X_bytes = (item + 4) * int(args.rows * N_FEATURES * DENSITY) + 4 * (args.rows + 1)
            dense = item * args.rows * N_FEATURES
            runs = {lib: peak_memory(lib, args.rows, dtype) for lib in LIBRARIES}
            result["memory"][dtype] = dict(runs, X_bytes=X_bytes, dense_bytes=dense)
            mib = {lib: (r["peak"] / 2**20, (r["peak"] - r["rss_before"]) / 2**20)
                   for lib, r in runs.items()}  # fmt: skip
            line = ", ".join(
                f"{lib} peak {peak:7.0f} MiB (+{rise:.0f} during the fit)"
                for lib, (peak, rise) in mib.items()
            )
            print(
                f"  {dtype} memory: {line}; X as CSR ~{X_bytes / 2**20:.0f} MiB, "
                f"densified {dense / 2**20:.0f} MiB"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
