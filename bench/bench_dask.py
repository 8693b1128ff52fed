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

    python -m pytest bench/bench_dask.py    # ~1 min on 2 quiet cores
"""

import warnings

import numpy as np
import pytest

from mlpfast import MLPClassifier

from _peers import synthetic_classification

ROWS, EPOCHS, ROUNDS = 10_000, 5, 5
CONFIGS = {  # name: (features, hidden layers)
    "64-100-10": (64, (100,)),  # the digits' size: the cheapest epochs, the most overhead
    "784-100-10": (784, (100,)),  # MNIST's size
}
METHODS = ["fit", "partial_fit", "incremental"]

_results = {}  # (config, method) -> median samples/s


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
    classes = np.unique(y)
    if method == "fit":
        return lambda: _estimator(hidden).fit(X, y)
    model = _estimator(hidden).partial_fit(X[:10], y[:10], classes=classes)
    if method == "partial_fit":

        def run():
            for _ in range(EPOCHS):
                model.partial_fit(X, y)

        return run
    pytest.importorskip("dask_ml", reason="dask-ml is not installed")
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


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_block_throughput(benchmark, blocks, config, method):
    X, y = blocks[config]
    run = _runner(method, CONFIGS[config][1], X, y)
    benchmark.group = f"dask: {config} f64, {EPOCHS} epochs of a {ROWS}-row block"
    benchmark.extra_info.update(library="mlpfast", method=method, samples=ROWS * EPOCHS)

    def quiet():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run()

    benchmark.pedantic(quiet, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        _results[(config, method)] = ROWS * EPOCHS / benchmark.stats.stats.median


class _Summary:
    def pytest_terminal_summary(self, terminalreporter):
        if not _results:
            return
        tr = terminalreporter
        tr.section("dask: samples/s per method, and the ratio to fit (goal: partial_fit >= 0.95)")
        for config in CONFIGS:
            fit = _results.get((config, "fit"))
            cells = []
            for method in METHODS:
                rate = _results.get((config, method))
                if rate:
                    ratio = f" ({rate / fit:.3f}x)" if fit and method != "fit" else ""
                    cells.append(f"{method} {rate:,.0f}{ratio}")
            tr.write_line(f"{config:12s} " + ", ".join(cells))
        tr.write_line(f"medians of {ROUNDS} rounds of {EPOCHS} epochs on {ROWS:,} rows")


@pytest.fixture(scope="session", autouse=True)
def _dask_summary(request):
    plugin = _Summary()
    if not request.config.pluginmanager.is_registered(plugin):
        request.config.pluginmanager.register(plugin, "bench_dask_summary")
    yield
