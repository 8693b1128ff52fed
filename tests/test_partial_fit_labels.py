"""partial_fit's label encoding after the first call (_known_labels in _multilayer_perceptron.py):
one pass over y instead of scikit-learn's unique_labels + LabelBinarizer.transform, which cost
about as much as an epoch of a small network on a 10,000-row block (bench/bench_dask.py).

The reference is scikit-learn's own path: the fitted binarizer's transform, and the same calls
made with y as a list (which the fast path leaves to scikit-learn)."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from mlpfast import MLPClassifier, MLPRegressor
from mlpfast._multilayer_perceptron import _known_labels

RNG = np.random.default_rng(0)
X = RNG.standard_normal((120, 5))


def _started(classes, **params):
    """A classifier after one partial_fit call (its binarizer fitted on `classes`)."""
    model = MLPClassifier(hidden_layer_sizes=(4,), random_state=0, **params)
    y0 = np.resize(np.asarray(classes), 12)
    model.partial_fit(X[:12], y0, classes=classes)
    return model


@pytest.mark.parametrize(
    "classes, y",
    [
        ([3, 7], RNG.choice([3, 7], 50)),  # binary: one column, for classes_[1]
        ([3, 7], np.full(50, 3)),  # binary, one class present in this block
        (list(range(10)), RNG.integers(0, 10, 50)),  # multiclass: one-hot
        ([0, 1, 2], RNG.choice([0, 2], 50)),  # multiclass, a class absent from this block
        ([-5, 0, 9, 11], RNG.choice([-5, 0, 9, 11], 50).astype(np.int32)),
        ([0, 1, 2, 3], RNG.integers(0, 4, 50).astype(np.uint8)),
    ],
    ids=["binary", "binary-one-present", "ten", "absent", "negative-int32", "uint8"],
)
def test_known_labels_equal_scikit_learn_binarizer(classes, y):
    model = _started(classes)
    fast = _known_labels(model, y)
    assert fast is not None
    expected = model._label_binarizer.transform(y).astype(bool)  # scikit-learn's encoding
    assert fast.dtype == expected.dtype and fast.shape == expected.shape
    assert fast.flags.c_contiguous
    assert_array_equal(fast, expected)


@pytest.mark.parametrize(
    "y",
    [
        [0, 1, 2] * 10,  # a list: scikit-learn's path
        np.array([0.0, 1.0, 2.0] * 10),  # float labels
        np.array([[0], [1], [2]] * 10),  # a column (scikit-learn warns and ravels)
        np.array([0, 1, 5] * 10),  # 5 is not a known class: scikit-learn's error
    ],
    ids=["list", "float", "column", "unseen"],
)
def test_known_labels_leave_other_input_to_scikit_learn(y):
    assert _known_labels(_started([0, 1, 2]), y) is None


def test_known_labels_only_for_a_plain_classifier_in_partial_fit():
    y = np.array([0, 1, 2] * 10)
    assert _known_labels(_started([0, 1, 2], warm_start=True), y) is None
    assert _known_labels(_started(["a", "b", "c"]), np.array(["a", "b", "c"] * 10)) is None
    regressor = MLPRegressor(hidden_layer_sizes=(4,)).partial_fit(X[:30], y.astype(float))
    assert _known_labels(regressor, y) is None


def test_unseen_label_raises_scikit_learns_error_and_trains_nothing():
    model = _started([0, 1, 2])
    before = model._params.copy()
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        model.partial_fit(X[:30], np.array([0, 1, 5] * 10))
    assert_array_equal(model._params, before)


@pytest.mark.parametrize("classes", [[0, 1], [0, 1, 2, 3]], ids=["binary", "multiclass"])
def test_partial_fit_blocks_same_model_as_scikit_learns_path(classes):
    """The fast path (y an int ndarray) and scikit-learn's (y a list) train the same model."""
    fast, slow = _started(classes), _started(classes)
    for start in range(12, 120, 36):
        y = RNG.choice(classes, 36)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # neither path warns
            fast.partial_fit(X[start : start + 36], y, classes=classes)
            slow.partial_fit(X[start : start + 36], y.tolist(), classes=classes)
    assert_array_equal(fast._params, slow._params)
    assert_array_equal(fast._opt_state, slow._opt_state)
    assert fast.t_ == slow.t_ and fast.loss_curve_ == slow.loss_curve_
