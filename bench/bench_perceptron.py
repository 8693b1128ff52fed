"""mlpfast.Perceptron against scikit-learn's Perceptron: fit time, side by side in one run.

Two problems (issue 12's goals: >= 3x on the dense one, at least as fast on the sparse one):
- dense: 100,000 x 784, 10 classes, float64 (the lecture-sized synthetic blobs of _peers);
- sparse: a text-like CSR set, 50,000 x 100,000, ~100 words per row (0.1%), 20 classes.

Both fits run a fixed number of epochs (tol=None) and produce the same coef_ (bitwise; see
tests/test_perceptron.py). "mlpfast-shared_order" is Perceptron(shared_order=True): one order
for all classes, each row read once per epoch (not scikit-learn's model). Each problem is
timed at n_jobs=1 for every library, and at n_jobs=-1 (scikit-learn: joblib threads over the
classes; mlpfast: OpenMP threads over them). The terminal summary prints scikit-learn's median
over each mlpfast variant's per case.
"""

import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Perceptron as SkPerceptron

from mlpfast import Perceptron

import _peers as peers

EPOCHS = 2


def text_like(n=50_000, d=100_000, k=20, words=100, seed=0):
    """Bag of words: each row draws half its words from its class's block of the vocabulary."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    own = rng.integers(0, d // k, (n, words // 2)) + (y * (d // k))[:, None]
    common = rng.integers(0, d, (n, words - words // 2))
    cols = np.concatenate([own, common], axis=1).ravel()
    rows = np.repeat(np.arange(n), words)
    X = sp.csr_matrix((rng.integers(1, 4, n * words).astype(np.float64), (rows, cols)), (n, d))
    X.sum_duplicates()
    return X, y


PROBLEMS = ["dense 100000x784 10 classes", "sparse text 50000x100000 20 classes"]


@pytest.fixture(scope="module")
def problems():
    X, y = peers.synthetic_classification(100_000, dtype=np.float64, seed=0)
    return dict(zip(PROBLEMS, [(X, y), text_like()]))


@pytest.mark.parametrize("n_jobs", [1, -1], ids=["n_jobs=1", "n_jobs=-1"])
@pytest.mark.parametrize("library", ["sklearn", "mlpfast", "mlpfast-shared_order"])
@pytest.mark.parametrize("problem", PROBLEMS)
def test_perceptron_fit(benchmark, problems, problem, library, n_jobs):
    X, y = problems[problem]
    cls = SkPerceptron if library == "sklearn" else Perceptron
    extra = {"shared_order": True} if library == "mlpfast-shared_order" else {}
    benchmark.group = f"perceptron: fit {EPOCHS} epochs, {problem}, n_jobs={n_jobs}"
    benchmark.extra_info.update(library=library, n_jobs=n_jobs, ratio_vs="sklearn")

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = cls(max_iter=EPOCHS, tol=None, n_jobs=n_jobs, random_state=0, **extra)
            return clf.fit(X, y)

    clf = benchmark.pedantic(fit, rounds=3, iterations=1, warmup_rounds=0)
    assert clf.n_iter_ == EPOCHS


@pytest.mark.parametrize("problem", PROBLEMS)
def test_perceptron_ratio_interleaved(benchmark, problems, problem):
    """The same fits alternated (scikit-learn's default, mlpfast at n_jobs=1, mlpfast
    shared_order at n_jobs=1, mlpfast's default n_jobs=None: OpenMP's threads over the classes;
    and again, three times), so that a change of load on a shared machine hits every library
    alike. Wall and CPU (process) seconds, medians; the ratios go to extra_info and the summary.
    (CPU seconds of a threaded fit add up its threads: compare its wall time, on a quiet
    machine.)"""
    X, y = problems[problem]
    fits = {
        "sklearn": lambda: SkPerceptron(max_iter=EPOCHS, tol=None, random_state=0),
        "mlpfast": lambda: Perceptron(max_iter=EPOCHS, tol=None, n_jobs=1, random_state=0),
        "mlpfast-shared_order": lambda: Perceptron(
            max_iter=EPOCHS, tol=None, n_jobs=1, random_state=0, shared_order=True
        ),
        "mlpfast-n_jobs=None": lambda: Perceptron(max_iter=EPOCHS, tol=None, random_state=0),
    }
    wall = {name: [] for name in fits}
    cpu = {name: [] for name in fits}

    def rounds():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for _ in range(3):
                for name, make in fits.items():
                    w, c = time.perf_counter(), time.process_time()
                    make().fit(X, y)
                    wall[name].append(time.perf_counter() - w)
                    cpu[name].append(time.process_time() - c)

    benchmark.group = f"perceptron: interleaved, {problem}"
    benchmark.pedantic(rounds, rounds=1, iterations=1)
    for name in ("mlpfast", "mlpfast-shared_order", "mlpfast-n_jobs=None"):
        for kind, t in (("wall", wall), ("cpu", cpu)):
            ratio = float(np.median(t["sklearn"]) / np.median(t[name]))
            benchmark.extra_info[f"sklearn/{name} {kind}"] = round(ratio, 2)
            _INTERLEAVED[f"{problem}: sklearn/{name} ({kind} s)"] = ratio
    benchmark.extra_info.update(library="all")


_INTERLEAVED = {}


def test_zz_print_interleaved_ratios(capsys):
    """Prints the interleaved ratios (run with -s to see them, or read extra_info)."""
    with capsys.disabled():
        for key, ratio in _INTERLEAVED.items():
            print(f"\n  {key}: {ratio:.2f}x", end="")
        if _INTERLEAVED:
            print()
