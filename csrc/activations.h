// activations.h: the hidden-layer activations, each written once as a forward / derivative pair.
//
// Contract: act_forward(a, z) = g(z); act_derivative(a, y) = g'(z) expressed through the output
// y = g(z), as scikit-learn's DERIVATIVES table does, so back-propagation needs only the stored A.
// PReLU is the exception (its slope is a parameter and can change sign): the network keeps Z for
// it and differentiates through prelu_derivative(z, slope).
//
// References: Glorot & Bengio 2010 (logistic/tanh), Nair & Hinton 2010 (ReLU), Maas et al. 2013
// (leaky ReLU, slope 0.01), Dugas et al. 2001 (softplus), He et al. 2015 (PReLU, slope init 0.25).
//
// Everything here has internal linkage (anonymous namespace): the per-ISA kernel objects include
// this header, and an inline function with external linkage would become a weak symbol of which
// the linker keeps one copy -- possibly the AVX-512 one on the baseline path (KERNEL-NOTES.md).
#pragma once
#include <cmath>
#include <cstdint>

namespace mlpfast {

enum class Activation : int {
  identity = 0,
  logistic = 1,
  tanh = 2,
  relu = 3,
  leaky_relu = 4,
  softplus = 5,
  prelu = 6,  // not usable as a GEMM epilogue: its slope is per unit
};

// The output layer's activation; each is paired with its canonical loss in losses.
enum class Output : int {
  identity = 0,  // squared error
  logistic = 1,  // binary cross-entropy (binary and multilabel)
  softmax = 2,   // categorical cross-entropy
  exp = 3,       // Poisson deviance
};

constexpr double kLeakyReluSlope = 0.01;
constexpr double kPreluInitSlope = 0.25;

namespace {

template <typename T>
inline T logistic_fn(T z) {
  // 1 / (1 + e^-z) without overflow for large |z|
  if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
  const T e = std::exp(z);
  return e / (T(1) + e);
}

template <typename T>
inline T softplus_fn(T z) {
  // log(1 + e^z) = max(z, 0) + log1p(e^-|z|)
  return (z > T(0) ? z : T(0)) + std::log1p(std::exp(-std::fabs(z)));
}

template <typename T>
inline T act_forward(Activation a, T z) {
  switch (a) {
    case Activation::identity: return z;
    case Activation::logistic: return logistic_fn(z);
    case Activation::tanh: return std::tanh(z);
    case Activation::relu: return z > T(0) ? z : T(0);
    case Activation::leaky_relu: return z > T(0) ? z : T(kLeakyReluSlope) * z;
    case Activation::softplus: return softplus_fn(z);
    case Activation::prelu: return z > T(0) ? z : T(kPreluInitSlope) * z;  // slope given elsewhere
  }
  return z;
}

// g'(z) from y = g(z).
template <typename T>
inline T act_derivative(Activation a, T y) {
  switch (a) {
    case Activation::identity: return T(1);
    case Activation::logistic: return y * (T(1) - y);
    case Activation::tanh: return T(1) - y * y;
    case Activation::relu: return y > T(0) ? T(1) : T(0);        // scikit-learn: delta[Z == 0] = 0
    case Activation::leaky_relu: return y > T(0) ? T(1) : T(kLeakyReluSlope);
    case Activation::softplus: return -std::expm1(-y);            // sigmoid(z) = 1 - e^-softplus(z)
    case Activation::prelu: return T(1);                          // handled with Z, see above
  }
  return T(1);
}

template <typename T>
inline T prelu_forward(T z, T slope) { return z > T(0) ? z : slope * z; }
template <typename T>
inline T prelu_derivative(T z, T slope) { return z > T(0) ? T(1) : slope; }

}  // namespace
}  // namespace mlpfast
