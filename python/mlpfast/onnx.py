"""ONNX export of mlpfast's estimators, through skl2onnx.

Importing this module registers, with skl2onnx, a shape calculator and a converter for
:class:`mlpfast.MLPClassifier` and :class:`mlpfast.MLPRegressor` (``update_registered_converter``,
as skl2onnx documents for custom models). From then on ``skl2onnx.to_onnx`` converts them, alone
or inside a Pipeline; :func:`to_onnx` is a convenience for a single estimator. Importing mlpfast
itself does not import skl2onnx. Install with ``pip install "mlpfast[onnx]"``.

The graph is mlpfast.reference.forward, written in ONNX operators (skl2onnx's converter for
scikit-learn's MLP, skl2onnx/operator_converters/multilayer_perceptron.py, is the model)::

    A[0] = X                          (Cast to the compute dtype where needed)
    Z[l] = MatMul(A[l-1], W[l]) + b[l]
    A[l] = g(Z[l])      hidden: Identity, Sigmoid, Tanh, Relu, LeakyRelu (0.01), Softplus,
                                PRelu (slope tensor prelu_slopes_[l], broadcast over the rows)
    A[L] = out(Z[L])    Softmax (axis 1), Sigmoid, Identity or Exp (Poisson loss)

Outputs, named and typed as skl2onnx's converter for scikit-learn's MLP gives them:

- classifier: ``label`` (int64 for integer, boolean or integer-valued float classes, else string;
  shape [N], for multilabel the int64 indicator matrix [N, n_classes]) and ``probabilities``
  [N, n_classes] (binary: [1 - p, p]). The options ``zipmap`` (skl2onnx's default True: a
  sequence of {class: probability} maps, float32 as ONNX's ZipMap requires; False: the plain
  tensor; "columns"), ``nocl`` and ``output_class_labels`` behave as for scikit-learn's
  MLPClassifier. ``to_onnx`` defaults to ``zipmap=False``: plain tensors, in full precision.
- regressor: ``variable`` [N, n_outputs] (also [N, 1] for one output, where predict gives [N]).

Dtypes. The graph computes in the dtype the estimators' predict computes in (numpy's dtype of
X @ coefs_): float32 when the input and the model are both float32, else float64. Outputs are
typed as skl2onnx types them from the input: float for float32 (and integer) input, double for
float64 input. ``to_onnx(model)`` takes the input in the model's dtype (FloatTensorType for a
float32 model, DoubleTensorType for float64), so the whole graph is in the model's dtype. Two
exceptions: onnxruntime has no float64 kernels for LeakyRelu, PRelu and Softplus, so in float64
the graph spells them out (Where(Z > 0, Z, s * Z); Relu(Z) + Log(1 + Exp(-|Z|)), which is
numpy's logaddexp(0, Z)); and ZipMap's maps are float32 whatever the input (ONNX's ZipMap takes
float only; for scikit-learn's MLP with float64 input skl2onnx writes a model onnxruntime
refuses to load, for mlpfast's the probabilities are cast to float32 before ZipMap).
"""

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

try:
    import skl2onnx
    from skl2onnx import update_registered_converter
    from skl2onnx._parse import _apply_zipmap, _parse_sklearn_classifier
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
        guess_proto_type,
    )
    from skl2onnx.common.utils import (
        check_input_and_output_numbers,
        check_input_and_output_types,
    )
    from skl2onnx.common.utils_classifier import get_label_classes
    from skl2onnx.proto import onnx_proto
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mlpfast.onnx needs skl2onnx and onnx (and onnxruntime to run the models): "
        'pip install "mlpfast[onnx]"'
    ) from exc

from ._multilayer_perceptron import MLPClassifier, MLPRegressor
from .reference import LEAKY_RELU_SLOPE

__all__ = ["to_onnx"]

