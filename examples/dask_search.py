"""A hyper-parameter search on a Dask cluster: scikit-learn's GridSearchCV and
RandomizedSearchCV send their fits to the cluster's worker processes through joblib's "dask"
backend.

    pip install "mlpfast[dask]"
    python examples/dask_search.py                              # local cluster, 2 processes
    python examples/dask_search.py --scheduler tcp://HOST:8786  # an existing cluster

Threads: a worker runs one task per worker thread, and Dask's nanny starts each worker process
with OMP_NUM_THREADS=1, which mlpfast honours (printed below); 2 workers on 2 cores thus run 2
single-threaded fits at a time, not 2 x 2 threads. To give each fit k threads instead, start the
workers with OMP_NUM_THREADS=k and k times fewer worker threads, e.g.
LocalCluster(n_workers=1, threads_per_worker=1, env={"OMP_NUM_THREADS": "2"}) on 2 cores.

mlpfast's results do not depend on the thread count, so the search finds the same scores as
without Dask (checked at the end).
"""

import argparse
import os
import time
import warnings

import joblib
import numpy as np
from dask.distributed import Client, get_task_stream
from scipy.stats import loguniform
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

import mlpfast


def worker_threads():
    """(OMP_NUM_THREADS, the threads mlpfast's core uses) in this process."""
    from mlpfast import _core

    return os.environ.get("OMP_NUM_THREADS"), _core.max_threads()


def searches(max_iter):
    estimator = mlpfast.MLPClassifier(max_iter=max_iter, random_state=0)
    grid = GridSearchCV(
        estimator, {"hidden_layer_sizes": [(32,), (64,)], "alpha": [1e-4, 1e-2]}, cv=3
    )
    randomized = RandomizedSearchCV(
        estimator,
        {"alpha": loguniform(1e-5, 1e-1), "learning_rate_init": loguniform(1e-4, 1e-2)},
        n_iter=4,
        cv=3,
        random_state=0,
    )
    return {"GridSearchCV": grid, "RandomizedSearchCV": randomized}


def fit_quietly(search, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # few epochs, on purpose
        return search.fit(X, y)


def _short(params):
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def same_results(a, b):
    keys = [k for k in a.cv_results_ if k.endswith("test_score") or k.startswith("param")]
    return a.best_params_ == b.best_params_ and all(
        np.array_equal(a.cv_results_[k], b.cv_results_[k]) for k in keys
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scheduler", help="address of a running scheduler (default: local)")
    parser.add_argument("--samples", type=int, default=1797, help="digits to use (<= 1797)")
    parser.add_argument("--max-iter", type=int, default=50, help="epochs per fit")
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    X, y = X[: args.samples] / 16.0, y[: args.samples]

    client = (
        Client(args.scheduler)
        if args.scheduler  # an existing cluster; else a local one, closed with the client
        else Client(n_workers=2, threads_per_worker=1, dashboard_address=None)
    )
    with client:
        for address, (omp, threads) in sorted(client.run(worker_threads).items()):
            print(
                f"worker {address}: {client.nthreads()[address]} task thread(s), "
                f"OMP_NUM_THREADS={omp}, mlpfast threads {threads}"
            )
        for name, search in searches(args.max_iter).items():
            start = time.perf_counter()
            with get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
                fit_quietly(search, X, y)
            seconds = time.perf_counter() - start
            workers = {task["worker"] for task in tasks.data}
            print(
                f"{name}: {len(search.cv_results_['params'])} candidates x 3 folds on "
                f"{len(workers)} workers in {seconds:.2f} s; best {_short(search.best_params_)}, "
                f"score {search.best_score_:.4f}"
            )
            local = fit_quietly(searches(args.max_iter)[name], X, y)  # joblib's default backend
            print(
                f"  same scores and best parameters as without Dask: {same_results(search, local)}"
            )


if __name__ == "__main__":
    main()
