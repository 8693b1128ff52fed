"""Streaming blocks (issue 13, part 3): partial_fit on 10,000-row blocks against fit on the
same rows, in samples per second, and the same through dask_ml's Incremental (skipped when
dask-ml is not installed).

Per network (float64, Adam, the default batch of 200), EPOCHS passes over one 10,000-row block:

    fit          one fit(X, y) of EPOCHS epochs (max_iter=EPOCHS, no early stop)
    partial_fit  EPOCHS calls partial_fit(X, y) (the first call, initialisation, untimed)
    incremental  dask_ml Incremental.partial_fit over a dask array of EPOCHS copies of the
                 block (in memory; the synchronous scheduler: dask's per-task cost, no cluster)

The summary prints samples/s and the ratio to fit (goal: partial_fit / fit >= 0.95, i.e. the
per-call cost of partial_fit, validation and label encoding, is small beside an epoch).

    python -m pytest bench/bench_dask.py    # ~1 min on 2 quiet cores, ~5 min under load
"""

import time
import warnings

import numpy as np
import pytest

from mlpfast import MLPClassifier

from _peers import synthetic_classification

ROWS, EPOCHS, ROUNDS = 10_000, 3, 5
CONFIGS = {  # name: (features, hidden layers)
    "64-100-10": (64, (100,)),  # the digits' size: the cheapest epochs, the most overhead
    "784-100-10": (784, (100,)),  # MNIST's size
}
METHODS = ["fit", "partial_fit", "incremental"]

_results = {}  # (config, method) -> (median samples/s, median ratio to fit)


@pytest.fixture(scope="module")
def blocks():
    return {
        name: synthetic_classification(ROWS, n_features=features, dtype=np.float64, seed=7)
        for name, (features, _) in CONFIGS.items()
    }


def _estimator(hidden):
    return MLPClassifier(
        hidden, max_iter=EPOCHS, tol=0.0, n_iter_no_change=EPOCHS + 1, random_state=0
    )


def _runner(method, hidden, X, y):
    """The method's run (EPOCHS passes over the block), or None without dask-ml."""
    classes = np.unique(y)
    if method == "fit":
        return lambda: _estimator(hidden).fit(X, y)
    model = _estimator(hidden).partial_fit(X[:10], y[:10], classes=classes)
    if method == "partial_fit":

        def run():
            for _ in range(EPOCHS):
                model.partial_fit(X, y)

        return run
    try:
        import dask_ml  # noqa: F401
    except ImportError:
        return None  # dask-ml is not installed: this method is left out
    import dask
    import dask.array as da
    from dask_ml.wrappers import Incremental

    X_blocks = da.concatenate([da.from_array(X, chunks=X.shape)] * EPOCHS)
    y_blocks = da.concatenate([da.from_array(y, chunks=y.shape)] * EPOCHS)
    incremental = Incremental(model, shuffle_blocks=False)
    incremental.estimator_ = model  # continue from the initialised model, as partial_fit does

    def run():
        with dask.config.set(scheduler="synchronous"):
            incremental.partial_fit(X_blocks, y_blocks, classes=classes)

    return run


@pytest.mark.parametrize("config", list(CONFIGS))
def test_block_throughput(benchmark, blocks, config):
    """One round: each method once, back to back (interleaved, so that a change of load on a
    shared machine hits all three alike); the summary takes per-round ratios."""
    X, y = blocks[config]
    runs = {method: _runner(method, CONFIGS[config][1], X, y) for method in METHODS}
    runs = {method: run for method, run in runs.items() if run is not None}
    times = {method: [] for method in runs}
    benchmark.group = f"dask: {config} f64, {EPOCHS} epochs of a {ROWS}-row block, each method"
    benchmark.extra_info.update(library="mlpfast", samples=ROWS * EPOCHS * len(METHODS))

    def one_round():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for method, run in runs.items():
                start = time.perf_counter()
                run()
                times[method].append(time.perf_counter() - start)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    for method in runs:
        rounds = np.array(times[method][-ROUNDS:])  # the warm-up round left out
        ratio = np.array(times["fit"][-ROUNDS:]) / rounds
        _results[(config, method)] = (ROWS * EPOCHS / np.median(rounds), np.median(ratio))


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    """Prints the ratios when the module's benchmarks are done."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if not _results or reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():  # straight to the terminal
        _write_summary(reporter)


def _write_summary(reporter):
    reporter.write_line("")
    reporter.write_sep("-", "dask: samples/s, and the ratio to fit (goal: partial_fit >= 0.95)")
    for config in CONFIGS:
        cells = []
        for method in METHODS:
            if (config, method) in _results:
                rate, ratio = _results[(config, method)]
                cells.append(
                    f"{method} {rate:,.0f}" + (f" ({ratio:.3f}x)" if method != "fit" else "")
                )
        if cells:
            reporter.write_line(f"{config:12s} " + ", ".join(cells))
    reporter.write_line(
        f"medians of {ROUNDS} interleaved rounds of {EPOCHS} epochs on {ROWS:,} rows; "
        "(x): the median over rounds of fit's time / this method's time"
    )