_FLOAT = onnx_proto.TensorProto.FLOAT
_DOUBLE = onnx_proto.TensorProto.DOUBLE
_INT64 = onnx_proto.TensorProto.INT64
_STRING = onnx_proto.TensorProto.STRING
_NUMPY_DTYPE = {_FLOAT: np.float32, _DOUBLE: np.float64}
_CLASSIFIER_ALIAS = "MlpfastMLPClassifier"
_INPUT_TYPES = [FloatTensorType, DoubleTensorType, Int64TensorType, BooleanTensorType]

# One-operator activations; leaky_relu, softplus and prelu are in _activation.
_ONNX_OPERATOR = {"logistic": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "exp": "Exp"}


# --- graph building ---------------------------------------------------------------------------


def _node(scope, container, op_type, inputs, output=None, **attrs):
    """Add one operator; return the name of its output (a fresh one unless given)."""
    output = output or scope.get_unique_variable_name(op_type.lower())
    container.add_node(
        op_type, inputs, output, name=scope.get_unique_operator_name(op_type), **attrs
    )
    return output


def _constant(scope, container, value, proto, shape=None):
    value = np.asarray(value)
    name = scope.get_unique_variable_name("constant")
    shape = list(value.shape if shape is None else shape)
    container.add_initializer(name, proto, shape, value.ravel().tolist())
    return name


def _activation(scope, container, name, z, compute, slopes=None):
    """g(z) in the compute dtype; slopes: PReLU's per-unit slopes."""
    if name == "identity":
        return z
    if name == "softmax":
        return _node(scope, container, "Softmax", [z], axis=1)
    if name in _ONNX_OPERATOR:
        return _node(scope, container, _ONNX_OPERATOR[name], [z])
    if name in ("leaky_relu", "prelu"):
        if compute == _FLOAT and name == "leaky_relu":
            return _node(scope, container, "LeakyRelu", [z], alpha=LEAKY_RELU_SLOPE)
        slope = [LEAKY_RELU_SLOPE] if name == "leaky_relu" else slopes
        slope = _constant(scope, container, np.asarray(slope, _NUMPY_DTYPE[compute]), compute)
        if compute == _FLOAT:
            return _node(scope, container, "PRelu", [z, slope])
        # z > 0 ? z : s * z, exactly the definition (onnxruntime lacks double PRelu/LeakyRelu)
        zero = _constant(scope, container, np.zeros(1), compute)
        positive = _node(scope, container, "Greater", [z, zero])
        scaled = _node(scope, container, "Mul", [z, slope])
        return _node(scope, container, "Where", [positive, z, scaled])
    if name == "softplus":
        if compute == _FLOAT:
            return _node(scope, container, "Softplus", [z])
        # max(z, 0) + log(1 + exp(-|z|)): numpy's logaddexp(0, z), stable for any z; the log
        # of 1 + tiny loses nothing beyond 1e-16 absolute (onnxruntime lacks double Softplus).
        one = _constant(scope, container, np.ones(1), compute)
        neg_abs = _node(scope, container, "Neg", [_node(scope, container, "Abs", [z])])
        log1p = _node(
            scope,
            container,
            "Log",
            [_node(scope, container, "Add", [one, _node(scope, container, "Exp", [neg_abs])])],
        )
        return _node(scope, container, "Add", [_node(scope, container, "Relu", [z]), log1p])
    raise ValueError(f"mlpfast.onnx cannot convert activation {name!r}")


def _compute_dtype(model, input_var):
    """float32 when the input and the model are both float32 (numpy's dtype of X @ coefs_)."""
    input_proto = guess_proto_type(input_var.type)
    return _FLOAT if input_proto == _FLOAT and model.coefs_[0].dtype == np.float32 else _DOUBLE


