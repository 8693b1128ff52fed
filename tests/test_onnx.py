"""ONNX export (mlpfast.onnx): the ONNX model, run in onnxruntime, agrees with mlpfast's predict.

The reference is the estimator itself (predict, predict_proba), whose forward pass is tested
against NumPy and scikit-learn elsewhere. Every hidden activation x every output activation x
float32/float64, on small nets with two hidden layers (the layer loop, and PReLU slopes of two
layers, broadcast over the rows).
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlpfast import MLPClassifier, MLPRegressor
from mlpfast._multilayer_perceptron import HIDDEN_ACTIVATIONS
from mlpfast.reference import OUTPUT_ACTIVATIONS

skl2onnx = pytest.importorskip("skl2onnx", reason="ONNX export needs skl2onnx (mlpfast[onnx])")
ort = pytest.importorskip("onnxruntime", reason="the ONNX tests run models in onnxruntime")
mlpfast_onnx = pytest.importorskip("mlpfast.onnx")

TOL = {np.float32: 1e-5, np.float64: 1e-10}

rng = np.random.RandomState(0)
X = rng.randn(40, 3)
_k = rng.randint(0, 3, 40)
# task: (estimator, extra parameters, y, expected out_activation_)
TASKS = {
    "binary": (MLPClassifier, {}, _k % 2, "logistic"),
    "multiclass": (MLPClassifier, {}, np.array(["ant", "bee", "cat"])[_k], "softmax"),
    "multilabel": (MLPClassifier, {}, np.c_[_k % 2, _k // 2, _k == 1].astype(int), "logistic"),
    "regression": (MLPRegressor, {}, X[:, 0] - X[:, 1] ** 2, "identity"),
    "multioutput": (MLPRegressor, {}, np.c_[X[:, 0], np.sin(X[:, 1])], "identity"),
    "poisson": (MLPRegressor, {"loss": "poisson"}, np.exp(X[:, 0] / 2), "exp"),
}


def fitted(task, activation="relu", dtype=np.float64):
    estimator, params, y, _ = TASKS[task]
    model = estimator(
        hidden_layer_sizes=(5, 4),
        activation=activation,
        learning_rate_init=0.1,  # two epochs of Adam move the weights (and PReLU's slopes) well
        max_iter=2,  # away from their initial values; more would only cost time
        random_state=0,
        **params,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the weights are all we need
        return model.fit(X.astype(dtype), y)


def run(onx, X_in):
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X_in})


def test_tasks_cover_every_output_activation():
    assert {task[3] for task in TASKS.values()} == set(OUTPUT_ACTIVATIONS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("task", TASKS)
def test_onnxruntime_agrees_with_predict(task, activation, dtype):
    model = fitted(task, activation, dtype)
    assert model.out_activation_ == TASKS[task][3]
    assert model.coefs_[0].dtype == dtype
    if activation == "prelu":  # learned, per unit: the slope tensor must broadcast per column
        assert all(np.ptp(s) > 0.01 for s in model.prelu_slopes_)
    Xd = X.astype(dtype)
    outputs = run(mlpfast_onnx.to_onnx(model), Xd)
    tol = TOL[dtype]
    if task in ("binary", "multiclass", "multilabel"):
        label, proba = outputs
        assert proba.dtype == dtype
        np.testing.assert_array_equal(label, model.predict(Xd))
        np.testing.assert_allclose(proba, model.predict_proba(Xd), rtol=tol, atol=tol)
    else:
        (pred,) = outputs
        assert pred.dtype == dtype and pred.shape == (len(X), model.n_outputs_)
        expected = model.predict(Xd).reshape(len(X), -1)
        np.testing.assert_allclose(pred, expected, rtol=tol, atol=tol)


def test_skl2onnx_to_onnx_directly_with_zipmap():
    # skl2onnx's defaults, as for scikit-learn's MLP: zipmap=True gives a list of dicts
    model = fitted("multiclass", "tanh", np.float32)
    X32 = X.astype(np.float32)
    label, proba_maps = run(skl2onnx.to_onnx(model, X32[:1]), X32)
    np.testing.assert_array_equal(label, model.predict(X32))
    proba = np.array([[row[c] for c in model.classes_] for row in proba_maps])
    np.testing.assert_allclose(proba, model.predict_proba(X32), atol=1e-5)


def test_skl2onnx_to_onnx_directly_regressor_and_pipeline():
    estimator = fitted("multioutput", "softplus")
    pipe = make_pipeline(StandardScaler().fit(X), estimator)
    (pred,) = run(skl2onnx.to_onnx(pipe, X[:1]), X)
    np.testing.assert_allclose(pred, pipe.predict(X), rtol=1e-10, atol=1e-10)


def test_mixed_dtypes_compute_as_predict_does():
    # float32 model, float64 input: predict computes in float64; so does the graph
    model = fitted("multiclass", "prelu", np.float32)
    label, proba = run(mlpfast_onnx.to_onnx(model, X[:1]), X)
    assert proba.dtype == np.float64
    np.testing.assert_array_equal(label, model.predict(X))
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=1e-10, atol=1e-10)
    # float64 model, float32 input: float64 inside, float32 out (skl2onnx types outputs by input)
    model = fitted("regression", "softplus", np.float64)
    X32 = X.astype(np.float32)
    (pred,) = run(mlpfast_onnx.to_onnx(model, X32[:1]), X32)
    assert pred.dtype == np.float32
    np.testing.assert_allclose(pred.ravel(), model.predict(X32), rtol=1e-6, atol=1e-6)
    # integer input: float64 inside (as predict), float32 out (skl2onnx's type for it)
    X_int = np.round(X * 3).astype(np.int64)
    (pred,) = run(mlpfast_onnx.to_onnx(model, X_int[:1]), X_int)
    assert pred.dtype == np.float32
    np.testing.assert_allclose(pred.ravel(), model.predict(X_int), rtol=1e-6, atol=1e-6)


def test_zipmap_with_float64_input():
    # ONNX's ZipMap takes float32 only: the maps hold float32 probabilities, labels are exact
    model = fitted("multiclass")
    label, proba_maps = run(skl2onnx.to_onnx(model, X[:1]), X)
    np.testing.assert_array_equal(label, model.predict(X))
    proba = np.array([[row[c] for c in model.classes_] for row in proba_maps])
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-7)
    outputs = run(mlpfast_onnx.to_onnx(model, options={"zipmap": "columns"}), X)
    np.testing.assert_array_equal(outputs[0], model.predict(X))
    np.testing.assert_allclose(np.c_[outputs[1:]].T, model.predict_proba(X), atol=1e-10)


def test_options_nocl_and_output_class_labels():
    model = fitted("multiclass")
    label, _ = run(mlpfast_onnx.to_onnx(model, options={"zipmap": False, "nocl": True}), X)
    np.testing.assert_array_equal(model.classes_[label], model.predict(X))
    onx = mlpfast_onnx.to_onnx(model, options={"zipmap": False, "output_class_labels": True})
    label, _, classes = run(onx, X)
    np.testing.assert_array_equal(classes, model.classes_)


def test_to_onnx_checks_its_model():
    with pytest.raises(NotFittedError):
        mlpfast_onnx.to_onnx(MLPClassifier())
    with pytest.raises(TypeError, match="Pipeline"):
        mlpfast_onnx.to_onnx(make_pipeline(StandardScaler()))


def test_float_class_labels_become_int64():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPClassifier((3,), max_iter=2, random_state=0).fit(X, _k.astype(float))
    label, _ = run(mlpfast_onnx.to_onnx(model), X)
    assert label.dtype == np.int64
    np.testing.assert_array_equal(label, model.predict(X))


def test_importing_mlpfast_does_not_import_skl2onnx():
    code = "import sys, mlpfast; assert 'skl2onnx' not in sys.modules and 'onnx' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
