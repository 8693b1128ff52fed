"""The cost of callbacks (issue 13): fits of the lecture's network (784-500-500-10, ReLU, Adam,
batch 100, float32) with no callback, with sklearn.callback.ProgressBar and with
mlpfast.callback.GradientNormMonitor, side by side.

Two measures, because a per-epoch cost of ~0.1 ms is far below the noise of a whole epoch:
- the time spent in the callback hooks themselves, per epoch (FitTasks.epoch_begin/epoch_end
  timed in the fitting thread), as a fraction of the epoch without callbacks;
- the wall time of whole fits, alternating the three variants per round, medians (this also
  catches the ProgressBar's background rendering thread and the gradient-norm passes).

    python bench/bench_callbacks.py [--samples 20000] [--epochs 3] [--rounds 5]

or, as a pytest-benchmark suite, python -m pytest bench/bench_callbacks.py. Needs scikit-learn
>= 1.9 and rich.
"""

import argparse
import contextlib
import io
import statistics
import time
import warnings

import numpy as np
import pytest

import mlpfast
from mlpfast import _callbacks

import _peers as peers

VARIANTS = ["none", "progress", "grad_norms"]


def _callbacks_of(variant):
    if variant == "none":
        return []
    if variant == "progress":
        from sklearn.callback import ProgressBar

        return [ProgressBar()]
    from mlpfast.callback import GradientNormMonitor

    return [GradientNormMonitor()]


def _estimator(epochs):
    return mlpfast.MLPClassifier(
        peers.LECTURE_UNITS[1:-1],
        batch_size=100,
        learning_rate_init=1e-3,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        random_state=0,
    )


class HookClock:
    """Times FitTasks.epoch_begin + epoch_end (the per-epoch work callbacks add to the loop)."""

    def __init__(self):
        self.seconds, self.epochs = 0.0, 0

    @contextlib.contextmanager
    def installed(self):
        begin, end = _callbacks.FitTasks.epoch_begin, _callbacks.FitTasks.epoch_end

        def timed_begin(tasks):
            t = time.perf_counter()
            begin(tasks)
            self.seconds += time.perf_counter() - t

        def timed_end(tasks):
            t = time.perf_counter()
            stop = end(tasks)
            self.seconds += time.perf_counter() - t
            self.epochs += 1
            return stop

        _callbacks.FitTasks.epoch_begin, _callbacks.FitTasks.epoch_end = timed_begin, timed_end
        try:
            yield self
        finally:
            _callbacks.FitTasks.epoch_begin, _callbacks.FitTasks.epoch_end = begin, end


def fit_once(variant, X, y, epochs, clock=None):
    est = _estimator(epochs).set_callbacks(*_callbacks_of(variant)) if variant != "none" else None
    est = est or _estimator(epochs)
    sink = io.StringIO()  # the progress bar's output (rich writes to stdout)
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        with clock.installed() if clock else contextlib.nullcontext():
            t = time.perf_counter()
            est.fit(X, y)
            return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    X, y = peers.synthetic_classification(args.samples, dtype=np.float32, seed=2)
    fit_once("none", X[:1000], y[:1000], 1)  # warm up
    times = {v: [] for v in VARIANTS}
    clocks = {v: HookClock() for v in VARIANTS[1:]}
    for _ in range(args.rounds):
        for v in VARIANTS:
            times[v].append(fit_once(v, X, y, args.epochs, clocks.get(v)))
    base = statistics.median(times["none"])
    epoch = base / args.epochs
    print(
        f"784-500-500-10 f32, adam, batch 100, {args.samples} samples x {args.epochs} epochs, "
        f"{args.rounds} rounds (medians); epoch without callbacks: {epoch * 1e3:.1f} ms"
    )
    for v in VARIANTS[1:]:
        med = statistics.median(times[v])
        hook = clocks[v].seconds / max(clocks[v].epochs, 1)
        print(
            f"  {v:>10}: fit {med / base:.3f} x the fit without callbacks; hooks "
            f"{hook * 1e6:.0f} us per epoch = {hook / epoch:.2e} of an epoch "
            f"({hook / epoch * 60000 / args.samples:.2e} of a 60000-sample epoch)"
        )


# --- the same as a pytest-benchmark suite ----------------------------------------------------


@pytest.fixture(scope="module")
def data():
    pytest.importorskip("sklearn.callback", reason="needs scikit-learn >= 1.9")
    pytest.importorskip("rich")
    return peers.synthetic_classification(5000, dtype=np.float32, seed=2)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fit_with_callbacks(benchmark, data, variant):
    X, y = data
    benchmark.group = "fit 784-500-500-10 f32, 5000 samples x 2 epochs, callbacks"
    benchmark.extra_info.update(library="mlpfast", samples=len(X) * 2, callbacks=variant)
    benchmark.pedantic(fit_once, args=(variant, X, y, 2), rounds=3, iterations=1)


if __name__ == "__main__":
    main()
