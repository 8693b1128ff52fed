// optimizers.h: SGD (plain, momentum, Nesterov) and Adam as single fused loops over a range of
// the flat parameter buffer.
//
// Contract: scikit-learn's update formulas (sklearn/neural_network/_stochastic_optimizers.py,
// mirrored by mlpfast.reference.sgd_update / adam_update), with the L2 penalty of the weights
// folded into the same pass: g = grad + l2 * p, where the caller's grad is A^T dZ / m and
// l2 = alpha / m, so g is the gradient (A^T dZ + alpha W) / m of reference.loss_grad.
//   SGD       v <- momentum v - lr g;   p <- p + v                  (classical momentum)
//                                       p <- p + momentum v - lr g  (Nesterov, Sutskever 2013)
//   Adam      m <- beta_1 m + (1 - beta_1) g;  v <- beta_2 v + (1 - beta_2) g^2
//             p <- p - lr_t m / (sqrt(v) + eps),  lr_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)
//             (bias correction folded into the step size, eps outside the root, as sklearn)
// With kL2 the loop also returns sum(p^2) of the parameters BEFORE the update: that is the
// batch's L2 penalty term, so the loss needs no extra pass over the weights.
//
// References: Rumelhart, Hinton & Williams 1986 (momentum); Sutskever, Martens, Dahl & Hinton,
// "On the importance of initialization and momentum in deep learning", ICML 2013 (Nesterov);
// Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015 (Algorithm 1 with the
// step-size form of the bias correction, end of their section 2).
//
// Internal linkage only: this header is compiled into every per-ISA object (KERNEL-NOTES.md).
#pragma once
#include <cmath>

#include "kernels.h"

namespace mlpfast {
namespace {

template <typename T>
struct SgdCoeffs {
  T lr, momentum, l2;
};

template <typename T>
struct AdamCoeffs {
  T lr_t, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon, l2;
};

// p[lo, hi) one SGD step; returns sum p^2 before the update when kL2 (else 0).
template <typename T, bool kNesterov, bool kL2>
inline double sgd_range(index_t lo, index_t hi, T* __restrict p, const T* __restrict g,
                        T* __restrict vel, const SgdCoeffs<T>& c) {
  double sum_sq = 0.0;
  const T lr = c.lr, mom = c.momentum, l2 = c.l2;
#pragma omp simd reduction(+ : sum_sq)
  for (index_t i = lo; i < hi; ++i) {
    const T pi = p[i];
    T gi = g[i];
    if (kL2) {
      gi += l2 * pi;
      sum_sq += double(pi) * double(pi);
    }
    const T vi = mom * vel[i] - lr * gi;
    vel[i] = vi;
    p[i] = kNesterov ? pi + (mom * vi - lr * gi) : pi + vi;
  }
  return sum_sq;
}

// p[lo, hi) one Adam step (moments m, v); returns sum p^2 before the update when kL2.
template <typename T, bool kL2>
inline double adam_range(index_t lo, index_t hi, T* __restrict p, const T* __restrict g,
                         T* __restrict m, T* __restrict v, const AdamCoeffs<T>& c) {
  double sum_sq = 0.0;
  const T lr_t = c.lr_t, b1 = c.beta_1, omb1 = c.one_minus_beta_1, b2 = c.beta_2,
          omb2 = c.one_minus_beta_2, eps = c.epsilon, l2 = c.l2;
#pragma omp simd reduction(+ : sum_sq)
  for (index_t i = lo; i < hi; ++i) {
    const T pi = p[i];
    T gi = g[i];
    if (kL2) {
      gi += l2 * pi;
      sum_sq += double(pi) * double(pi);
    }
    const T mi = b1 * m[i] + omb1 * gi;
    const T vi = b2 * v[i] + omb2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - lr_t * mi / (std::sqrt(vi) + eps);
  }
  return sum_sq;
}

}  // namespace
}  // namespace mlpfast
