"""scikit-learn's estimator API conformance checks, for both estimators and every solver."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from mlpfast import MLPClassifier, MLPRegressor

# Small max_iter keeps the suite fast; the checks that need a converged model pass anyway, as
# for scikit-learn's own instances (which use max_iter=100).
ESTIMATORS = [
    MLPClassifier(max_iter=100, random_state=0),
    MLPClassifier(solver="lbfgs", max_iter=100, random_state=0),
    MLPRegressor(max_iter=100, random_state=0),
    MLPClassifier(solver="sgd", activation="prelu", max_iter=100, random_state=0),
    MLPRegressor(activation="leaky_relu", max_iter=100, random_state=0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
