"""Serving latency: one trained model answering predict_proba, side by side.

The model: a 64-100-10 ReLU MLPClassifier fitted once on scikit-learn's digits (float64, as
load_digits gives). The peers answer with the same weights:

- mlpfast: ``predict_proba`` (the one-call fast path for a plain NumPy array);
- sklearn: ``model.to_sklearn().predict_proba`` (scikit-learn's own MLP);
- onnxruntime: the model through ``mlpfast.onnx.to_onnx``, one ``InferenceSession.run``;
- torch: an ``nn.Sequential`` (Linear, ReLU, Linear, Softmax) with the same weights, eager,
  under ``torch.inference_mode()``, on a tensor made from the NumPy rows (included).

Each call starts from a NumPy array and ends with the probabilities (a NumPy array for all but
torch, whose tensor is left as is). Groups: batches of 1, 10, 100 and 1000 rows of the digits.
onnxruntime and torch are optional (skipped with the reason when not installed).

Concurrency: the same model answering from several Python threads at once (a web server's
worker threads): a fixed amount of work (CONCURRENT_CALLS predictions of CONCURRENT_ROWS rows)
done by 1 thread, then split over CONCURRENT_THREADS threads of one pool; the scaling (time on
1 thread / time on N) is printed for each library. mlpfast's predictions share the estimator's
lock and release the GIL in the core, so they overlap.

Run:  python -m pytest bench/bench_latency.py --benchmark-group-by=group
A ratio table (medians, same run) is printed after the last benchmark.
"""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from mlpfast import MLPClassifier, _engine

LIBRARIES = ["mlpfast", "sklearn", "onnxruntime", "torch"]
BATCHES = [1, 10, 100, 1000]
CONCURRENT_THREADS, CONCURRENT_CALLS, CONCURRENT_ROWS = 4, 200, 10
_medians = {}  # batch -> library -> median seconds
_concurrent = {}  # library -> threads -> median seconds


@pytest.fixture(scope="module")
def digits_model():
    X, y = load_digits(return_X_y=True)
    model = MLPClassifier(hidden_layer_sizes=(100,), max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    rows = np.ascontiguousarray(np.resize(X, (max(BATCHES), X.shape[1])))
    return model, rows


def _predictor(library, model):
    """A function rows -> probabilities for `library`, or pytest.skip."""
    if library == "mlpfast":
        return model.predict_proba
    if library == "sklearn":
        return model.to_sklearn().predict_proba
    if library == "onnxruntime":
        ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
        pytest.importorskip("skl2onnx", reason="skl2onnx is not installed")
        import mlpfast.onnx

        session = ort.InferenceSession(
            mlpfast.onnx.to_onnx(model).SerializeToString(), providers=["CPUExecutionProvider"]
        )
        name = session.get_inputs()[0].name
        return lambda rows: session.run(["probabilities"], {name: rows})[0]
    torch = pytest.importorskip("torch", reason="torch is not installed")
    net = torch.nn.Sequential(
        torch.nn.Linear(*model.coefs_[0].shape),
        torch.nn.ReLU(),
        torch.nn.Linear(*model.coefs_[1].shape),
        torch.nn.Softmax(dim=1),
    ).to(torch.float64)
    with torch.no_grad():
        for layer, coef, intercept in zip(net[::2], model.coefs_, model.intercepts_):
            layer.weight.copy_(torch.from_numpy(coef.T))
            layer.bias.copy_(torch.from_numpy(intercept))

    def predict(rows):
        with torch.inference_mode():
            return net(torch.from_numpy(rows))

    return predict


def _ratio_lines():
    head = f"latency: predict_proba, 64-100-10 digits model (engine {_engine.BACKEND}), medians"
    lines = ["", head] if _medians else []
    for batch, times in sorted(_medians.items()):
        base = times.get("mlpfast", float("nan"))
        lines += [
            f"  {batch:5d} rows  {lib:12s} {times[lib] * 1e6:10.2f} us   "
            f"{lib}/mlpfast time = {times[lib] / base:6.2f}x"
            for lib in LIBRARIES
            if lib in times
        ]
    if _concurrent:
        lines.append(
            f"concurrent: {CONCURRENT_CALLS} predict_proba calls of {CONCURRENT_ROWS} rows, "
            f"1 thread vs {CONCURRENT_THREADS}, medians"
        )
    for lib in LIBRARIES:
        times = _concurrent.get(lib, {})
        if 1 in times and CONCURRENT_THREADS in times:
            lines.append(
                f"  {lib:12s} 1 thread {times[1] * 1e3:8.2f} ms  {CONCURRENT_THREADS} threads "
                f"{times[CONCURRENT_THREADS] * 1e3:8.2f} ms  scaling "
                f"{times[1] / times[CONCURRENT_THREADS]:5.2f}x"
            )
    return lines


class _Summary:
    """A pytest plugin printing `lines()` in the terminal summary (output written while the
    tests run, fixture teardowns included, is captured)."""

    def __init__(self, lines):
        self.lines = lines

    def pytest_terminal_summary(self, terminalreporter):
        for line in self.lines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def ratio_table(request):
    """The medians of this module's benchmarks, printed side by side at the end."""
    if not request.config.pluginmanager.has_plugin("mlpfast-latency-ratios"):
        request.config.pluginmanager.register(_Summary(_ratio_lines), "mlpfast-latency-ratios")
    return _medians


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("batch", BATCHES)
def test_predict_proba(benchmark, ratio_table, digits_model, batch, library):
    model, rows = digits_model
    predict = _predictor(library, model)
    X = np.ascontiguousarray(rows[:batch])
    expected = model.predict_proba(X)
    np.testing.assert_allclose(np.asarray(predict(X)), expected, rtol=1e-6, atol=1e-9)
    benchmark.group = f"latency: predict_proba of {batch} row(s), 64-100-10 digits model, f64"
    benchmark.extra_info.update(
        library=library, batch_size=batch, samples=batch, mlpfast_backend=_engine.BACKEND
    )
    benchmark(predict, X)
    if benchmark.stats is not None:  # None under --benchmark-disable
        ratio_table.setdefault(batch, {})[library] = benchmark.stats.stats.median


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(CONCURRENT_THREADS) as executor:
        yield executor


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("threads", [1, CONCURRENT_THREADS])
def test_concurrent_predict_proba(benchmark, ratio_table, digits_model, pool, threads, library):
    model, rows = digits_model
    predict = _predictor(library, model)
    X = np.ascontiguousarray(rows[:CONCURRENT_ROWS])
    expected = model.predict_proba(X)

    def share():
        for _ in range(CONCURRENT_CALLS // threads):
            predict(X)

    def run():
        if threads == 1:
            return share()
        for future in [pool.submit(share) for _ in range(threads)]:
            future.result()

    answers = list(pool.map(lambda _: np.asarray(predict(X)), range(threads)))
    for answer in answers:
        np.testing.assert_allclose(answer, expected, rtol=1e-6, atol=1e-9)
    benchmark.group = (
        f"concurrent: {CONCURRENT_CALLS} predict_proba calls of {CONCURRENT_ROWS} rows, "
        f"64-100-10 digits model, f64"
    )
    benchmark.extra_info.update(library=library, threads=threads, mlpfast_backend=_engine.BACKEND)
    benchmark(run)
    if benchmark.stats is not None:
        _concurrent.setdefault(library, {})[threads] = benchmark.stats.stats.median
