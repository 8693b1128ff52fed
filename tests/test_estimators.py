"""mlpfast's MLPClassifier / MLPRegressor against scikit-learn's, and their own guarantees.

In float64, same hyper-parameters and random_state must give scikit-learn's model: same initial
weights, sample order and validation split, so the same loss curve, weights and predictions up to
rounding (exactly, with MLPFAST_ENGINE=reference). Also checked: the flat parameter buffer,
float32 end to end, divergence, Ctrl-C, pickling, the extra activations (sparse input:
test_sparse.py).
"""

import copy
import os
import pickle
import subprocess
import sys
import warnings
from collections import Counter

import joblib
import numpy as np
import pytest
import sklearn.neural_network as sknn
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

from mlpfast import MLPClassifier, MLPRegressor, _engine, reference

# Rounding differences between the core and NumPy grow a little over the epochs.
RTOL, ATOL = 1e-7, 1e-9

# What the engine implements (the core's tables, or the reference's with MLPFAST_ENGINE=reference):
# the epoch solvers, plus lbfgs which the estimators run on the engine's loss_grad; the hidden
# activations that scikit-learn lacks.
SOLVERS = (*_engine.SOLVERS, "lbfgs")
SK_ACTIVATIONS = sknn.MLPClassifier._parameter_constraints["activation"][0].options
EXTRA_ACTIVATIONS = [a for a in _engine.ACTIVATIONS if a not in SK_ACTIVATIONS]


def _digits(n_class=10, n=300):
    X, y = load_digits(n_class=n_class, return_X_y=True)
    return X[:n] / 16.0, y[:n]


X_DIG, Y_DIG = _digits()
X_BIN, Y_BIN = _digits(n_class=2, n=200)
X_REG, Y_REG = make_regression(n_samples=200, n_features=12, n_targets=1, noise=5.0, random_state=0)
Y_REG = (Y_REG - Y_REG.mean()) / Y_REG.std()
X_MO, Y_MO = make_regression(n_samples=150, n_features=8, n_targets=3, random_state=1)
Y_MO = Y_MO / Y_MO.std(axis=0)
X_ML, Y_ML = make_multilabel_classification(
    n_samples=150, n_features=10, n_classes=4, random_state=2
)
X_ML = X_ML / X_ML.max()
RNG = np.random.RandomState(3)
X_POI = RNG.uniform(-1, 1, size=(200, 6))
Y_POI = RNG.poisson(np.exp(X_POI @ RNG.uniform(-0.5, 0.5, 6)))
SW_DIG = RNG.uniform(0.2, 2.0, size=len(Y_DIG))


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


def assert_same_model(ours, theirs, X):
    """Fitted attributes and predictions of two float64 models agree up to rounding."""
    for name in ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_", "n_features_in_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    if hasattr(theirs, "classes_"):
        assert_array_equal(ours.classes_, theirs.classes_)
    assert_allclose(ours.loss_, theirs.loss_, rtol=RTOL, atol=ATOL)
    if hasattr(theirs, "loss_curve_"):
        assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=RTOL, atol=ATOL)
        for name in ("best_loss_", "best_validation_score_"):
            if getattr(theirs, name) is None:
                assert getattr(ours, name) is None
            else:
                assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=RTOL)
        if theirs.validation_scores_ is None:
            assert ours.validation_scores_ is None
        else:
            assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=RTOL)
    for a, b in zip(
        ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True
    ):
        assert a.dtype == b.dtype == np.float64
        assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    if hasattr(theirs, "predict_proba"):
        assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=RTOL, atol=ATOL)
        assert_array_equal(ours.predict(X), theirs.predict(X))
    else:
        assert_allclose(ours.predict(X), theirs.predict(X), rtol=RTOL, atol=ATOL)


def assert_flat(model):
    """coefs_, intercepts_ (and prelu_slopes_) are views into the one flat buffer, in
    reference.py's layout."""
    params = model._params
    assert params.flags.c_contiguous and params.flags.writeable
    parts = model.coefs_ + model.intercepts_ + getattr(model, "prelu_slopes_", [])
    assert all(p.base is params for p in parts)
    activation = "prelu" if hasattr(model, "prelu_slopes_") else model.activation
    coefs, intercepts, _ = reference.unpack(params, model._layer_units, activation)
    for a, b in zip(model.coefs_ + model.intercepts_, coefs + intercepts, strict=True):
        assert np.shares_memory(a, b) and a.shape == b.shape
        assert a.__array_interface__["data"] == b.__array_interface__["data"]


