"""The lecture's vanishing gradients: the same deep, narrow network with the sigmoid and with ReLU.

Ten hidden layers of 32 units learn the digits by SGD. Back-propagation multiplies each layer's
error by the activation's derivative on its way down: the sigmoid's is at most 1/4, so the
gradient reaching the first layers is orders of magnitude smaller than the last layer's, and
those layers barely learn. ReLU's derivative is 1 where a unit is active: the gradient arrives
at the first layer about as large as at the last.

mlpfast.callback.GradientNormMonitor records each layer's gradient norm per epoch (computed by
the core from the gradients it forms anyway); mlpfast.plot.GradientNormDisplay draws one line
per layer on a log scale. Needs matplotlib (pip install "mlpfast[plot]") and scikit-learn >= 1.9.

    python examples/vanishing_gradients.py [--out docs/vanishing_gradients.png] [--epochs 30]
"""

import argparse
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from mlpfast import MLPClassifier  # noqa: E402
from mlpfast.callback import GradientNormMonitor  # noqa: E402
from mlpfast.plot import GradientNormDisplay  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="vanishing_gradients.png", help="where to save the figure")
parser.add_argument("--epochs", type=int, default=30)
args = parser.parse_args()

X, y = load_digits(return_X_y=True)
X = X / 16
hidden = (32,) * 10

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, activation in zip(axes, ["logistic", "relu"]):
    monitor = GradientNormMonitor()
    clf = MLPClassifier(
        hidden,
        activation=activation,
        solver="sgd",
        learning_rate_init=0.05,
        max_iter=args.epochs,
        random_state=0,
    ).set_callbacks(monitor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    norms = monitor.grad_norms_  # (epochs, 11 weight layers)
    first, last = norms[:, 0].mean(), norms[:, -1].mean()
    print(
        f"{activation:>8}: training accuracy {clf.score(X, y):.2f}; mean gradient norm of "
        f"layer 1 {first:.2e}, of layer {norms.shape[1]} {last:.2e} (ratio {last / first:.1e})"
    )
    GradientNormDisplay.from_monitor(monitor, ax=ax)
    ax.set_title(f"activation='{activation}', 10 hidden layers of 32")
    if activation == "relu":  # one legend, where the ReLU panel has room
        ax.legend(
            fontsize="x-small", ncol=3, loc="lower center", title="weight layer (input first)"
        )
    else:
        ax.get_legend().remove()
fig.tight_layout()
fig.savefig(args.out, dpi=80)
print(f"figure: {args.out}")