def _forward(scope, container, model, input_var, compute):
    """Name of the output layer's activations A[L], computed in `compute`."""
    a = input_var.full_name
    if guess_proto_type(input_var.type) != compute:
        a = _node(scope, container, "Cast", [a], to=compute)
    slopes = getattr(model, "prelu_slopes_", None) if model.activation == "prelu" else None
    dtype = _NUMPY_DTYPE[compute]
    last = len(model.coefs_) - 1
    for layer, (coef, intercept) in enumerate(zip(model.coefs_, model.intercepts_)):
        w = _constant(scope, container, coef.astype(dtype), compute)
        b = _constant(scope, container, intercept.astype(dtype), compute, [1, intercept.size])
        z = _node(scope, container, "Add", [_node(scope, container, "MatMul", [a, w]), b])
        if layer < last:
            a = _activation(
                scope,
                container,
                model.activation,
                z,
                compute,
                None if slopes is None else slopes[layer],
            )
        else:
            a = _activation(scope, container, model.out_activation_, z, compute)
    return a


def _to_output(scope, container, name, output_var, compute):
    """Write name into the operator's output, cast to the output's declared dtype."""
    output_proto = guess_proto_type(output_var.type)
    if output_proto == compute:
        return _node(scope, container, "Identity", [name], output_var.full_name)
    return _node(scope, container, "Cast", [name], output_var.full_name, to=output_proto)


# --- classifier -------------------------------------------------------------------------------


def _is_multilabel(model):
    return model._label_binarizer.y_type_ == "multilabel-indicator"