COMMON = dict(hidden_layer_sizes=(15,), random_state=0, max_iter=8)

CLASSIFIER_CASES = {
    "adam-multiclass": (dict(), X_DIG, Y_DIG),
    "adam-two-hidden-tanh": (dict(hidden_layer_sizes=(12, 7), activation="tanh"), X_DIG, Y_DIG),
    "sgd-nesterov-logistic": (dict(solver="sgd", activation="logistic"), X_DIG, Y_DIG),
    "sgd-momentum-no-shuffle": (
        dict(solver="sgd", nesterovs_momentum=False, shuffle=False, batch_size=33),
        X_DIG,
        Y_DIG,
    ),
    "sgd-invscaling": (
        dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5, momentum=0),
        X_DIG,
        Y_DIG,
    ),
    "sgd-adaptive": (
        dict(solver="sgd", learning_rate="adaptive", n_iter_no_change=1, tol=0.5, max_iter=12),
        X_DIG,
        Y_DIG,
    ),
    "lbfgs": (dict(solver="lbfgs", max_iter=25), X_DIG, Y_DIG),
    "binary-identity": (dict(activation="identity", batch_size=17), X_BIN, Y_BIN),
    "binary-string-labels": (dict(), X_BIN, np.where(Y_BIN == 1, "yes", "no")),
    "multilabel": (dict(), X_ML, Y_ML),
    "logistic-regression": (dict(hidden_layer_sizes=()), X_DIG, Y_DIG),
    "early-stopping": (
        dict(early_stopping=True, max_iter=30, n_iter_no_change=2, validation_fraction=0.2),
        X_DIG,
        Y_DIG,
    ),
    "early-stopping-multilabel-sgd": (
        dict(early_stopping=True, solver="sgd", max_iter=15),
        X_ML,
        Y_ML,
    ),
}


SKLEARN_OF = {MLPClassifier: sknn.MLPClassifier, MLPRegressor: sknn.MLPRegressor}


def check_fit_matches_sklearn(Est, params, X, y, **fit_params):
    params = {**COMMON, **params}
    ours = _quiet(Est(**params).fit, X, y, **fit_params)
    theirs = _quiet(SKLEARN_OF[Est](**params).fit, X, y, **fit_params)
    assert_same_model(ours, theirs, X)
    assert_flat(ours)


@pytest.mark.parametrize("case", list(CLASSIFIER_CASES))
def test_classifier_matches_sklearn(case):
    check_fit_matches_sklearn(MLPClassifier, *CLASSIFIER_CASES[case])


REGRESSOR_CASES = {
    "adam": (dict(), X_REG, Y_REG),
    "adam-relu-two-hidden": (dict(hidden_layer_sizes=(10, 6), batch_size=50), X_REG, Y_REG),
    "sgd": (dict(solver="sgd", learning_rate_init=0.01), X_REG, Y_REG),
    "lbfgs-multi-output": (dict(solver="lbfgs", max_iter=30), X_MO, Y_MO),
    "adam-multi-output": (dict(activation="logistic"), X_MO, Y_MO),
    "poisson-adam": (dict(loss="poisson", learning_rate_init=0.01), X_POI, Y_POI),
    "poisson-lbfgs": (dict(loss="poisson", solver="lbfgs", max_iter=20), X_POI, Y_POI),
    "early-stopping": (dict(early_stopping=True, max_iter=20, n_iter_no_change=3), X_REG, Y_REG),
}


@pytest.mark.parametrize("case", list(REGRESSOR_CASES))
def test_regressor_matches_sklearn(case):
    check_fit_matches_sklearn(MLPRegressor, *REGRESSOR_CASES[case])


