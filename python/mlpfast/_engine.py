"""The one place where the estimators reach the numeric core.

The estimators call ``_engine.forward``, ``_engine.loss_grad`` and ``_engine.train_epoch``
(always through this module's attributes, so that tests can swap them). Their signatures and
semantics are those of the functions of the same names in :mod:`mlpfast.reference`.

Backends:

- ``"core"`` (the default): the compiled C++ core, :mod:`mlpfast._core`.
- ``"reference"``: the NumPy reference, :mod:`mlpfast.reference` -- bit for bit scikit-learn,
  slow. Chosen with the environment variable ``MLPFAST_ENGINE=reference`` (read once, at import),
  for tests that compare the two and for developing without the compiled core.

``predict_forward`` is the estimators' fast path for predictions (checks and forward pass in
one call; see ``mlpfast._core.predict_forward``): the core's, or None with the reference backend
(then every prediction takes scikit-learn's path and ``forward``, with the same results). It is
optional (not among the required names below): without it, predictions take that path too.

Besides the three functions, the module names what the active backend implements:
``ACTIVATIONS`` (hidden), ``OUTPUT_ACTIVATIONS`` and ``SOLVERS`` (those of ``train_epoch``),
tuples of strings. The estimators validate their parameters against them and the tests
parametrise over them, so a name added to the core needs no list on the Python side.

There is deliberately no silent fallback: if the core is asked for and lacks the functions,
importing mlpfast fails with an ImportError that says so.
"""

import os

DEFAULT_BACKEND = "core"  # development without the compiled core: "reference"

BACKEND = os.environ.get("MLPFAST_ENGINE", "") or DEFAULT_BACKEND

if BACKEND == "core":
    from . import _core as _source

    _NAMES = ("ACTIVATIONS", "OUTPUT_ACTIVATIONS", "SOLVERS")
    _missing = [
        name
        for name in ("forward", "loss_grad", "train_epoch", "set_default_threads", *_NAMES)
        if not hasattr(_source, name)
    ]
    if _missing:
        raise ImportError(
            f"mlpfast._core lacks {', '.join(_missing)} (built from an older source tree?); "
            "rebuild mlpfast, or set MLPFAST_ENGINE=reference to use the NumPy reference."
        )
    # The core's default team honours CPU affinity and cgroup CPU quotas (v1 and v2) as joblib's
    # loky does; OMP_NUM_THREADS and threadpoolctl still override it (csrc/threads.h).
    from joblib import cpu_count

    _source.set_default_threads(cpu_count(only_physical_cores=False))
elif BACKEND == "reference":
    from . import reference as _source

    _NAMES = ("HIDDEN_ACTIVATIONS", "OUTPUT_ACTIVATIONS", "SOLVERS")
else:
    raise ImportError(f"MLPFAST_ENGINE must be 'core' or 'reference', got {BACKEND!r}")

forward = _source.forward
loss_grad = _source.loss_grad
train_epoch = _source.train_epoch
predict_forward = getattr(_source, "predict_forward", None)
ACTIVATIONS, OUTPUT_ACTIVATIONS, SOLVERS = (tuple(getattr(_source, name)) for name in _NAMES)

__all__ = [
    "BACKEND",
    "forward",
    "loss_grad",
    "train_epoch",
    "predict_forward",
    "ACTIVATIONS",
    "OUTPUT_ACTIVATIONS",
    "SOLVERS",
]
