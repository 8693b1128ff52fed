"""One training step (forward, backward, Adam update) of the lecture's 784-500-500-10 ReLU
network, float32, at several batch sizes: mlpfast's core, the NumPy baseline, scikit-learn's
partial_fit (one step per call) and a PyTorch loop. extra_info["samples"] lets the report turn
times into samples per second."""

import warnings

import numpy as np
import pytest

from mlpfast import _core, reference

import _peers as peers

BATCH_SIZES = [1, 32, 100, 256, 1024]
LIBRARIES = ["mlpfast", "numpy", "sklearn", "torch"]


@pytest.fixture(scope="module")
def data():
    X, y = peers.synthetic_classification(1024, dtype=np.float32, seed=1)
    return X, y, peers.one_hot(y)


def _step_fn(library, X, y, Y, batch_size):
    Xb, yb, Yb = X[:batch_size], y[:batch_size], Y[:batch_size]
    if library in ("mlpfast", "numpy"):
        engine = _core if library == "mlpfast" else reference
        params = peers.init_params(peers.LECTURE_UNITS, np.float32)
        state = np.zeros(2 * params.size, np.float32)
        order = np.arange(batch_size)

        def step():
            peers.lecture_epoch(
                engine.train_epoch,
                params,
                state,
                Xb,
                Yb,
                order,
                batch_size,
                learning_rate=1e-3,
                t=0,
            )

        return step
    if library == "sklearn":
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(peers.LECTURE_UNITS[1:-1], batch_size=batch_size, random_state=0)
        classes = np.arange(peers.N_CLASSES)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(Xb, yb, classes=classes)
        return lambda: clf.partial_fit(Xb, yb)
    if library == "torch":
        if not peers.torch_available():
            pytest.skip("PyTorch is not installed")
        loop = peers.TorchLoop()
        xt, yt = loop.tensors(Xb, yb)
        return lambda: loop.step(xt, yt)
    raise ValueError(library)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_training_step(benchmark, data, library, batch_size):
    X, y, Y = data
    benchmark.group = f"step 784-500-500-10 f32 batch {batch_size:>4}"
    benchmark.extra_info.update(library=library, batch_size=batch_size, samples=batch_size)
    step = _step_fn(library, X, y, Y, batch_size)
    step()  # warm up (first-touch of buffers, torch's allocator)
    benchmark(step)