@pytest.mark.parametrize(
    "Est, params",
    [
        (MLPClassifier, dict(solver="adam")),
        (MLPClassifier, dict(solver="lbfgs", max_iter=15)),
        (MLPClassifier, dict(solver="sgd", early_stopping=True, max_iter=10)),
        (MLPRegressor, dict(solver="sgd", learning_rate_init=0.01)),
    ],
)
def test_sample_weight_matches_sklearn(Est, params):
    X, y = (X_DIG, Y_DIG) if Est is MLPClassifier else (X_REG[:150], Y_REG[:150])
    check_fit_matches_sklearn(Est, params, X, y, sample_weight=SW_DIG[: len(y)])


@pytest.mark.parametrize("solver", _engine.SOLVERS)
def test_partial_fit_and_warm_start_match_sklearn(solver):
    params = dict(hidden_layer_sizes=(10,), random_state=1, solver=solver)
    ours, theirs = MLPClassifier(**params), sknn.MLPClassifier(**params)
    classes = np.unique(Y_DIG)
    for start in range(0, 300, 60):  # five mini-batches, optimizer state carried over
        for model in (ours, theirs):
            model.partial_fit(X_DIG[start : start + 60], Y_DIG[start : start + 60], classes=classes)
        assert_flat(ours)
    assert_same_model(ours, theirs, X_DIG)

    params = dict(hidden_layer_sizes=(10,), random_state=1, solver=solver, max_iter=3)
    ours = MLPRegressor(warm_start=True, **params)
    theirs = sknn.MLPRegressor(warm_start=True, **params)
    for _ in range(3):
        for model in (ours, theirs):
            _quiet(model.fit, X_REG, Y_REG)
    assert_same_model(ours, theirs, X_REG)
    assert_flat(ours)


def test_warm_start_after_early_stopping_matches_sklearn():
    # scikit-learn's quirk: after restoring the best weights, its "best" arrays are the live
    # weights until a later epoch beats the best score. mlpfast reproduces it.
    params = dict(
        hidden_layer_sizes=(8,),
        random_state=0,
        early_stopping=True,
        warm_start=True,
        max_iter=6,
        n_iter_no_change=2,
        learning_rate_init=0.05,
    )
    ours, theirs = MLPClassifier(**params), sknn.MLPClassifier(**params)
    for _ in range(3):
        for model in (ours, theirs):
            _quiet(model.fit, X_DIG, Y_DIG)
        assert_same_model(ours, theirs, X_DIG)
        assert_flat(ours)


def test_verbose_output_matches_sklearn(capsys):
    params = dict(COMMON, verbose=True, early_stopping=True, max_iter=4)
    _quiet(MLPClassifier(**params).fit, X_DIG, Y_DIG)
    ours = capsys.readouterr().out
    _quiet(sknn.MLPClassifier(**params).fit, X_DIG, Y_DIG)
    theirs = capsys.readouterr().out
    assert "Iteration 4, loss = " in ours and "Validation score: " in ours
    assert ours == theirs


# --- dtypes and input -----------------------------------------------------------------------


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("solver", SOLVERS)
def test_float32_trains_in_float32(Est, solver):
    X, y = (X_DIG, Y_DIG) if Est is MLPClassifier else (X_REG, Y_REG)
    params = dict(COMMON, solver=solver, learning_rate_init=0.01)
    m32 = _quiet(Est(**params).fit, X.astype(np.float32), y)
    m64 = _quiet(Est(**params).fit, X, y)
    assert m32._params.dtype == np.float32
    assert all(a.dtype == np.float32 for a in m32.coefs_ + m32.intercepts_)
    assert_flat(m32)
    out32 = (
        m32.predict_proba(X.astype(np.float32))
        if Est is MLPClassifier
        else m32.predict(X.astype(np.float32))
    )
    assert out32.dtype == np.float32
    out64 = m64.predict_proba(X) if Est is MLPClassifier else m64.predict(X)
    # Same draws and order, float32 rounding: the two models stay close.
    assert_allclose(out32, out64, rtol=0, atol=2e-3 if solver != "lbfgs" else 5e-2)
    # float64 input to a float32 model computes in float64, as X @ coefs_ does in scikit-learn
    assert m32.predict(X).dtype == (np.float64 if Est is MLPRegressor else Y_DIG.dtype)


