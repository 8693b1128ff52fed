"""Thread scaling: one epoch of the lecture's example (784-500-500-10, ReLU, Adam, batch 100,
float32) at 1 thread and at all threads, threads limited the way users limit them
(threadpoolctl for mlpfast's OpenMP and NumPy's BLAS; torch.set_num_threads for PyTorch)."""

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from mlpfast import _core, reference

import _peers as peers

N = 5000
ALL = os.cpu_count()


@pytest.fixture(scope="module")
def data():
    X, y = peers.synthetic_classification(N, dtype=np.float32, seed=3)
    return X, y, peers.one_hot(y)


@pytest.mark.parametrize("threads", [1, ALL], ids=["1-thread", "all-threads"])
@pytest.mark.parametrize("library", ["mlpfast", "numpy", "torch"])
def test_epoch_threads(benchmark, data, library, threads):
    X, y, Y = data
    benchmark.group = f"threads: epoch 784-500-500-10 f32, {N} samples, {library}"
    benchmark.extra_info.update(library=library, threads=threads, samples=N)
    order = np.random.RandomState(0).permutation(N)
    if library in ("mlpfast", "numpy"):
        engine = _core if library == "mlpfast" else reference
        params = peers.init_params(peers.LECTURE_UNITS, np.float32)
        state = np.zeros(2 * params.size, np.float32)

        def epoch():
            with threadpool_limits(limits=threads):
                peers.lecture_epoch(engine.train_epoch, params, state, X, Y, order, 100, t=0)
    else:
        if not peers.torch_available():
            pytest.skip("PyTorch is not installed")
        loop = peers.TorchLoop()
        xt, yt = loop.tensors(X, y)

        def epoch():
            before = loop.torch.get_num_threads()
            loop.torch.set_num_threads(threads)
            try:
                loop.epoch(xt, yt, 100, order)
            finally:
                loop.torch.set_num_threads(before)

    benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=1)
