"""skops.io round trip of fitted mlpfast models: the types a user must trust, and equal results.

The list of types is the one the README and mlpfast's docstring give; skops.io.get_untrusted_types
on dumped models is the reference for it.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest

import mlpfast
from mlpfast import MLPClassifier, MLPRegressor

sio = pytest.importorskip("skops.io", reason="the skops round trip needs skops")

TRUSTED = {
    "mlpfast._multilayer_perceptron.MLPClassifier",
    "mlpfast._multilayer_perceptron.MLPRegressor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
}

rng = np.random.RandomState(0)
X = rng.randn(40, 3)
_k = rng.randint(0, 3, 40)
CASES = [
    (MLPClassifier, {"solver": "adam", "activation": "prelu"}, np.array(["a", "b", "c"])[_k]),
    (MLPClassifier, {"solver": "lbfgs"}, np.c_[_k % 2, _k == 1].astype(int)),
    (MLPRegressor, {"solver": "sgd", "early_stopping": True}, X[:, 0]),
    (MLPRegressor, {"solver": "adam", "loss": "poisson"}, np.exp(X[:, :2])),
]


def fitted(estimator, params, y, dtype=np.float64):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning after few epochs
        model = estimator(hidden_layer_sizes=(4,), max_iter=3, random_state=0, **params)
        return model.fit(X.astype(dtype), y)


def test_documented_trusted_types_are_those_skops_asks_for():
    asked = set()
    for case in CASES:
        asked |= set(sio.get_untrusted_types(data=sio.dumps(fitted(*case))))
    assert asked == TRUSTED
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    for name in TRUSTED:  # the docs users read list the same types
        assert name in mlpfast.__doc__ and name in readme


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_round_trip_predicts_and_trains_on(case, dtype):
    estimator, params, y = CASES[case]
    model = fitted(estimator, params, y, dtype)
    data = sio.dumps(model)
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.loads(data)  # skops refuses untrusted types by default
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    Xd = X.astype(dtype)
    method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
    np.testing.assert_array_equal(getattr(loaded, method)(Xd), getattr(model, method)(Xd))
    np.testing.assert_array_equal(loaded.predict(Xd), model.predict(Xd))
    assert loaded.coefs_[0].dtype == dtype
    if params["solver"] != "lbfgs" and not params.get("early_stopping"):
        # the loaded model is a whole one: the flat buffer and the optimizer state came along
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(Xd, y)
            loaded.partial_fit(Xd, y)
        for ours, theirs in zip(
            model.coefs_ + model.intercepts_, loaded.coefs_ + loaded.intercepts_
        ):
            np.testing.assert_array_equal(theirs, ours)