def test_non_contiguous_and_integer_input():
    model = _quiet(MLPClassifier(**COMMON).fit, X_DIG, Y_DIG)
    Xf = np.asfortranarray(X_DIG)
    assert_array_equal(model.predict_proba(Xf), model.predict_proba(X_DIG))
    assert_array_equal(model.predict_proba(X_DIG[:, ::1][::2]), model.predict_proba(X_DIG[::2]))
    Xi, _ = load_digits(return_X_y=True)
    assert_array_equal(model.predict_proba(Xi[:50]), model.predict_proba(Xi[:50].astype(float)))
    refit = _quiet(MLPClassifier(**COMMON).fit, Xf, Y_DIG)
    assert_array_equal(refit._params, model._params)


def test_extra_activation_is_validated():
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier(activation="swish").fit(X_BIN, Y_BIN)


# --- the flat buffer ------------------------------------------------------------------------


def test_coefs_are_live_views():
    model = _quiet(MLPRegressor(**COMMON).fit, X_REG, Y_REG)
    before = model.predict(X_REG)
    model.intercepts_[-1] += 1.0  # in place on the view: the model sees it
    assert_allclose(model.predict(X_REG), before + 1.0)
    # Replacing the arrays (as scikit-learn's own tests do) is honoured too, and re-packed.
    model.coefs_ = [c * 0 for c in model.coefs_]
    assert_allclose(model.predict(X_REG), np.full(len(X_REG), model.intercepts_[-1][0]))
    assert_flat(model)


@pytest.mark.parametrize("dump", ["pickle", "joblib", "joblib-mmap", "deepcopy"])
def test_pickle_round_trip(dump, tmp_path):
    model = MLPClassifier(activation="prelu", solver="sgd", **COMMON)
    _quiet(model.fit, X_DIG, Y_DIG)
    if dump == "pickle":
        loaded = pickle.loads(pickle.dumps(model))
    elif dump == "deepcopy":
        loaded = copy.deepcopy(model)
        assert not np.shares_memory(loaded._params, model._params)
    else:  # memory-mapped arrays load read-only: the model must still train in place
        joblib.dump(model, tmp_path / "m.joblib")
        loaded = joblib.load(tmp_path / "m.joblib", mmap_mode="r" if "mmap" in dump else None)
    assert_flat(loaded)
    assert_array_equal(loaded.predict_proba(X_DIG), model.predict_proba(X_DIG))
    assert_array_equal(loaded._opt_state, model._opt_state)
    # Training goes on identically from the copy (optimizer state travels with it).
    for m in (model, loaded):
        m.partial_fit(X_DIG[:100], Y_DIG[:100])
    assert_array_equal(loaded._params, model._params)
    assert_flat(loaded)


def test_unpickled_input_arrays():
    # An unpickled array's dtype is an equal but distinct instance of numpy's float64.
    X, sw = pickle.loads(pickle.dumps((X_DIG, SW_DIG)))
    assert X.dtype == np.float64
    model = _quiet(MLPClassifier(**COMMON).fit, X, Y_DIG, sample_weight=sw)
    direct = _quiet(MLPClassifier(**COMMON).fit, X_DIG, Y_DIG, sample_weight=SW_DIG)
    assert_array_equal(model.predict_proba(X), direct.predict_proba(X_DIG))


# --- divergence and Ctrl-C ------------------------------------------------------------------


