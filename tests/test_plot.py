"""mlpfast.plot's Display objects on matplotlib's Agg backend: the objects they build (lines,
their data, scales, labels) are checked, not pixels."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from mlpfast import MLPClassifier

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mlpfast.plot import GradientNormDisplay, TrainingCurveDisplay  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _fit(**kw):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MLPClassifier((6,), max_iter=6, random_state=0, **kw).fit(X, y)


def test_training_curve_from_estimator():
    clf = _fit()
    disp = TrainingCurveDisplay.from_estimator(clf)
    np.testing.assert_array_equal(disp.loss_line_.get_ydata(), clf.loss_curve_)
    np.testing.assert_array_equal(disp.loss_line_.get_xdata(), np.arange(1, clf.n_iter_ + 1))
    assert disp.score_line_ is None and disp.score_ax_ is None
    assert disp.figure_ is disp.ax_.figure and disp.ax_.get_xlabel() == "epoch"


def test_training_curve_with_validation_scores_on_given_axes():
    clf = _fit(early_stopping=True, n_iter_no_change=100)
    fig, ax = plt.subplots()
    disp = TrainingCurveDisplay.from_estimator(clf, ax=ax)
    assert disp.ax_ is ax and disp.figure_ is fig
    np.testing.assert_array_equal(disp.score_line_.get_ydata(), clf.validation_scores_)
    assert disp.score_ax_ is not ax and disp.score_ax_.get_ylabel() == "validation score"
    given = [0.5] * clf.n_iter_
    disp = TrainingCurveDisplay.from_estimator(clf, validation_scores=given)
    np.testing.assert_array_equal(disp.score_line_.get_ydata(), given)


def test_training_curve_needs_a_curve():
    with pytest.raises(ValueError, match="loss_curve_"):
        TrainingCurveDisplay.from_estimator(MLPClassifier())


def test_gradient_norm_display():
    norms = np.array([[1e-5, 1e-3, 1e-1], [2e-5, 2e-3, 2e-1]])
    disp = GradientNormDisplay(grad_norms=norms).plot()
    assert len(disp.lines_) == 3 and disp.ax_.get_yscale() == "log"
    for i, line in enumerate(disp.lines_):
        np.testing.assert_array_equal(line.get_ydata(), norms[:, i])
        assert line.get_label() == f"layer {i + 1}"
    assert [t.get_text() for t in disp.ax_.get_legend().get_texts()] == [
        "layer 1",
        "layer 2",
        "layer 3",
    ]
    with pytest.raises(ValueError, match="2-D"):
        GradientNormDisplay(grad_norms=norms[0])
    with pytest.raises(ValueError, match="layer_names"):
        GradientNormDisplay(grad_norms=norms, layer_names=["a"])


def test_gradient_norm_display_from_monitor():
    pytest.importorskip("sklearn.callback", reason="needs scikit-learn >= 1.9")
    from mlpfast.callback import GradientNormMonitor

    monitor = GradientNormMonitor()
    with pytest.raises(ValueError, match="no run"):
        GradientNormDisplay.from_monitor(monitor)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 4))
    y = (X[:, 0] > 0).astype(int)
    clf = MLPClassifier((5, 5), max_iter=4, random_state=0).set_callbacks(monitor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    disp = GradientNormDisplay.from_monitor(monitor)
    assert len(disp.lines_) == 3 and disp.ax_.get_title() == "MLPClassifier"
    np.testing.assert_array_equal(disp.lines_[0].get_ydata(), monitor.grad_norms_[:, 0])
