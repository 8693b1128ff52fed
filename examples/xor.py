"""The lecture's XOR: a network with one hidden layer learns it; without one it cannot.

XOR is not linearly separable, so logistic regression (hidden_layer_sizes=(), an MLP with no
hidden layer) gets at most 3 of the 4 points right; trained to its optimum (all weights 0) it
predicts p = 1/2 everywhere and one class for all four points: 50%. A hidden layer of four tanh
units learns XOR exactly.
"""

import numpy as np

from mlpfast import MLPClassifier

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
y = np.array([0, 1, 1, 0])

for hidden in [(), (4,)]:
    clf = MLPClassifier(
        hidden_layer_sizes=hidden, activation="tanh", solver="lbfgs", random_state=0, max_iter=1000
    ).fit(X, y)
    print(
        f"hidden_layer_sizes={hidden!s:5}: predictions {clf.predict(X)}, "
        f"accuracy {clf.score(X, y):.2f}"
    )
