"""Pictures of a training run, as scikit-learn's Display objects (``LearningCurveDisplay``):
build one from a fitted estimator or a monitor (``from_estimator`` / ``from_monitor``) or from
arrays, draw it with ``.plot(ax=...)``; the matplotlib objects are kept as attributes (``ax_``,
``figure_``, ``lines_``). Needs matplotlib: ``pip install "mlpfast[plot]"``.

- ``TrainingCurveDisplay``: the loss per epoch (``loss_curve_``) and, on a second axis, the
  validation score per epoch (``validation_scores_`` of early stopping, or any sequence given).
- ``GradientNormDisplay``: per-layer gradient norms per epoch (``mlpfast.callback
  .GradientNormMonitor``), one line per weight layer, log scale: vanishing gradients show as
  the early layers' lines lying orders of magnitude below the late ones'
  (examples/vanishing_gradients.py).
"""

import numpy as np

__all__ = ["TrainingCurveDisplay", "GradientNormDisplay"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            'mlpfast.plot needs matplotlib: pip install "mlpfast[plot]" (or matplotlib)'
        ) from exc
    return plt


def _axes(ax):
    if ax is None:
        _, ax = _pyplot().subplots()
    else:
        _pyplot()
    return ax


class TrainingCurveDisplay:
    """Loss curve and validation scores of one fit.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
    validation_scores : array-like of shape (n_epochs,), default=None
    estimator_name : str, default=None

    Attributes (after ``plot``)
    ---------------------------
    ax_ : matplotlib Axes (the loss); score_ax_ : its twin for the scores, or None
    figure_ : matplotlib Figure
    loss_line_, score_line_ : matplotlib Line2D (score_line_ None without scores)
    """

    def __init__(self, *, loss_curve, validation_scores=None, estimator_name=None):
        self.loss_curve = np.asarray(loss_curve, dtype=float)
        self.validation_scores = (
            None if validation_scores is None else np.asarray(validation_scores, dtype=float)
        )
        self.estimator_name = estimator_name

    @classmethod
    def from_estimator(cls, estimator, *, validation_scores=None, ax=None):
        """From a fitted MLP trained by "sgd" or "adam" (``loss_curve_``); the scores are
        ``validation_scores`` when given (e.g. from a ``ValidationScoringMonitor``), else the
        estimator's ``validation_scores_`` (early stopping), else none."""
        loss_curve = getattr(estimator, "loss_curve_", None)
        if loss_curve is None:
            raise ValueError(
                f"{type(estimator).__name__} has no loss_curve_: fit it first, with solver "
                "'sgd' or 'adam' (L-BFGS records no curve)"
            )
        if validation_scores is None:
            validation_scores = getattr(estimator, "validation_scores_", None)
        display = cls(
            loss_curve=loss_curve,
            validation_scores=validation_scores,
            estimator_name=type(estimator).__name__,
        )
        return display.plot(ax=ax)

    def plot(self, ax=None, *, loss_kw=None, score_kw=None):
        ax = _axes(ax)
        epochs = np.arange(1, len(self.loss_curve) + 1)
        (self.loss_line_,) = ax.plot(
            epochs, self.loss_curve, **{"label": "loss", **(loss_kw or {})}
        )
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        if self.estimator_name:
            ax.set_title(self.estimator_name)
        self.score_ax_ = self.score_line_ = None
        if self.validation_scores is not None:
            self.score_ax_ = ax.twinx()
            s_epochs = np.arange(1, len(self.validation_scores) + 1)
            kw = {"label": "validation score", "color": "C1", **(score_kw or {})}
            (self.score_line_,) = self.score_ax_.plot(s_epochs, self.validation_scores, **kw)
            self.score_ax_.set_ylabel("validation score")
        self.ax_, self.figure_ = ax, ax.figure
        return self


class GradientNormDisplay:
    """Per-layer gradient norms per epoch, one line per weight layer, log scale.

    Parameters
    ----------
    grad_norms : array-like of shape (n_epochs, n_weight_layers)
        As ``GradientNormMonitor.grad_norms_`` (its docstring says what a value is).
    layer_names : list of str, default=None
        One per weight layer; default "layer 1" (the input's weights) ... "layer L" (the
        output's).
    title : str, default=None

    Attributes (after ``plot``)
    ---------------------------
    ax_ : matplotlib Axes; figure_ : matplotlib Figure
    lines_ : list of matplotlib Line2D, one per layer
    """

    def __init__(self, *, grad_norms, layer_names=None, title=None):
        grad_norms = np.asarray(grad_norms, dtype=float)
        if grad_norms.ndim != 2:
            raise ValueError(
                f"grad_norms must be 2-D (n_epochs, n_weight_layers), got shape {grad_norms.shape}"
            )
        if layer_names is None:
            layer_names = [f"layer {i + 1}" for i in range(grad_norms.shape[1])]
        if len(layer_names) != grad_norms.shape[1]:
            raise ValueError(
                f"{len(layer_names)} layer_names for {grad_norms.shape[1]} weight layers"
            )
        self.grad_norms, self.layer_names, self.title = grad_norms, list(layer_names), title

    @classmethod
    def from_monitor(cls, monitor, *, run=-1, ax=None, **plot_kw):
        """From a ``mlpfast.callback.GradientNormMonitor``'s run (default: the most recent)."""
        if not monitor.runs_:
            raise ValueError("the GradientNormMonitor has recorded no run (set it, then fit)")
        record = monitor.runs_[run]
        return cls(grad_norms=record["grad_norms"], title=record["estimator_name"]).plot(
            ax=ax, **plot_kw
        )

    def plot(self, ax=None, *, cmap="viridis", **line_kw):
        ax = _axes(ax)
        colors = _pyplot().get_cmap(cmap)(np.linspace(0.0, 0.9, self.grad_norms.shape[1]))
        epochs = np.arange(1, self.grad_norms.shape[0] + 1)
        self.lines_ = [
            ax.plot(epochs, self.grad_norms[:, i], color=colors[i], label=name, **line_kw)[0]
            for i, name in enumerate(self.layer_names)
        ]
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("gradient norm ||dL/dW||")
        if self.title:
            ax.set_title(self.title)
        ax.legend(fontsize="small")
        self.ax_, self.figure_ = ax, ax.figure
        return self
