"""The fence around scikit-learn's private API (mlpfast._sklearn_compat).

Fails loudly, naming the method, when the installed scikit-learn's private methods differ from
what the fence mirrors; checks that mlpfast's overrides accept the calls scikit-learn makes;
checks the two helpers the fence owns against scikit-learn's own (still present in 1.7-1.9);
and checks that no other module of the installed package reaches into scikit-learn's privates.
"""

import inspect
import pathlib
import re
import warnings

import pytest
import sklearn
from scipy.optimize import OptimizeResult
from sklearn.exceptions import ConvergenceWarning

import mlpfast
from mlpfast import MLPClassifier, MLPRegressor
from mlpfast import _sklearn_compat as compat

_RECORDS = [
    (f"{c}.{n}", s) for n, s in compat.OVERRIDDEN.items() for c in ("MLPClassifier", "MLPRegressor")
] + list(compat.CALLED.items())


def test_installed_version_is_mirrored():
    minor = ".".join(sklearn.__version__.split(".")[:2])
    assert minor in compat.MIRRORED_VERSIONS, (
        f"scikit-learn {sklearn.__version__} is outside the range mlpfast mirrors "
        f"({', '.join(compat.MIRRORED_VERSIONS)}): check _sklearn_compat.py against it"
    )


@pytest.mark.parametrize("qualified, expected", _RECORDS, ids=[r[0] for r in _RECORDS])
def test_private_signature_is_the_mirrored_one(qualified, expected):
    owner, name = qualified.split(".")
    installed = compat._installed_signature(compat._OWNERS[owner], name)
    assert installed == expected, (
        f"scikit-learn {sklearn.__version__} changed the private method {qualified}: "
        f"mlpfast mirrors {expected}, installed is {installed}"
    )


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("name", sorted(compat.OVERRIDDEN))
def test_override_accepts_the_mirrored_call(estimator, name):
    # scikit-learn calls the override with the arguments of the mirrored signature
    mirrored = compat.OVERRIDDEN[name]
    params = [p.strip().split("=")[0] for p in mirrored.strip("()").split(",")]
    ours = inspect.signature(getattr(estimator, name))
    assert name in vars(mlpfast._multilayer_perceptron._FlatParamsMixin)
    ours.bind(*params)  # raises TypeError if the override cannot take that call


def test_every_override_is_recorded():
    overridden = {
        name
        for name, value in vars(mlpfast._multilayer_perceptron._FlatParamsMixin).items()
        if name.startswith("_")
        and not name.startswith("__")
        and callable(value)
        and hasattr(sklearn.neural_network.MLPClassifier, name)
    }
    assert overridden == set(compat.OVERRIDDEN)


def test_a_changed_signature_is_named(monkeypatch):
    monkeypatch.setitem(compat.OVERRIDDEN, "_fit_lbfgs", "(self, X, y)")
    names = [name for name, _, _ in compat.signature_mismatches()]
    assert names == ["MLPClassifier._fit_lbfgs", "MLPRegressor._fit_lbfgs"]
    with pytest.warns(RuntimeWarning, match=r"differs in: MLPClassifier\._fit_lbfgs"):
        compat._warn_if_changed()


@pytest.mark.parametrize("estimator", ["MLPClassifier", "MLPRegressor"])
def test_private_attributes_exist_after_fit(estimator):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(int) if estimator == "MLPClassifier" else X[:, 0]
    model = getattr(sklearn.neural_network, estimator)(hidden_layer_sizes=(4,), max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    missing = [a for a in compat.PRIVATE_ATTRIBUTES[estimator] if not hasattr(model, a)]
    assert missing == [], (
        f"scikit-learn {sklearn.__version__}'s fitted {estimator} lacks the private "
        f"attribute(s) {missing} that mlpfast mirrors"
    )


def test_no_private_sklearn_import_outside_the_fence():
    package = pathlib.Path(mlpfast.__file__).parent
    private = re.compile(
        r"^\s*(from|import)\s+sklearn(\.\w+)*\._\w+"  # a private module
        r"|^\s*from\s+sklearn[\w.]*\s+import\s+.*\b_[a-z]\w*"  # a private name
    )
    offenders = [
        f"{path.name}:{i}: {line.strip()}"
        for path in package.glob("*.py")
        if path.name != "_sklearn_compat.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize("iprint", [-1, 0, 1, 99])
def test_lbfgs_iprint_options_as_sklearn(iprint):
    fixes = pytest.importorskip("sklearn.utils.fixes")
    reference = getattr(fixes, "_get_additional_lbfgs_options_dict", None)
    if reference is None:
        pytest.skip("this scikit-learn no longer has _get_additional_lbfgs_options_dict")
    assert compat.lbfgs_iprint_options(iprint) == reference("iprint", iprint)


@pytest.mark.parametrize(
    "nit, status, max_iter",
    [(5, 0, 10), (10, 1, 10), (12, 1, 10), (3, 2, 10), (7, 1, None), (4, 0, None)],
)
def test_check_lbfgs_result_as_sklearn(nit, status, max_iter):
    from sklearn.utils import optimize

    reference = getattr(optimize, "_check_optimize_result", None)
    if reference is None:
        pytest.skip("this scikit-learn no longer has _check_optimize_result")
    result = OptimizeResult(nit=nit, status=status, message="STOP: TOTAL NO. OF ITERATIONS")
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        n_ours = compat.check_lbfgs_result(result, max_iter)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        n_theirs = reference("lbfgs", result, max_iter)
    assert n_ours == n_theirs == (min(nit, max_iter) if max_iter else nit)
    assert [(w.category, str(w.message)) for w in ours] == [
        (w.category, str(w.message)) for w in theirs
    ]
    assert len(ours) == (status != 0)
    assert all(w.category is ConvergenceWarning for w in ours)
