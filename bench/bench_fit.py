"""A full fit of the lecture's example network (784-500-500-10, ReLU, Adam lr 1e-3, batch 100,
float32) and predict_proba throughput: mlpfast's MLPClassifier, the NumPy baseline,
scikit-learn's MLPClassifier and a PyTorch loop, same data, same number of epochs."""

import warnings

import numpy as np
import pytest

import mlpfast
from mlpfast import reference

import _peers as peers

N_FIT, EPOCHS, N_PREDICT = 2000, 3, 20000
LIBRARIES = ["mlpfast", "numpy", "sklearn", "torch"]


@pytest.fixture(scope="module")
def data():
    X, y = peers.synthetic_classification(N_PREDICT, dtype=np.float32, seed=2)
    return X, y


def _estimator(cls):
    return cls(
        peers.LECTURE_UNITS[1:-1],
        batch_size=100,
        learning_rate_init=1e-3,
        max_iter=EPOCHS,
        tol=0.0,
        n_iter_no_change=EPOCHS + 1,
        random_state=0,
    )


@pytest.mark.parametrize("library", LIBRARIES)
def test_fit(benchmark, data, library):
    X, y = data[0][:N_FIT], data[1][:N_FIT]
    benchmark.group = f"fit 784-500-500-10 f32, {N_FIT} samples x {EPOCHS} epochs"
    benchmark.extra_info.update(library=library, samples=N_FIT * EPOCHS)
    if library in ("mlpfast", "sklearn"):
        if library == "mlpfast":
            cls = mlpfast.MLPClassifier
        else:
            from sklearn.neural_network import MLPClassifier as cls

        def fit():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _estimator(cls).fit(X, y)
    elif library == "numpy":
        Y = peers.one_hot(y)

        def fit():
            params = peers.init_params(peers.LECTURE_UNITS, np.float32)
            state = np.zeros(2 * params.size, np.float32)
            rng, t = np.random.RandomState(0), 0
            for _ in range(EPOCHS):
                order = rng.permutation(N_FIT)
                _, t = peers.lecture_epoch(
                    reference.train_epoch, params, state, X, Y, order, 100, t=t
                )
    else:
        if not peers.torch_available():
            pytest.skip("PyTorch is not installed")

        def fit():
            loop = peers.TorchLoop()
            xt, yt = loop.tensors(X, y)
            g = loop.torch.Generator().manual_seed(0)
            for _ in range(EPOCHS):
                loop.epoch(xt, yt, 100, loop.torch.randperm(N_FIT, generator=g))

    benchmark.pedantic(fit, rounds=3, iterations=1, warmup_rounds=0)


@pytest.mark.parametrize("library", LIBRARIES)
def test_predict_proba(benchmark, data, library):
    X, y = data
    benchmark.group = f"predict_proba 784-500-500-10 f32, {N_PREDICT} samples"
    benchmark.extra_info.update(library=library, samples=N_PREDICT)
    small = slice(0, 500)
    if library in ("mlpfast", "sklearn"):
        if library == "mlpfast":
            cls = mlpfast.MLPClassifier
        else:
            from sklearn.neural_network import MLPClassifier as cls
        est = _estimator(cls).set_params(max_iter=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X[small], y[small])
        run = lambda: est.predict_proba(X)  # noqa: E731
    elif library == "numpy":
        params = peers.init_params(peers.LECTURE_UNITS, np.float32)
        run = lambda: reference.forward(params, peers.LECTURE_UNITS, "relu", "softmax", X)  # noqa: E731
    else:
        if not peers.torch_available():
            pytest.skip("PyTorch is not installed")
        loop = peers.TorchLoop()
        xt, _ = loop.tensors(X, y)
        run = lambda: loop.predict_proba(xt)  # noqa: E731
    run()
    benchmark(run)