def _class_labels(classes):
    """The classes as an ONNX constant: (values, proto), int64 or UTF-8 strings. Float classes
    are integer-valued (scikit-learn refuses others) and become int64, as in skl2onnx."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biuf" or all(isinstance(c, (int, np.integer)) for c in classes):
        return classes.astype(np.int64), _INT64
    return np.array([str(c).encode("utf-8") for c in classes]), _STRING


def _parse_classifier(scope, model, inputs, custom_parsers=None):
    """skl2onnx's parser for classifiers, except that with zipmap=True and float64 input the
    probabilities handed to ZipMap are declared float32: ONNX's ZipMap takes float only, and
    skl2onnx's own parser would declare them float64 (for scikit-learn's MLP it writes a model
    that onnxruntime refuses to load). Uses two private functions of skl2onnx (1.17 to 1.20)."""
    options = scope.get_options(model, {"zipmap": True, "output_class_labels": False})
    float64_zipmap = options["zipmap"] is True and not options["output_class_labels"]
    if not float64_zipmap or guess_proto_type(inputs[0].type) != _DOUBLE:
        return _parse_sklearn_classifier(scope, model, inputs, custom_parsers)
    operator = scope.declare_local_operator(_CLASSIFIER_ALIAS, model)
    operator.inputs = inputs
    operator.outputs.append(scope.declare_local_variable("label", Int64TensorType()))
    operator.outputs.append(scope.declare_local_variable("probabilities", FloatTensorType()))
    return _apply_zipmap(True, scope, model, FloatTensorType(), operator.outputs)


def _classifier_shapes(operator):
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=2)
    check_input_and_output_types(operator, good_input_types=_INPUT_TYPES)
    model = operator.raw_operator
    n_rows = operator.inputs[0].get_first_dimension()
    n_classes = len(model.classes_)
    if n_classes < 2:
        raise ValueError("ONNX export needs a classifier fitted on at least two classes")
    if _is_multilabel(model):
        operator.outputs[0].type = Int64TensorType([n_rows, n_classes])
    else:
        _, proto = _class_labels(get_label_classes(operator.scope_inst, model))
        label_type = Int64TensorType if proto == _INT64 else StringTensorType
        operator.outputs[0].type = label_type([n_rows])
    operator.outputs[1].type.shape = [n_rows, n_classes]


def _convert_classifier(scope, operator, container):
    model = operator.raw_operator
    label_var, proba_var = operator.outputs
    compute = _compute_dtype(model, operator.inputs[0])
    p = _forward(scope, container, model, operator.inputs[0], compute)
    if model.n_outputs_ == 1:  # binary: scikit-learn's predict_proba is [1 - p, p]
        one = _constant(scope, container, np.ones(1), compute, [1, 1])
        p_negative = _node(scope, container, "Sub", [one, p])
        probabilities = _node(scope, container, "Concat", [p_negative, p], axis=1)
    else:
        probabilities = p
    # Labels from the compute-dtype probabilities, by predict's rules: multilabel p > 0.5;
    # else the first maximum, which for binary is p > 0.5 too (1 - p is exact for p >= 0.5).
    if _is_multilabel(model):
        half = _constant(scope, container, np.full(1, 0.5), compute)
        above = _node(scope, container, "Greater", [p, half])
        _node(scope, container, "Cast", [above], label_var.full_name, to=_INT64)
    else:
        index = _node(scope, container, "ArgMax", [probabilities], axis=1, keepdims=0)
        labels, proto = _class_labels(get_label_classes(scope, model))
        labels = _constant(scope, container, labels, proto)
        _node(scope, container, "Gather", [labels, index], label_var.full_name, axis=0)
    _to_output(scope, container, probabilities, proba_var, compute)


# --- regressor --------------------------------------------------------------------------------


def _regressor_shapes(operator):
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=1)
    check_input_and_output_types(operator, good_input_types=_INPUT_TYPES)
    n_rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type.shape = [n_rows, operator.raw_operator.n_outputs_]


def _convert_regressor(scope, operator, container):
    model = operator.raw_operator
    compute = _compute_dtype(model, operator.inputs[0])
    y = _forward(scope, container, model, operator.inputs[0], compute)
    _to_output(scope, container, y, operator.outputs[0], compute)


update_registered_converter(
    MLPClassifier,
    _CLASSIFIER_ALIAS,
    _classifier_shapes,
    _convert_classifier,
    parser=_parse_classifier,
    options={
        "zipmap": [True, False, "columns"],
        "nocl": [True, False],
        "output_class_labels": [False, True],
    },
)
update_registered_converter(
    MLPRegressor, "MlpfastMLPRegressor", _regressor_shapes, _convert_regressor
)


# --- convenience ------------------------------------------------------------------------------


def to_onnx(model, X=None, *, options=None, **kwargs):
    """An ONNX model (``onnx.ModelProto``) of a fitted mlpfast MLPClassifier or MLPRegressor.

    X: None (the default) declares a float input ``X`` of shape [None, n_features_in_] in the
    model's dtype (FloatTensorType for a float32 model, DoubleTensorType for float64); or a
    NumPy array (a row is enough) whose dtype sets the input type, as in skl2onnx.to_onnx.
    options: skl2onnx's conversion options; None means ``{"zipmap": False}`` for a classifier
    (outputs ``label`` and ``probabilities`` as plain tensors). Other keyword arguments
    (``target_opset``, ``initial_types``, ``name``, ...) go to ``skl2onnx.to_onnx``, which also
    converts Pipelines holding mlpfast estimators once this module is imported.

    Example::

        import onnxruntime
        onx = mlpfast.onnx.to_onnx(model)
        session = onnxruntime.InferenceSession(onx.SerializeToString())
        label, proba = session.run(None, {"X": X.astype(model.coefs_[0].dtype)})
    """
    if not isinstance(model, (MLPClassifier, MLPRegressor)):
        raise TypeError(
            "mlpfast.onnx.to_onnx converts mlpfast's MLPClassifier and MLPRegressor, got "
            f"{type(model).__name__}; for a Pipeline use skl2onnx.to_onnx (it knows mlpfast's "
            "estimators once mlpfast.onnx is imported)"
        )
    check_is_fitted(model)
    if options is None and is_classifier(model):
        options = {"zipmap": False}
    if X is None and kwargs.get("initial_types") is None:
        tensor = FloatTensorType if model.coefs_[0].dtype == np.float32 else DoubleTensorType
        kwargs["initial_types"] = [("X", tensor([None, model.n_features_in_]))]
    return skl2onnx.to_onnx(model, X, options=options, **kwargs)
