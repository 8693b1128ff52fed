"""The lecture's example network, 784-500-500-10 with ReLU and Adam, on synthetic 10-class data
the size of a small MNIST (float32 stays float32 end to end): seconds per epoch and samples per
second. The comparison with scikit-learn and PyTorch is bench/bench_estimators.py's (results in
bench/results/report.md)."""

import time
import warnings

import numpy as np

from mlpfast import MLPClassifier

rng = np.random.default_rng(0)
n, d, k = 20000, 784, 10
centres = rng.standard_normal((k, d), dtype=np.float32)
y = rng.integers(0, k, n)
X = (2 * rng.standard_normal((n, d), dtype=np.float32) + centres[y]).astype(np.float32)

params = dict(
    hidden_layer_sizes=(500, 500),
    activation="relu",
    solver="adam",
    learning_rate_init=1e-3,
    batch_size=100,
    max_iter=3,
    random_state=0,
)
clf = MLPClassifier(**params, verbose=True)
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # 3 epochs do not converge; that is the point
    clf.fit(X, y)
elapsed = time.perf_counter() - start
print(
    f"mlpfast: {elapsed / clf.n_iter_:.2f} s per epoch, "
    f"{n * clf.n_iter_ / elapsed:,.0f} samples/s, training accuracy {clf.score(X, y):.3f}"
)
