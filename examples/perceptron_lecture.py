"""The lecture's opening sequence: a perceptron learns AND and OR, cannot learn XOR, and a
network with one hidden layer can.

The perceptron is a threshold unit, y_hat = step(w.x + b), trained one sample at a time by
w <- w + eta (y - y_hat) x. AND and OR are linearly separable, so the perceptron convergence
theorem says it finds a separating line in finitely many updates. XOR is not: no line puts
(0,1) and (1,0) on one side and (0,0) and (1,1) on the other, so at least one of the four
points is always wrong. A hidden layer bends the boundary and solves it.

Run: python examples/perceptron_lecture.py
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mlpfast import MLPClassifier, Perceptron

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
GATES = {
    "AND": np.array([0, 0, 0, 1]),
    "OR": np.array([0, 1, 1, 1]),
    "XOR": np.array([0, 1, 1, 0]),
}


def show(name, model, y):
    pred = model.predict(X)
    rows = ", ".join(f"{a:g}{b:g}->{p}" for (a, b), p in zip(X, pred))
    correct = int((pred == y).sum())
    print(f"  {name:4s} {rows}   {correct}/4 correct")
    return correct


def main():
    results = {}
    print("Perceptron (step(w.x + b), update w += eta (y - y_hat) x):")
    for name, y in GATES.items():
        # shuffle=False: the four points in order, epoch after epoch; tol=None: run all epochs
        clf = Perceptron(max_iter=100, tol=None, shuffle=False).fit(X, y)
        correct = show(name, clf, y)
        w, b = clf.coef_[0], clf.intercept_[0]
        print(f"       w = {w}, b = {b:g}")
        results[("perceptron", name)] = correct

    print("MLPClassifier, one hidden layer of 4 tanh units (lbfgs):")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(
            hidden_layer_sizes=(4,), activation="tanh", solver="lbfgs", max_iter=1000,
            random_state=1,
        ).fit(X, GATES["XOR"])  # fmt: skip
    results[("mlp", "XOR")] = show("XOR", mlp, GATES["XOR"])

    print()
    print(f"The perceptron learns AND: {results[('perceptron', 'AND')] == 4}, "
          f"OR: {results[('perceptron', 'OR')] == 4}, "
          f"XOR: {results[('perceptron', 'XOR')] == 4} (no line separates XOR)")  # fmt: skip
    print(f"One hidden layer learns XOR: {results[('mlp', 'XOR')] == 4}")
    return results


if __name__ == "__main__":
    main()