def test_divergence_raises_and_keeps_last_finite_weights():
    params = dict(
        hidden_layer_sizes=(20,),
        activation="identity",
        solver="sgd",
        learning_rate_init=0.3,
        momentum=0.9,
        random_state=0,
        max_iter=60,
        shuffle=False,
    )
    model = MLPRegressor(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
            model.fit(X_REG * 20, Y_REG)
    assert 0 < model.n_iter_ < 60
    assert np.isfinite(model._params).all() and np.isfinite(model._opt_state).all()
    assert len(model.loss_curve_) == model.n_iter_
    # The weights are those after the last finite epoch: a run stopped there has them too.
    stopped = _quiet(MLPRegressor(**dict(params, max_iter=model.n_iter_)).fit, X_REG * 20, Y_REG)
    assert_array_equal(model._params, stopped._params)
    assert model.predict(X_REG).shape == Y_REG.shape  # usable (if huge: it was diverging)


def test_divergence_with_early_stopping_behaves_as_sklearn():
    # scikit-learn keeps training and restores the best (finite) weights: no error.
    params = dict(
        hidden_layer_sizes=20,
        activation="identity",
        solver="sgd",
        learning_rate_init=1,
        max_iter=12,
        early_stopping=True,
        random_state=0,
    )
    X, y = load_digits(n_class=3, return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = MLPRegressor(**params).fit(X, y)
        theirs = sknn.MLPRegressor(**params).fit(X, y)
    assert np.isnan(ours.validation_scores_[-1])
    assert_same_model(ours, theirs, X)


def test_keyboard_interrupt_stops_at_epoch_boundary(monkeypatch):
    real = _engine.train_epoch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(_engine, "train_epoch", interrupted)
    model = MLPClassifier(**dict(COMMON, max_iter=10))
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        model.fit(X_DIG, Y_DIG)
    monkeypatch.setattr(_engine, "train_epoch", real)
    assert model.n_iter_ == 2 and len(model.loss_curve_) == 2
    stopped = _quiet(MLPClassifier(**dict(COMMON, max_iter=2)).fit, X_DIG, Y_DIG)
    assert_array_equal(model._params, stopped._params)
    assert_array_equal(model.predict_proba(X_DIG), stopped.predict_proba(X_DIG))


# --- the extra activations: the estimator on the core vs on the NumPy reference -------------


@pytest.mark.parametrize("activation", EXTRA_ACTIVATIONS)
@pytest.mark.parametrize("solver", SOLVERS)
def test_extra_activations_match_reference_backend(activation, solver, monkeypatch):
    params = dict(COMMON, activation=activation, solver=solver, learning_rate_init=0.01)
    ours = _quiet(MLPClassifier(**params).fit, X_DIG, Y_DIG)
    for name in ("forward", "loss_grad", "train_epoch"):
        monkeypatch.setattr(_engine, name, getattr(reference, name))
    ref = _quiet(MLPClassifier(**params).fit, X_DIG, Y_DIG)
    assert_allclose(ours._params, ref._params, rtol=RTOL, atol=ATOL)
    assert_allclose(ours.predict_proba(X_DIG), ref.predict_proba(X_DIG), rtol=RTOL, atol=ATOL)
    assert_flat(ours)
    if activation == "prelu":
        assert len(ours.prelu_slopes_) == 1 and ours.prelu_slopes_[0].shape == (15,)
        assert not np.allclose(ours.prelu_slopes_[0], reference.PRELU_INIT_SLOPE)  # learned
    else:
        assert not hasattr(ours, "prelu_slopes_")


def test_prelu_slopes_follow_refits():
    model = MLPClassifier(activation="prelu", **COMMON)
    _quiet(model.fit, X_BIN, Y_BIN)
    assert hasattr(model, "prelu_slopes_")
    model.set_params(activation="relu")
    _quiet(model.fit, X_BIN, Y_BIN)
    assert not hasattr(model, "prelu_slopes_")
    assert_flat(model)


def test_engine_backend_is_explicit():
    # The backend is the one the environment asks for, and everything comes from it.
    expected = os.environ.get("MLPFAST_ENGINE") or "core"
    assert _engine.BACKEND == expected
    if expected == "core":
        from mlpfast import _core as source

        names = (source.ACTIVATIONS, source.OUTPUT_ACTIVATIONS, source.SOLVERS)
    else:
        source = reference
        names = (reference.HIDDEN_ACTIVATIONS, reference.OUTPUT_ACTIVATIONS, reference.SOLVERS)
    for name in ("forward", "loss_grad", "train_epoch"):
        assert getattr(_engine, name) is getattr(source, name), name
    assert (_engine.ACTIVATIONS, _engine.OUTPUT_ACTIVATIONS, _engine.SOLVERS) == tuple(
        map(tuple, names)
    )
    # the estimators accept exactly the engine's hidden activations
    for Est in (MLPClassifier, MLPRegressor):
        (options,) = Est._parameter_constraints["activation"]
        assert options.options == set(_engine.ACTIVATIONS)


@pytest.mark.parametrize("backend", ["reference", "core"])
def test_engine_backend_follows_the_environment(backend):
    # In a fresh interpreter, since the variable is read once, at import.
    code = (
        "import numpy as np\n"
        "from mlpfast import MLPClassifier, _engine, reference\n"
        "print(_engine.BACKEND, _engine.train_epoch is reference.train_epoch)\n"
        "X = np.random.default_rng(0).standard_normal((20, 3)); y = X[:, 0] > 0\n"
        "MLPClassifier((4,), max_iter=2).fit(X, y)\n"
    )
    env = dict(os.environ, MLPFAST_ENGINE=backend, PYTHONWARNINGS="ignore")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [backend, str(backend == "reference")]


def test_unknown_engine_backend_fails_import():
    env = dict(os.environ, MLPFAST_ENGINE="numba")
    run = subprocess.run(
        [sys.executable, "-c", "import mlpfast"], env=env, capture_output=True, text=True
    )
    assert run.returncode != 0 and "MLPFAST_ENGINE must be 'core' or 'reference'" in run.stderr


# --- the core's calling contract ------------------------------------------------------------


def _check_arrays(dtype, *arrays, writeable=()):
    for a in arrays:
        if a is None:
            continue
        assert isinstance(a, np.ndarray) and a.dtype == dtype, (a.dtype, dtype)
        assert a.flags.c_contiguous
    for a in writeable:
        assert a.flags.writeable and a.flags.c_contiguous


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", SOLVERS)
def test_engine_calls_keep_the_contract(Est, dtype, solver, monkeypatch):
    """Every call into the core gets C-contiguous arrays of one float dtype, writeable flat
    state, int64 sample order and plain Python scalars: what the C++ bindings accept. The calls
    are counted, so the test fails if the estimators stop going through _engine."""
    calls = Counter()

    def checked_forward(params, layer_units, activation, out_activation, X):
        calls["forward"] += 1
        _check_arrays(params.dtype, params, X)
        assert all(type(u) is int for u in layer_units)
        return reference.forward(params, layer_units, activation, out_activation, X)

    def checked_loss_grad(
        params, layer_units, activation, out_activation, X, Y, sw=None, alpha=0.0
    ):
        calls["loss_grad"] += 1
        _check_arrays(dtype, params, X, Y, sw)
        assert Y.ndim == 2 and type(alpha) is float
        return reference.loss_grad(params, layer_units, activation, out_activation, X, Y, sw, alpha)

    def checked_train_epoch(*args, **kw):
        calls["train_epoch"] += 1
        params, opt_state, _, _, _, X, Y, sw, order, batch_size = args
        _check_arrays(dtype, params, opt_state, X, Y, sw, writeable=(params, opt_state))
        assert order.dtype == np.intp and order.flags.c_contiguous and type(batch_size) is int
        assert all(type(v) in (float, int, bool, str) for v in kw.values())
        return reference.train_epoch(*args, **kw)

    monkeypatch.setattr(_engine, "forward", checked_forward)
    monkeypatch.setattr(_engine, "loss_grad", checked_loss_grad)
    monkeypatch.setattr(_engine, "train_epoch", checked_train_epoch)
    X, y = (X_BIN, Y_BIN) if Est is MLPClassifier else (X_MO, Y_MO)
    X = np.asfortranarray(X.astype(dtype))  # the estimator must make it C-contiguous
    sw = np.linspace(0.5, 1.5, len(y))  # float64 even for float32 X
    model = _quiet(Est(solver=solver, max_iter=3, early_stopping=solver != "lbfgs").fit, X, y, sw)
    assert model.n_iter_ >= 1
    if solver == "lbfgs":  # one loss_grad per function evaluation, at least one per iteration
        assert calls["loss_grad"] >= model.n_iter_ and calls["train_epoch"] == 0
    else:  # one train_epoch per epoch; early stopping scores each epoch with a forward pass
        assert calls["train_epoch"] == model.n_iter_ and calls["loss_grad"] == 0
        assert calls["forward"] >= model.n_iter_
    before = calls["forward"]
    model.predict(X)
    assert calls["forward"] == before + 1
    if solver != "lbfgs":
        model = Est(solver=solver)
        before = calls["train_epoch"]
        for _ in range(2):
            model.partial_fit(X, y, **({"classes": [0, 1]} if Est is MLPClassifier else {}))
        assert calls["train_epoch"] == before + 2
