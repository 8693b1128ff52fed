"""Training on more data than fits in memory, on a Dask cluster: the data set is a chunked
dask.array whose row blocks are made only when a task needs them, and the model learns from
one block at a time through partial_fit.

    pip install "mlpfast[dask]"
    python examples/dask_incremental.py                             # local cluster, 2 processes
    python examples/dask_incremental.py --scheduler tcp://HOST:8786  # an existing cluster

Two ways, the same model:

1. dask_ml.wrappers.Incremental(mlpfast.MLPClassifier(...)).fit(X, y, classes=...): one
   partial_fit task per block, chained. Simple; but the blocks are independent tasks, so idle
   workers make them ahead of the chain and keep them until it gets there: on a multi-worker
   cluster up to the whole data set sits in the cluster's memory (the workers spill it to disk
   when it does not fit: slow, but it runs).
2. partial_fit_blocks below: the same chain, submitted block by block, so that at most two
   blocks (the one being trained on and the next, made meanwhile) are in memory at once.

Both pass over the data once (one epoch); call them again for more epochs. The model equals
training locally on the same blocks in the same order (checked at the end, bit for bit).
"""

import argparse
import time

import dask
import dask.array as da
import numpy as np
from dask.distributed import Client, wait
from dask_ml.wrappers import Incremental

from mlpfast import MLPClassifier

N_FEATURES, N_CLASSES = 20, 3


def make_block(i, rows, seed=0, dtype=np.float64):
    """Block i of the data set (X, y): rows drawn from (seed, i), labelled by a fixed random
    linear "teacher" (the class whose teacher column gives the largest score)."""
    teacher = np.random.default_rng(seed).standard_normal((N_FEATURES, N_CLASSES))
    X = np.random.default_rng([seed, i]).standard_normal((rows, N_FEATURES)).astype(dtype)
    return X, (X @ teacher).argmax(axis=1)


def lazy_dataset(n_blocks, rows, seed=0, dtype=np.float64):
    """X (n_blocks * rows, N_FEATURES) and y as dask arrays with one chunk per block; nothing
    is computed here: block i is made by make_block when a task needs it."""
    blocks = [dask.delayed(make_block, nout=2)(i, rows, seed, dtype) for i in range(n_blocks)]
    X = da.concatenate([da.from_delayed(b[0], (rows, N_FEATURES), dtype) for b in blocks])
    y = da.concatenate([da.from_delayed(b[1], (rows,), np.int64) for b in blocks])
    return X, y


def _partial_fit(model, X, y, fit_kwargs):
    model.partial_fit(X, y, **fit_kwargs)
    return model


def partial_fit_blocks(client, model, X, y, **fit_kwargs):
    """model.partial_fit(block of X, block of y, **fit_kwargs) for each row block in order, on
    the cluster; at most two blocks are in the cluster's memory at a time. Returns the model."""
    previous = None
    for X_block, y_block in zip(X.to_delayed().ravel(), y.to_delayed().ravel()):
        block = client.compute([X_block, y_block])  # made while the previous step trains
        step = client.submit(_partial_fit, model, *block, fit_kwargs)
        if previous is not None:
            wait(previous)  # the step before: its block is then released
        model, previous = step, step
    return model.result()


def local_reference(estimator, n_blocks, rows, seed, dtype, classes):
    """The same training in this process, on the blocks made directly (no Dask)."""
    for i in range(n_blocks):
        estimator.partial_fit(*make_block(i, rows, seed, dtype), classes=classes)
    return estimator


def same_weights(a, b):
    return all(
        np.array_equal(u, v) for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_)
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scheduler", help="address of a running scheduler (default: local)")
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--rows", type=int, default=10_000, help="rows per block")
    parser.add_argument("--float32", action="store_true")
    args = parser.parse_args(argv)
    dtype = np.float32 if args.float32 else np.float64

    client = (
        Client(args.scheduler)
        if args.scheduler  # an existing cluster; else a local one, closed with the client
        else Client(n_workers=2, threads_per_worker=1, dashboard_address=None)
    )
    with client:
        X, y = lazy_dataset(args.blocks, args.rows, dtype=dtype)
        print(
            f"data: {X.shape[0]:,} x {X.shape[1]} {np.dtype(dtype).name} "
            f"({X.nbytes / 2**20:.1f} MiB) in {X.numblocks[0]} blocks of {args.rows:,} rows, "
            f"made lazily; cluster: {len(client.nthreads())} workers"
        )
        classes = np.arange(N_CLASSES)
        estimator = MLPClassifier(hidden_layer_sizes=(64,), random_state=0)
        X_test, y_test = make_block(args.blocks, 5_000, dtype=dtype)  # a block never trained on

        start = time.perf_counter()
        incremental = Incremental(estimator, shuffle_blocks=False).fit(X, y, classes=classes)
        seconds = time.perf_counter() - start
        model = incremental.estimator_
        print(
            f"dask_ml Incremental:  {model.t_:,} samples in {seconds:.2f} s, "
            f"test accuracy {model.score(X_test, y_test):.4f}"
        )

        start = time.perf_counter()
        blockwise = partial_fit_blocks(client, estimator, X, y, classes=classes)
        seconds = time.perf_counter() - start
        print(
            f"partial_fit_blocks:   {blockwise.t_:,} samples in {seconds:.2f} s, "
            f"test accuracy {blockwise.score(X_test, y_test):.4f}"
        )

        local = local_reference(
            MLPClassifier(**estimator.get_params()), args.blocks, args.rows, 0, dtype, classes
        )
        print(
            "same weights as local training on the same blocks in order: "
            f"Incremental {same_weights(model, local)}, "
            f"partial_fit_blocks {same_weights(blockwise, local)}"
        )


if __name__ == "__main__":
    main()
