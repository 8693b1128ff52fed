"""matmul_precision="bfloat16" side by side with float32, in one process (issue 11's goals).

- GEMM at the MLP's shapes (100/256/1024 x 784 x 500; NN, TN as dW = A^T dZ, NT as
  dA = dZ W^T): mlpfast float32, mlpfast bf16 (its best kernel here, and every other one),
  PyTorch float32 and bf16 ``matmul``; GFLOP/s.
- One epoch of the lecture's network (784-500-500-10, ReLU, Adam, batch 100, 20,000 samples):
  mlpfast float32 and bf16 (``_core.train_epoch``), PyTorch's float32 loop and its
  ``torch.autocast("cpu", dtype=torch.bfloat16)`` loop, scikit-learn (one ``partial_fit``).
- Accuracy on held-out data after 3 epochs, float32 and bf16.

Rounds are interleaved (each round times every contender once) and medians reported, so that
load on the shared machine hits all of them alike; only the ratios within one run mean
anything, and each ratio is the median of the rounds' own ratios (the ratio of the medians in
parentheses), which a slow spell covering some rounds of one contender moves less.
Run:  python bench/bench_bf16.py [--rounds 5] [--quick]
(also collected by ``pytest bench``: test_bf16_suite runs the quick variant once.)
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlpfast import _core  # noqa: E402

from _peers import (  # noqa: E402
    LECTURE_UNITS,
    TorchLoop,
    init_params,
    lecture_epoch,
    one_hot,
    synthetic_classification,
    torch_available,
)

SHAPES = [(100, 784, 500), (256, 784, 500), (1024, 784, 500)]


def interleaved_rounds(contenders, rounds, burst=0.0):
    """{name: [seconds per call in each round]}, each round timing every contender once (after
    one warm-up), in an order rotated from round to round (time_round). With burst > 0 a round
    times as many calls in a row as the warm-up says fill about `burst` seconds (at least
    one): a single product of 0.2-2 ms right after the pause measures the thread pool waking
    up (a 100-row product on 2 threads took 10 ms that way, 8 GFLOP/s), not the product a
    training loop calls back to back."""
    calls = {}
    for name, fn in contenders.items():
        start = time.perf_counter()
        fn()
        once = time.perf_counter() - start
        calls[name] = max(1, min(100, int(burst / once))) if burst > 0 else 1
    times = {name: [] for name in contenders}
    for r in range(rounds):
        time_round(contenders, r, times, calls)
    return times


def time_round(contenders, r, times, calls=None):
    """Round r: every contender once (calls[name] times in a row, timed together), appending
    seconds per call to times[name]. The round starts with contender r (mod their number): two
    builds of one epoch (the same speed), timed A then B in every round, came out 2.7-3.2%
    apart in favour of whichever ran first, in both orders."""
    names = list(contenders)
    for name in names[r % len(names) :] + names[: r % len(names)]:
        n = calls[name] if calls else 1
        time.sleep(0.05)  # let other libraries' spinning threads settle
        start = time.perf_counter()
        for _ in range(n):
            contenders[name]()
        times[name].append((time.perf_counter() - start) / n)


def round_ratios(times, name, reference):
    """Median over the rounds of times[name] / times[reference] within each round. This
    machine's speed moves by up to 2x between minutes (a slow spell can cover whole rounds of
    one contender and not of another); a ratio taken within one round, seconds apart, is
    steadier than the ratio of two medians."""
    return float(np.median(np.asarray(times[name]) / np.asarray(times[reference])))


def gemm_contenders(m, k, n, case):
    rng = np.random.default_rng(0)
    # NN: X (m x k) W (k x n); TN: dW = A^T dZ with A (m x k)... as the network calls them
    if case == "NN":
        a, b, ta, tb = rng.random((m, k)), rng.random((k, n)), False, False
    elif case == "TN":  # dW (k x n) = A^T (k x m) dZ (m x n): the product's inner size is m
        a, b, ta, tb = rng.random((m, k)), rng.random((m, n)), True, False
    else:  # NT: dA (m x k) = dZ (m x n) W^T, W (k x n)
        a, b, ta, tb = rng.random((m, n)), rng.random((k, n)), False, True
    a, b = a.astype(np.float32), b.astype(np.float32)
    out = {}
    out["mlpfast f32"] = lambda: _core.gemm(a, b, trans_a=ta, trans_b=tb)

    def bf16(kernel):
        def run():
            _core.set_bf16_kernel(kernel)
            _core.gemm(a, b, trans_a=ta, trans_b=tb, matmul_precision="bfloat16")
            _core.set_bf16_kernel("best")

        return run

    for kernel in _core.bf16_kernels():
        out[f"mlpfast bf16 {kernel}"] = bf16(kernel)
    if torch_available():
        import torch

        ta_t, tb_t = torch.from_numpy(a), torch.from_numpy(b)
        opa = (lambda x: x.T) if ta else (lambda x: x)
        opb = (lambda x: x.T) if tb else (lambda x: x)
        out["torch f32"] = lambda: torch.matmul(opa(ta_t), opb(tb_t))
        a16, b16 = ta_t.to(torch.bfloat16), tb_t.to(torch.bfloat16)
        out["torch bf16"] = lambda: torch.matmul(opa(a16), opb(b16))
    flops = 2.0 * m * k * n
    return out, flops


def bench_gemm(rounds):
    print(
        "\nGEMM, GFLOP/s (median of interleaved rounds, each about 20 ms of calls in a row; the"
        " ratio: median of the rounds' ratios)"
    )
    header = None
    for m, k, n in SHAPES:
        for case in ("NN", "TN", "NT"):
            contenders, flops = gemm_contenders(m, k, n, case)
            times = interleaved_rounds(contenders, rounds, burst=0.02)
            t = {name: float(np.median(x)) for name, x in times.items()}
            if header is None:
                header = list(t)
                print(f"  {'shape':<22}" + "".join(f"{h:>22}" for h in header))
            row = "".join(f"{flops / t[h] / 1e9:>22.0f}" for h in header)
            best = f"mlpfast bf16 {_core.bf16_kernel()}"
            ratio = round_ratios(times, "torch bf16", best) if "torch bf16" in t else float("nan")
            print(f"  {f'{case} {m}x{k}x{n}':<22}{row}   bf16 vs torch bf16: {ratio:.2f}x")


def sklearn_epoch(X, y):
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(
        hidden_layer_sizes=LECTURE_UNITS[1:-1], batch_size=100, learning_rate_init=1e-3,
        alpha=1e-4, random_state=0,
    )  # fmt: skip
    classes = np.arange(10)
    return lambda: model.partial_fit(X, y, classes=classes)


def epoch_contenders(n_samples):
    """{name: one epoch of the lecture's network}: mlpfast highest and bf16, PyTorch's float32
    and autocast-bf16 loops (when installed), scikit-learn (bench_core.py's bf16 group too)."""
    X, y = synthetic_classification(n_samples, dtype=np.float32)
    Y = one_hot(y)
    order = np.random.default_rng(1).permutation(len(X))
    contenders = {}
    for precision in ("highest", "bfloat16"):
        params = init_params(LECTURE_UNITS)
        state = np.zeros(2 * params.size, np.float32)
        t = [0]

        def epoch(params=params, state=state, t=t, precision=precision):
            _, t[0] = lecture_epoch(
                _core.train_epoch, params, state, X, Y, order, 100, alpha=1e-4,
                learning_rate=1e-3, t=t[0], matmul_precision=precision,
            )  # fmt: skip

        contenders["mlpfast f32" if precision == "highest" else "mlpfast bf16"] = epoch
    if torch_available():
        import torch

        for name, autocast in (("torch f32", False), ("torch autocast bf16", True)):
            loop = TorchLoop(autocast=autocast)  # (autocast entered per step: see TorchLoop)
            X_t, y_t = loop.tensors(X, y)
            order_t = torch.from_numpy(order)
            contenders[name] = lambda loop=loop, X_t=X_t, y_t=y_t, order_t=order_t: loop.epoch(
                X_t, y_t, 100, order_t
            )
    contenders["scikit-learn"] = sklearn_epoch(X, y)
    return contenders


def bench_epoch(rounds, n_samples):
    contenders = epoch_contenders(n_samples)
    times = interleaved_rounds(contenders, rounds)
    print(f"\nEpoch of 784-500-500-10 relu adam batch 100, {n_samples} samples (bf16 kernel: "
          f"{_core.bf16_kernel()}); median seconds, and the bf16 epoch's speed-up: the median of "
          f"the rounds' ratios (the ratio of the medians)")  # fmt: skip
    bf16 = float(np.median(times["mlpfast bf16"]))
    for name, t in times.items():
        seconds = float(np.median(t))
        ratio, of_medians = round_ratios(times, name, "mlpfast bf16"), seconds / bf16
        print(f"  {name:<22} {seconds:8.3f} s   bf16 is {ratio:5.2f}x ({of_medians:.2f}x) faster")


def bench_accuracy(n_train=20_000, n_test=5_000, epochs=3):
    """Held-out accuracy after `epochs` epochs: mlpfast float32 and bf16 (the goal: within a
    point), and PyTorch's float32 and autocast loops (which shows that each contender of the
    epoch benchmark trains). The blobs overlap (separation 0.25): about 91-92 %, not 100 %.
    Returns {name: accuracy}."""
    X, y = synthetic_classification(n_train + n_test, dtype=np.float32, seed=5, separation=0.25)
    X = X / 4.0
    X_train, y_train, X_test, y_test = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    Y = one_hot(y_train)
    order = np.random.default_rng(1).permutation(n_train)
    print(f"\nAccuracy on {n_test} held-out samples after {epochs} epochs")
    acc = {}
    for precision in ("highest", "bfloat16"):
        params = init_params(LECTURE_UNITS)
        state = np.zeros(2 * params.size, np.float32)
        t = 0
        for _ in range(epochs):
            _, t = lecture_epoch(
                _core.train_epoch, params, state, X_train, Y, order, 100, alpha=1e-4,
                learning_rate=1e-3, t=t, matmul_precision=precision,
            )  # fmt: skip
        proba = _core.forward(
            params, LECTURE_UNITS, "relu", "softmax", X_test, matmul_precision=precision
        )
        acc[f"mlpfast {precision}"] = float((proba.argmax(1) == y_test).mean())
    if torch_available():
        import torch

        for name, autocast in (("torch f32", False), ("torch autocast bf16", True)):
            loop = TorchLoop(autocast=autocast)
            X_t, y_t = loop.tensors(X_train, y_train)
            for _ in range(epochs):
                loop.epoch(X_t, y_t, 100, torch.from_numpy(order))
            proba = loop.predict_proba(loop.tensors(X_test, y_test)[0]).numpy()
            acc[name] = float((proba.argmax(1) == y_test).mean())
    for name, a in acc.items():
        print(f"  {name:<22} {100 * a:.2f} %")
    difference = acc["mlpfast bfloat16"] - acc["mlpfast highest"]
    print(f"  mlpfast bf16 - float32 {100 * difference:+.2f} points")
    return acc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer samples and rounds")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    print(f"isa {_core.isa()}, bf16 kernels {_core.bf16_kernels()}, threads {_core.max_threads()}")
    bench_gemm(rounds)
    bench_epoch(rounds, 2_000 if args.quick else 20_000)
    bench_accuracy(*((2_000, 1_000, 1) if args.quick else ()))
    return 0


def test_bf16_suite():
    main(["--quick"])


def test_every_epoch_contender_learns():
    """The blobs are learnt by each contender of the epoch benchmark (chance is 10 %): a loop
    that does not train (as one autocast context around the whole epoch did) shows here."""
    acc = bench_accuracy(4_000, 2_000, 2)
    assert all(a > 0.5 for a in acc.values()), acc


if __name__ == "__main__":
    sys.exit(main())
