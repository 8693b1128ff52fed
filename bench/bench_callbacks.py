"""The cost of callbacks (issue 13): fits of the lecture's network (784-500-500-10, ReLU, Adam,
batch 100, float32) with no callback, with sklearn.callback.ProgressBar and with
mlpfast.callback.GradientNormMonitor, side by side.

A per-epoch cost of ~0.1 ms is far below the noise of a whole epoch on a shared machine, so the
callbacks' cost is measured on CPU clocks of the threads that pay it, during the lecture fits:
- the hooks: FitTasks.epoch_begin + epoch_end, on the fitting thread's CPU clock (time spent
  descheduled does not count), per epoch, as a fraction of the epoch without callbacks;
- ProgressBar's background threads (its queue monitor and rich's refresh thread, drawing at
  10 Hz to a terminal: rich is told the output is one), their CPU time per second of fit;
- and, for what it is worth under load, whole fits alternating the variants, medians.

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


# the lecture's fit, as bench_fit.py's
LECTURE = dict(hidden_layer_sizes=peers.LECTURE_UNITS[1:-1], batch_size=100, tol=0.0)


def _estimator(epochs):
    return mlpfast.MLPClassifier(
        **LECTURE, learning_rate_init=1e-3, max_iter=epochs, n_iter_no_change=epochs + 1
    ).set_params(random_state=0)


class HookClock:
    """CPU time of FitTasks.epoch_begin + epoch_end in the fitting thread (the per-epoch work
    callbacks add to the loop), and of ProgressBar's background threads (each reads its own
    CPU clock as it ends)."""

    def __init__(self):
        self.seconds, self.epochs, self.background = 0.0, 0, 0.0

    def _timed_run(self, run):
        def timed(thread):
            try:
                run(thread)
            finally:
                self.background += time.thread_time()

        return timed

    @contextlib.contextmanager
    def installed(self):
        from rich import live
        from sklearn.callback import _progressbar

        begin, end = _callbacks.FitTasks.epoch_begin, _callbacks.FitTasks.epoch_end
        monitor_run, refresh_run = _progressbar.RichProgressMonitor.run, live._RefreshThread.run

        def timed_begin(tasks):
            t = time.thread_time()
            begin(tasks)
            self.seconds += time.thread_time() - t

        def timed_end(tasks):
            t = time.thread_time()
            stop = end(tasks)
            self.seconds += time.thread_time() - t
            self.epochs += 1
            return stop

        _callbacks.FitTasks.epoch_begin, _callbacks.FitTasks.epoch_end = timed_begin, timed_end
        _progressbar.RichProgressMonitor.run = self._timed_run(monitor_run)
        live._RefreshThread.run = self._timed_run(refresh_run)
        try:
            yield self
        finally:
            _callbacks.FitTasks.epoch_begin, _callbacks.FitTasks.epoch_end = begin, end
            _progressbar.RichProgressMonitor.run = monitor_run
            live._RefreshThread.run = refresh_run


def fit_once(variant, X, y, epochs, clock=None):
    """Wall seconds of one fit; the progress bar draws as to a terminal, into a string."""
    import rich

    est = _estimator(epochs).set_callbacks(*_callbacks_of(variant))
    rich.reconfigure(file=io.StringIO(), force_terminal=True, force_interactive=True, width=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with clock.installed() if clock else contextlib.nullcontext():
            t = time.perf_counter()
            est.fit(X, y)
            return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000, help="of the lecture's epoch")
    parser.add_argument("--epochs", type=int, default=2, help="of each fit")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    X, y = peers.synthetic_classification(args.samples, dtype=np.float32, seed=2)
    fit_once("none", X[:500], y[:500], 1)  # warm up
    times = {v: [] for v in VARIANTS}
    clocks = {v: HookClock() for v in VARIANTS[1:]}
    for _ in range(args.rounds):
        for v in VARIANTS:
            times[v].append(fit_once(v, X, y, args.epochs, clocks.get(v)))
    base = statistics.median(times["none"])
    epoch = base / args.epochs
    print(
        f"lecture epoch: 784-500-500-10 f32, adam, batch 100, {args.samples} samples: "
        f"{epoch * 1e3:.0f} ms without callbacks ({args.rounds} rounds x {args.epochs} epochs)"
    )
    for v in VARIANTS[1:]:
        clock = clocks[v]
        hook = clock.seconds / max(clock.epochs, 1)
        background = clock.background / sum(times[v])
        print(
            f"  {v:>10}: hooks {hook * 1e6:.0f} us CPU per epoch = {hook / epoch:.1e} of the "
            f"epoch; background threads {background:.1e} CPU s per s of fit; whole fit "
            f"{statistics.median(times[v]) / base:.3f} x the fit without callbacks"
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
