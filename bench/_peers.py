"""What the benchmarks compare: mlpfast, the NumPy baseline (mlpfast.reference), scikit-learn's
MLPClassifier and a PyTorch CPU training loop, all on the lecture's example network.

Each peer is set up the same way: the same synthetic data, the same initial weights (Glorot
uniform, drawn as scikit-learn draws them), the same optimizer settings.
"""

import numpy as np

LECTURE_UNITS = (784, 500, 500, 10)  # the lecture's example network
N_CLASSES = 10


def synthetic_classification(
    n_samples, n_features=784, n_classes=N_CLASSES, dtype=np.float32, seed=0, separation=1.0
):
    """Gaussian blobs (standard deviation 2) around random class centres (standard normal, times
    `separation`). At 1.0 every class is learnt within an epoch (100 % on held-out data, which
    suits speed); at 0.25 the lecture's network reaches about 91-92 % in 3 epochs, so that a
    change of accuracy can show."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, n_features), dtype=np.float32)
    if separation != 1.0:
        centres *= np.float32(separation)
    y = rng.integers(0, n_classes, n_samples)
    X = rng.standard_normal((n_samples, n_features), dtype=np.float32)
    X *= 2.0
    X += centres[y]
    return X.astype(dtype, copy=False), y


def one_hot(y, n_classes=N_CLASSES, dtype=np.float32):
    Y = np.zeros((len(y), n_classes), dtype=dtype)
    Y[np.arange(len(y)), y] = 1
    return Y


def init_params(units, dtype=np.float32, seed=0):
    """Flat parameter buffer (mlpfast.reference's layout) with scikit-learn's Glorot draws."""
    rng = np.random.RandomState(seed)
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(units[:-1], units[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)).ravel())
        intercepts.append(rng.uniform(-bound, bound, fan_out))
    return np.concatenate(coefs + intercepts).astype(dtype)


def lecture_epoch(train_epoch, params, state, X, Y, order, batch_size, **hyper):
    """One Adam epoch of the lecture's network (ReLU, softmax output, no sample weights) through
    `train_epoch`: mlpfast._core's or mlpfast.reference's. Returns (loss, t)."""
    return train_epoch(
        params,
        state,
        LECTURE_UNITS,
        "relu",
        "softmax",
        X,
        Y,
        None,
        order,
        batch_size,
        solver="adam",
        **hyper,
    )


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


class TorchLoop:
    """The PyTorch CPU loop a user would write: nn.Sequential of Linear/ReLU,
    CrossEntropyLoss, torch.optim.Adam (or plain SGD).

    autocast=True: each step's forward pass and loss run under
    ``torch.autocast("cpu", dtype=torch.bfloat16)``, entered anew at every step, as PyTorch's
    AMP documentation prescribes (backward and the optimizer step outside it). One autocast
    context around a whole epoch does not train: autocast caches the bf16 copy of each weight
    until the context exits, and the optimizer's in-place updates do not refresh it, so every
    forward pass of the epoch used the first step's weights (the loss stayed at ln 10)."""

    def __init__(
        self, units=LECTURE_UNITS, solver="adam", lr=1e-3, dtype=np.float32, seed=0,
        autocast=False,
    ):  # fmt: skip
        import torch

        self.torch = torch
        self.autocast = autocast
        torch.manual_seed(seed)
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(units[:-1], units[1:])):
            if i:
                layers.append(torch.nn.ReLU())
            layers.append(torch.nn.Linear(fan_in, fan_out))
        self.dtype = torch.float32 if dtype == np.float32 else torch.float64
        self.model = torch.nn.Sequential(*layers).to(self.dtype)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        if solver == "adam":
            self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        else:
            self.opt = torch.optim.SGD(self.model.parameters(), lr=lr)

    def tensors(self, X, y):
        return self.torch.from_numpy(X).to(self.dtype), self.torch.from_numpy(y).long()

    def step(self, xb, yb):
        self.opt.zero_grad(set_to_none=True)
        with self.torch.autocast("cpu", dtype=self.torch.bfloat16, enabled=self.autocast):
            loss = self.loss_fn(self.model(xb), yb)
        loss.backward()
        self.opt.step()
        return loss

    def epoch(self, X_t, y_t, batch_size, order):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            self.step(X_t[idx], y_t[idx])

    def predict_proba(self, X_t):
        with self.torch.no_grad():
            return self.torch.softmax(self.model(X_t), dim=1)
