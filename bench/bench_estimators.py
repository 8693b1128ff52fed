"""The estimators end to end: mlpfast's MLPClassifier vs scikit-learn's vs a PyTorch CPU loop.

- lecture: the lecture's 784-500-500-10 ReLU network, Adam (lr 1e-3), batch 100, 20,000 samples
  of synthetic 10-class float32 data: seconds per training epoch (one ``partial_fit`` over the
  data: shuffle, all batches, the between-epoch bookkeeping).
- batch1: plain SGD (no momentum, lr 0.01) with batch size 1 on 784-100-10, 2,000 samples:
  samples per second, where per-step overhead decides.

All three do the same work: alpha=0 (torch's Adam/SGD have no L2 term here), float32, the
library's default threads -- except torch at batch size 1, which runs on one thread (its fastest
setting for tiny ops: with more, thread hand-offs dominate and, on a loaded machine, explode).
torch is optional (skipped when absent). mlpfast runs on whatever backend mlpfast._engine
selected (MLPFAST_ENGINE=reference measures the NumPy reference).

Run:  python -m pytest bench/bench_estimators.py --benchmark-group-by=group
A ratio table (medians, same run) is printed at the end; the last recorded numbers are in
bench/results/report.md.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier

from mlpfast import MLPClassifier, _engine

from _peers import TorchLoop, synthetic_classification, torch_available

LIBRARIES = ["mlpfast", "sklearn", "torch"]
_medians = {}  # group -> library -> median seconds


CASES = {
    "lecture": dict(
        data=(20_000, 784, 10),
        hidden=(500, 500),
        solver="adam",
        lr=1e-3,
        batch=100,
        rounds=3,
        title="estimators: epoch of 784-500-500-10, Adam, batch 100, 20000 samples f32",
    ),
    "batch1": dict(
        data=(2_000, 784, 10),
        hidden=(100,),
        solver="sgd",
        lr=0.01,
        batch=1,
        rounds=3,
        title="estimators: epoch of 784-100-10, plain SGD, batch 1, 2000 samples f32",
    ),
}


def _sklearn_like(cls, case):
    params = dict(
        hidden_layer_sizes=case["hidden"],
        solver=case["solver"],
        learning_rate_init=case["lr"],
        batch_size=case["batch"],
        alpha=0.0,
        random_state=0,
    )
    if case["solver"] == "sgd":
        params.update(momentum=0.0, nesterovs_momentum=False)
    return cls(**params)


def _epoch_sklearn_like(cls, case, X, y):
    model = _sklearn_like(cls, case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.partial_fit(X[:200], y[:200], classes=np.unique(y))  # set-up, not timed
    return lambda: model.partial_fit(X, y)


def _epoch_torch(case, X, y):
    n_classes = int(y.max()) + 1
    loop = TorchLoop((X.shape[1], *case["hidden"], n_classes), solver=case["solver"], lr=case["lr"])
    Xt, yt = loop.tensors(X, y)
    batch = case["batch"]
    generator = loop.torch.Generator().manual_seed(0)

    def epoch():
        threads = loop.torch.get_num_threads()
        if batch == 1:
            loop.torch.set_num_threads(1)
        try:
            loop.epoch(Xt, yt, batch, loop.torch.randperm(len(Xt), generator=generator))
        finally:
            loop.torch.set_num_threads(threads)

    return epoch


class _RatioTable:
    """A pytest plugin, registered by the ratio_table fixture: prints the medians side by side
    in the terminal summary (fixture teardown output would be swallowed by capturing)."""

    def pytest_terminal_summary(self, terminalreporter):
        if not _medians:
            return
        tr = terminalreporter
        tr.section(f"estimators, median time per epoch (mlpfast engine: {_engine.BACKEND})")
        for group, times in _medians.items():
            n = CASES[group]["data"][0]
            for lib in LIBRARIES:
                if lib in times:
                    ratio = times[lib] / times["mlpfast"] if "mlpfast" in times else float("nan")
                    tr.write_line(
                        f"  {group:8s} {lib:8s} {times[lib]:9.4f} s  {n / times[lib]:10.0f} "
                        f"samples/s   {lib}/mlpfast time = {ratio:6.2f}x"
                    )


@pytest.fixture(scope="module")
def ratio_table(request):
    plugins = request.config.pluginmanager
    if not plugins.has_plugin("mlpfast-estimator-ratios"):
        plugins.register(_RatioTable(), "mlpfast-estimator-ratios")
    return _medians


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("group", list(CASES))
def test_epoch(benchmark, ratio_table, group, library):
    case = CASES[group]
    n, n_features, n_classes = case["data"]
    X, y = synthetic_classification(n, n_features, n_classes)
    if library == "torch":
        if not torch_available():
            pytest.skip("torch is not installed")
        epoch = _epoch_torch(case, X, y)
    else:
        epoch = _epoch_sklearn_like(
            MLPClassifier if library == "mlpfast" else SklearnMLPClassifier, case, X, y
        )
    benchmark.group = case["title"]
    benchmark.extra_info.update(library=library, samples=len(X), mlpfast_backend=_engine.BACKEND)
    epoch()  # warm-up: first-touch allocations, thread pools
    benchmark.pedantic(epoch, rounds=case["rounds"], iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        median = benchmark.stats.stats.median
        ratio_table.setdefault(group, {})[library] = median
        benchmark.extra_info["samples_per_s"] = len(X) / median
