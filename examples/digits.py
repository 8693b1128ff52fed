"""Handwritten digits (shipped with scikit-learn): mlpfast and scikit-learn side by side, the
same hyper-parameters and random_state, hence (in float64) the same model up to rounding."""

import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from mlpfast import MLPClassifier

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
params = dict(hidden_layer_sizes=(64,), max_iter=200, random_state=0)

for name, cls in [("mlpfast", MLPClassifier), ("scikit-learn", SkMLPClassifier)]:
    start = time.perf_counter()
    clf = cls(**params).fit(X_train, y_train)
    elapsed = time.perf_counter() - start
    print(
        f"{name:>12}: test accuracy {clf.score(X_test, y_test):.4f}, {clf.n_iter_} epochs, "
        f"{elapsed:.2f} s, final loss {clf.loss_:.6f}"
    )
