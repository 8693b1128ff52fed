// losses.h: the output layer's activation fused with its canonical loss and the loss's gradient
// with respect to the pre-activation z, one sample (one row of n outputs) at a time.
//
// Contract (the same definitions as mlpfast.reference.data_loss, i.e. scikit-learn's
// LOSS_FUNCTIONS), per sample, with p = out(z):
//   identity  squared error        loss = 0.5 * mean_j (y_j - z_j)^2
//   logistic  binary cross-entropy loss = -sum_j y_j log p_j + (1 - y_j) log(1 - p_j)
//   softmax   categorical CE       loss = -sum_j y_j log p_j
//   exp       Poisson deviance/2   loss = sum_j y_j log(y_j / p_j) - y_j + p_j
// and, each output activation being the canonical link of its loss, dloss/dz = p - y (scaled by
// the sample weight). As in scikit-learn, the gradient of the squared error is p - y, not
// (p - y) / n: the loss is a mean over outputs, its gradient is not divided by n.
//
// Numerical stability: the log-probabilities are never taken as log(p). Logistic uses
// log-sigmoid, log p = -softplus(-z) and log(1 - p) = -softplus(z), from one exp(-|z|);
// softmax uses log-sum-exp, log p_j = (z_j - max z) - log(sum_k exp(z_k - max z)); Poisson uses
// log(y / p) = log y - z. Every finite z gives finite log-probabilities. scikit-learn clips p to
// [eps, 1 - eps] (eps of the dtype) before taking logs; clamping the log-probability to
// [log eps, log(1 - eps)] is the same operation, so the loss values (and loss curves) agree.
// xlogy semantics: a zero target contributes exactly zero (the clamped logs are finite).
//
// References: Bishop, Pattern Recognition and Machine Learning (2006), sec. 4.3.6 and 5.2
// (canonical links); Goodfellow, Bengio & Courville, Deep Learning (2016), sec. 6.2.2.
//
// Adding an output/loss pair: its type in namespace `outputs` (forward_row, loss_grad_row) and
// its name in MLPFAST_OUTPUTS (docs/adding.md).
//
// Internal linkage only (but the enum): this header is compiled into every per-ISA object
// (docs/kernels.md).
#pragma once
#include <cmath>

#include "activations.h"
#include "common.h"

namespace mlpfast {

// The output activations, each with its canonical loss, in the order _core.OUTPUT_ACTIVATIONS
// lists them.
#define MLPFAST_OUTPUTS(X) X(identity) X(logistic) X(softmax) X(exp)

enum class Output : int { MLPFAST_OUTPUTS(MLPFAST_ENUMERATOR) };

namespace {

inline float dtype_eps(float) { return __FLT_EPSILON__; }
inline double dtype_eps(double) { return __DBL_EPSILON__; }

// The clipping bounds of scikit-learn's log losses, as log-probabilities.
template <typename T>
struct LogProbClip {
  T lo, hi;
  LogProbClip() : lo(std::log(dtype_eps(T(0)))), hi(std::log1p(-dtype_eps(T(0)))) {}
  T operator()(T logp) const { return logp < lo ? lo : (logp > hi ? hi : logp); }
};

template <typename T>
inline T max0(T x) {
  return x > T(0) ? x : T(0);
}

// Each output type has
//   forward_row(n, z)                            z <- out(z) in place (predict)
//   loss_grad_row(n, z, y, w, dz, clip) -> loss  dz = (out(z) - y) * w; the sample's
//                                                (unweighted) loss
namespace outputs {

struct identity {  // squared error
  template <typename T>
  static void forward_row(index_t, T*) {}
  template <typename T>
  static double loss_grad_row(index_t n, const T* z, const T* y, T w, T* dz,
                              const LogProbClip<T>&) {
    double sum = 0.0;
    for (index_t j = 0; j < n; ++j) {
      const T d = z[j] - y[j];
      dz[j] = d * w;
      sum += double(d) * double(d);
    }
    return 0.5 * sum / double(n);
  }
};

struct logistic {  // binary cross-entropy (binary and multilabel)
  template <typename T>
  static void forward_row(index_t n, T* z) {
    for (index_t j = 0; j < n; ++j) z[j] = activations::logistic::forward(z[j]);
  }
  template <typename T>
  static double loss_grad_row(index_t n, const T* z, const T* y, T w, T* dz,
                              const LogProbClip<T>& clip) {
    double loss = 0.0;
    for (index_t j = 0; j < n; ++j) {
      const T zj = z[j], yj = y[j];
      const T e = std::exp(-std::fabs(zj));  // in (0, 1]: never overflows
      const T log1p_e = std::log1p(e);
      const T p = zj >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
      dz[j] = (p - yj) * w;
      const T log_p = clip(-(max0(-zj) + log1p_e));   // log sigmoid(z)  = -softplus(-z)
      const T log_1mp = clip(-(max0(zj) + log1p_e));  // log sigmoid(-z) = -softplus(z)
      loss -= double(yj) * double(log_p) + double(T(1) - yj) * double(log_1mp);
    }
    return loss;
  }
};

struct softmax {  // categorical cross-entropy
  template <typename T>
  static void forward_row(index_t n, T* z) {
    T zmax = z[0];
    for (index_t j = 1; j < n; ++j) zmax = z[j] > zmax ? z[j] : zmax;
    T sum = T(0);
    for (index_t j = 0; j < n; ++j) {
      z[j] = std::exp(z[j] - zmax);
      sum += z[j];
    }
    for (index_t j = 0; j < n; ++j) z[j] /= sum;
  }
  template <typename T>
  static double loss_grad_row(index_t n, const T* z, const T* y, T w, T* dz,
                              const LogProbClip<T>& clip) {
    T zmax = z[0];
    for (index_t j = 1; j < n; ++j) zmax = z[j] > zmax ? z[j] : zmax;
    T sum = T(0);
    for (index_t j = 0; j < n; ++j) {
      dz[j] = std::exp(z[j] - zmax);  // e_j in (0, 1], the largest exactly 1: sum in [1, n]
      sum += dz[j];
    }
    const T log_sum = std::log(sum);
    double loss = 0.0;
    for (index_t j = 0; j < n; ++j) {
      const T p = dz[j] / sum;
      const T log_p = clip((z[j] - zmax) - log_sum);
      loss -= double(y[j]) * double(log_p);
      dz[j] = (p - y[j]) * w;
    }
    return loss;
  }
};

struct exp {  // Poisson deviance / 2
  template <typename T>
  static void forward_row(index_t n, T* z) {
    for (index_t j = 0; j < n; ++j) z[j] = std::exp(z[j]);
  }
  template <typename T>
  static double loss_grad_row(index_t n, const T* z, const T* y, T w, T* dz,
                              const LogProbClip<T>&) {
    double loss = 0.0;
    for (index_t j = 0; j < n; ++j) {
      const T p = std::exp(z[j]);
      const T yj = y[j];
      dz[j] = (p - yj) * w;
      // xlogy(y, y / p) = y (log y - z); 0 for y == 0 (negative y gives NaN, as xlogy does)
      const double ylog = yj == T(0) ? 0.0 : double(yj) * (double(std::log(yj)) - double(z[j]));
      loss += ylog - double(yj) + double(p);
    }
    return loss;
  }
};

}  // namespace outputs

// visit(o, f): f(outputs::<name>{}) for the output `o`.
MLPFAST_DEFINE_VISIT(Output, MLPFAST_OUTPUTS, outputs)

}  // namespace
}  // namespace mlpfast
