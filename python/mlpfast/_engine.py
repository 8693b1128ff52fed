"""The one place where the estimators reach the numeric core.

The estimators call ``_engine.forward``, ``_engine.loss_grad`` and ``_engine.train_epoch``
(always through this module's attributes, so that tests can swap them). Their signatures and
semantics are those of the functions of the same names in :mod:`mlpfast.reference`.

Backends:

- ``"core"`` (the default): the compiled C++ core, :mod:`mlpfast._core`.
- ``"reference"``: the NumPy reference, :mod:`mlpfast.reference` -- bit for bit scikit-learn,
  slow. Chosen with the environment variable ``MLPFAST_ENGINE=reference`` (read once, at import),
  for tests that compare the two and for developing without the compiled core.

There is deliberately no silent fallback: if the core is asked for and lacks the functions,
importing mlpfast fails with an ImportError that says so.
"""

import os

DEFAULT_BACKEND = "core"  # development without the compiled core: "reference"

BACKEND = os.environ.get("MLPFAST_ENGINE", "") or DEFAULT_BACKEND

if BACKEND == "core":
    from . import _core

    if not all(hasattr(_core, name) for name in ("forward", "loss_grad", "train_epoch")):
        raise ImportError(
            "mlpfast._core lacks forward/loss_grad/train_epoch (built from an older source "
            "tree?); rebuild mlpfast, or set MLPFAST_ENGINE=reference to use the NumPy "
            "reference."
        )
    forward = _core.forward
    loss_grad = _core.loss_grad
    train_epoch = _core.train_epoch
elif BACKEND == "reference":
    from .reference import forward, loss_grad, train_epoch
else:
    raise ImportError(f"MLPFAST_ENGINE must be 'core' or 'reference', got {BACKEND!r}")

__all__ = ["BACKEND", "forward", "loss_grad", "train_epoch"]
