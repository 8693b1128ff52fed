"""python -m mlpfast: train an MLPClassifier on scikit-learn's digits, next to scikit-learn's.

Both get the same data split, hyper-parameters and random_state, so in float64 they train the
same network; the table shows test accuracy and training speed side by side. The digits dataset
ships with scikit-learn (no download).
"""

import argparse
import contextlib
import io
import re
import sys
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier

from . import MLPClassifier, __version__, _engine


class _Progress(io.TextIOBase):
    """Turns the estimators' verbose "Iteration N, loss = x" lines into one updating line."""

    def __init__(self, out, label, max_iter):
        self.out, self.label, self.max_iter, self.epochs = out, label, max_iter, 0

    def write(self, text):
        for match in re.finditer(r"Iteration (\d+), loss = ([-+.\deEnaif]+)", text):
            self.epochs = int(match.group(1))
            loss = float(match.group(2))
            line = f"  {self.label:<12} epoch {self.epochs:>4}/{self.max_iter}  loss {loss:.5f}"
            if self.out.isatty():  # one line, updated in place
                self.out.write("\r" + line)
            elif self.epochs % max(1, self.max_iter // 10) == 0:  # logs: every tenth of the run
                self.out.write(line + "\n")
            self.out.flush()
        return len(text)

    def finish(self):
        if self.out.isatty():
            self.out.write("\n")


def _fit_timed(model, label, X, y):
    progress = _Progress(sys.stdout, label, model.max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with contextlib.redirect_stdout(progress):
            start = time.perf_counter()
            model.fit(X, y)
            seconds = time.perf_counter() - start
    progress.finish()
    return seconds


def _describe_engine():
    if _engine.BACKEND != "core":
        return f"{_engine.BACKEND} (NumPy)"
    from . import _core

    extra = []
    for name in ("isa", "max_threads"):
        if hasattr(_core, name):
            extra.append(f"{name}={getattr(_core, name)()}")
    return "C++ core" + (f" ({', '.join(extra)})" if extra else "")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mlpfast", description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, nargs="*", default=[100], help="hidden layer sizes")
    parser.add_argument("--solver", default="adam", choices=["adam", "sgd", "lbfgs"])
    parser.add_argument("--epochs", type=int, default=200, help="max_iter")
    parser.add_argument("--batch-size", default="auto")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="learning_rate_init")
    parser.add_argument("--float32", action="store_true", help="train on float32 data")
    parser.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn's run")
    parser.add_argument(
        "--matmul-precision",
        default="highest",
        choices=["highest", "bfloat16", "both"],
        help="mlpfast's matmul_precision; 'both' trains one model with each, side by side",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32 if args.float32 else np.float64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=args.seed, stratify=y
    )
    params = dict(
        hidden_layer_sizes=tuple(args.hidden),
        solver=args.solver,
        max_iter=args.epochs,
        batch_size=args.batch_size if args.batch_size == "auto" else int(args.batch_size),
        learning_rate_init=args.learning_rate,
        random_state=args.seed,
        verbose=args.solver != "lbfgs",
    )
    print(
        f"mlpfast {__version__}, engine: {_describe_engine()}\n"
        f"digits: {len(X_train)} training / {len(X_test)} test samples, {X.shape[1]} features, "
        f"{X.dtype}; MLPClassifier(hidden_layer_sizes={params['hidden_layer_sizes']}, "
        f"solver={args.solver!r}, max_iter={args.epochs})"
    )

    precisions = (
        ["highest", "bfloat16"] if args.matmul_precision == "both" else [args.matmul_precision]
    )
    runs = [
        (
            "mlpfast" + ("" if p == "highest" else " " + p),
            MLPClassifier(matmul_precision=p, **params),
        )
        for p in precisions
    ]
    if not args.no_sklearn:
        runs.append(("scikit-learn", SklearnMLPClassifier(**params)))
    rows = []
    for label, model in runs:
        seconds = _fit_timed(model, label, X_train, y_train)
        epochs = model.n_iter_
        samples = epochs * len(X_train) if args.solver != "lbfgs" else None
        rows.append((label, model, seconds, epochs, samples))

    width = max(12, *(len(label) for label, *_ in rows))
    print(
        f"\n  {'':<{width}} {'epochs':>6} {'fit [s]':>8} {'ms/epoch':>9} {'samples/s':>10} "
        f"{'test acc':>8}"
    )
    for label, model, seconds, epochs, samples in rows:
        rate = f"{samples / seconds:>10.0f}" if samples else f"{'-':>10}"
        print(
            f"  {label:<{width}} {epochs:>6} {seconds:>8.3f} "
            f"{1e3 * seconds / max(epochs, 1):>9.2f} {rate} {model.score(X_test, y_test):>8.4f}"
        )
    if len(precisions) == 2:
        (_, m32, t32, e32, _), (_, m16, t16, e16, _) = rows[:2]
        speedup = (t32 / max(e32, 1)) / (t16 / max(e16, 1))
        print(
            f"\n  bfloat16 over highest: {speedup:.2f}x per epoch; test accuracy "
            f"{m16.score(X_test, y_test) - m32.score(X_test, y_test):+.4f}"
        )
    if not args.no_sklearn:
        (_, ours, t_ours, e_ours, _), (_, theirs, t_theirs, e_theirs, _) = rows[0], rows[-1]
        speedup = (t_theirs / max(e_theirs, 1)) / (t_ours / max(e_ours, 1))
        diff = np.abs(ours.predict_proba(X_test) - theirs.predict_proba(X_test)).max()
        print(
            f"\n  speed-up per epoch over scikit-learn: {speedup:.1f}x; "
            "max |predict_proba difference| = "
            f"{diff:.2e}{' (float32)' if args.float32 else ''}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
