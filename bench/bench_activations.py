"""The price of a transcendental activation: one epoch of the lecture's network (784-500-500-10,
Adam, batch 100) with tanh, logistic and softplus hidden layers next to the same epoch with ReLU,
float32 and float64, in one run. Goal (issue 11): tanh and logistic within 1.1x of ReLU.

    python -m pytest bench/bench_activations.py --benchmark-group-by=group
    python bench/bench_activations.py [--samples 5000] [--rounds 7]   # interleaved, prints ratios

The script form runs the activations in turn within each round (so machine load hits them
alike) and prints each one's median epoch time over ReLU's.
"""

import argparse
import statistics
import time

import numpy as np
import pytest

from mlpfast import _core

try:
    from _peers import LECTURE_UNITS, init_params, one_hot, synthetic_classification
except ImportError:  # run as a script from elsewhere
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _peers import LECTURE_UNITS, init_params, one_hot, synthetic_classification

ACTIVATIONS = ["relu", "tanh", "logistic", "softplus"]


def make_epoch(activation, dtype, n_samples, core=_core):
    """A function running one epoch (fresh optimizer state each time, same data and weights)."""
    X, y = synthetic_classification(n_samples, dtype=dtype)
    Y = one_hot(y, dtype=dtype)
    order = np.random.default_rng(1).permutation(n_samples)
    params0 = init_params(LECTURE_UNITS, dtype)

    def epoch():
        params = params0.copy()
        state = np.zeros(2 * params.size, dtype)
        core.train_epoch(
            params, state, LECTURE_UNITS, activation, "softmax", X, Y, None, order, 100,
            solver="adam", alpha=1e-4, learning_rate=1e-3, t=0,
        )  # fmt: skip

    return epoch


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_epoch_by_activation(benchmark, activation, dtype):
    epoch = make_epoch(activation, dtype, 5000)
    benchmark.group = f"epoch 784-500-500-10 adam batch 100 {np.dtype(dtype).name}"
    benchmark.extra_info.update(library="mlpfast", activation=activation, samples=5000)
    epoch()  # warm
    benchmark.pedantic(epoch, rounds=5, iterations=1, warmup_rounds=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    print(f"isa {_core.isa()}, threads {_core.max_threads()}, {args.samples} samples per epoch")
    for dtype in (np.float32, np.float64):
        epochs = {a: make_epoch(a, dtype, args.samples) for a in ACTIVATIONS}
        times = {a: [] for a in ACTIVATIONS}
        for e in epochs.values():
            e()  # warm
        for _ in range(args.rounds):
            for a, e in epochs.items():
                t0 = time.perf_counter()
                e()
                times[a].append(time.perf_counter() - t0)
        med = {a: statistics.median(t) for a, t in times.items()}
        for a in ACTIVATIONS:
            print(
                f"{np.dtype(dtype).name:8s} {a:9s} {med[a]:7.3f} s  "
                f"{med[a] / med['relu']:5.2f}x relu"
            )


if __name__ == "__main__":
    main()
