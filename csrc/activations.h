// activations.h: the hidden-layer activations, each written once as a forward / derivative pair.
//
// Contract: forward(z) = g(z); derivative(y) = g'(z) expressed through the output y = g(z), as
// scikit-learn's DERIVATIVES table does, so back-propagation needs only the stored A. PReLU is
// the exception (its slope is a per-unit parameter and can change sign): the network keeps Z for
// it and runs prelu's forward(z, slope) / derivative(z, slope) in kernels of their own.
//
// Adding an activation: its type in namespace `activations` (forward, derivative; from
// Pointwise) and its name in MLPFAST_ACTIVATIONS (docs/adding.md). Everything else (the enum,
// the GEMM epilogue, act_backward, the bindings' names) follows from the list. An activation
// that needs exp or log names a function of vecmath.h (kForwardMath, kDerivativeMath) instead
// of writing forward (derivative) with libm: the kernels then evaluate it on vectors.
//
// References: Glorot & Bengio 2010 (logistic/tanh), Nair & Hinton 2010 (ReLU), Maas et al. 2013
// (leaky ReLU, slope 0.01), Dugas et al. 2001 (softplus), He et al. 2015 (PReLU, slope init 0.25).
//
// Everything here but the enum has internal linkage (anonymous namespace): the per-ISA kernel
// objects include this header, and an inline function with external linkage would become a weak
// symbol of which the linker keeps one copy -- possibly the AVX-512 one on the baseline path
// (docs/kernels.md).
#pragma once
#include <cmath>

#include "common.h"

namespace mlpfast {

// The names users pass (scikit-learn's), in the order _core.ACTIVATIONS lists them.
#define MLPFAST_ACTIVATIONS(X) \
  X(identity) X(logistic) X(tanh) X(relu) X(leaky_relu) X(softplus) X(prelu)

enum class Activation : int { MLPFAST_ACTIVATIONS(MLPFAST_ENUMERATOR) };

// The functions vecmath.h evaluates on vectors (exp / log polynomials, per ISA level).
enum class VecMath : int { none, logistic, tanh, softplus, softplus_derivative };

constexpr double kLeakyReluSlope = 0.01;
constexpr double kPreluInitSlope = 0.25;

namespace {

// What an activation is unless it says otherwise.
struct Pointwise {
  // forward also takes GCC vectors (z > V{} ...): the GEMM applies it in registers.
  static constexpr bool kVector = false;
  // A slope per unit (PReLU): not a GEMM epilogue, handled by prelu_forward / prelu_backward.
  static constexpr bool kPerUnitSlope = false;
  // forward / derivative given as a vecmath.h function (then the member function is absent).
  static constexpr VecMath kForwardMath = VecMath::none;
  static constexpr VecMath kDerivativeMath = VecMath::none;
};

namespace activations {

struct identity : Pointwise {
  template <typename T>
  static T forward(T z) {
    return z;
  }
  template <typename T>
  static T derivative(T) {
    return T(1);
  }
};

struct logistic : Pointwise {
  // 1 / (1 + e^-z) = (z >= 0 ? 1 : e) / (1 + e), e = e^-|z|: never overflows
  static constexpr VecMath kForwardMath = VecMath::logistic;
  // The scalar form, with libm's exp: the output layer's (losses.h, a few values per row).
  template <typename T>
  static T forward(T z) {
    if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
    const T e = std::exp(z);
    return e / (T(1) + e);
  }
  template <typename T>
  static T derivative(T y) {
    return y * (T(1) - y);
  }
};

struct tanh : Pointwise {
  static constexpr VecMath kForwardMath = VecMath::tanh;  // -t / (2 + t), t = expm1(-2|z|)
  template <typename T>
  static T derivative(T y) {
    return T(1) - y * y;
  }
};

struct relu : Pointwise {
  static constexpr bool kVector = true;
  template <typename T, typename V = T>
  static V forward(V z) {
    return z > V{} ? z : V{};
  }
  template <typename T>
  static T derivative(T y) {
    return y > T(0) ? T(1) : T(0);  // scikit-learn: delta[Z == 0] = 0
  }
};

struct leaky_relu : Pointwise {
  static constexpr bool kVector = true;
  template <typename T, typename V = T>
  static V forward(V z) {
    return z > V{} ? z : (T(kLeakyReluSlope) - V{}) * z;
  }
  template <typename T>
  static T derivative(T y) {
    return y > T(0) ? T(1) : T(kLeakyReluSlope);
  }
};

struct softplus : Pointwise {
  // log(1 + e^z) = max(z, 0) + log1p(e^-|z|)
  static constexpr VecMath kForwardMath = VecMath::softplus;
  // sigmoid(z) = 1 - e^-softplus(z) = -expm1(-y)
  static constexpr VecMath kDerivativeMath = VecMath::softplus_derivative;
};

struct prelu : Pointwise {
  static constexpr bool kPerUnitSlope = true;
  template <typename T>
  static T forward(T z, T slope) {
    return z > T(0) ? z : slope * z;
  }
  template <typename T>
  static T derivative(T z, T slope) {  // from z, not from y: the slope may be negative
    return z > T(0) ? T(1) : slope;
  }
};

}  // namespace activations

// visit(a, f): f(activations::<name>{}) for the activation `a`.
MLPFAST_DEFINE_VISIT(Activation, MLPFAST_ACTIVATIONS, activations)

}  // namespace
}  // namespace mlpfast
