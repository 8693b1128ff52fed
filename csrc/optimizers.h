// optimizers.h: the solvers. Each is one type implementing the Optimizer seam below: its state
// layout, its per-step schedule (step count, step size) and its update over a range of the flat
// parameter buffer, fused in one loop with the L2 term.
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
// With kL2 the update also returns sum(p^2) of the parameters BEFORE the update: that is the
// batch's L2 penalty term, so the loss needs no extra pass over the weights.
//
// References: Rumelhart, Hinton & Williams 1986 (momentum); Sutskever, Martens, Dahl & Hinton,
// "On the importance of initialization and momentum in deep learning", ICML 2013 (Nesterov);
// Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015 (Algorithm 1 with the
// step-size form of the bias correction, end of their section 2).
//
// Internal linkage only (but the enum and TrainOptions): this header is compiled into every
// per-ISA object (docs/kernels.md).
#pragma once
#include <cmath>
#include <cstdint>

#include "common.h"

namespace mlpfast {

// The solvers, in the order _core.SOLVERS lists them.
#define MLPFAST_SOLVERS(X) X(sgd) X(adam)

enum class Solver : int { MLPFAST_SOLVERS(MLPFAST_ENUMERATOR) };
constexpr int kNumSolvers = 0 MLPFAST_SOLVERS(MLPFAST_COUNT);

// Every solver's hyper-parameters (the bindings' keywords); each solver reads its own.
struct TrainOptions {
  Solver solver = Solver::adam;
  double alpha = 0.0;
  double learning_rate = 1e-3;  // sgd: the current rate; adam: learning_rate_init
  double momentum = 0.9;
  bool nesterov = true;
  double beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-8;
  std::int64_t t = 0;  // steps taken so far (Adam's bias correction); updated
  // Optional record (null: off, no work): n_layers doubles, set by train_epoch to each
  // layer's gradient norm over the epoch (network.h).
  double* grad_norms = nullptr;
};

namespace {

// The Optimizer seam. A solver is a type in namespace `solvers` with
//   kStateBuffers, kStateDoc  its state: kStateBuffers buffers of n_params each, one after the
//                             other (the bindings check opt_state's length and name them)
//   Step                      one step's coefficients, in double
//   schedule(TrainOptions&)   the next Step; called once per batch (Adam advances t here)
//   Coeffs<T>(step, l2)       the Step rounded to T as NumPy rounds Python floats, and l2
//   update<T, kL2>(lo, hi, p, g, state, ld_state, coeffs) -> sum p^2 (kL2) or 0
//                             one step of p[lo, hi) with gradient g (indexed like p); state
//                             buffer b is at state + b * ld_state, indexed like p
// vector_kernels.cpp runs update over the flat buffer (flat_step) and over the weights of a
// small batch with their gradient formed on the fly (outer_step); network.cpp calls schedule.
namespace solvers {

struct sgd {
  static constexpr int kStateBuffers = 1;
  static constexpr const char* kStateDoc = "the velocity";
  struct Step {
    double lr, momentum;
    bool nesterov;
  };
  static Step schedule(const TrainOptions& o) { return {o.learning_rate, o.momentum, o.nesterov}; }
  template <typename T>
  struct Coeffs {
    T lr, momentum, l2;
    bool nesterov;
    Coeffs(const Step& s, double l2_)
        : lr(T(s.lr)), momentum(T(s.momentum)), l2(T(l2_)), nesterov(s.nesterov) {}
  };
  template <typename T, bool kL2>
  static double update(index_t lo, index_t hi, T* p, const T* g, T* state, index_t,
                       const Coeffs<T>& c) {
    return c.nesterov ? range<T, true, kL2>(lo, hi, p, g, state, c)
                      : range<T, false, kL2>(lo, hi, p, g, state, c);
  }

 private:
  template <typename T, bool kNesterov, bool kL2>
  static double range(index_t lo, index_t hi, T* MLPFAST_RESTRICT p, const T* MLPFAST_RESTRICT g,
                      T* MLPFAST_RESTRICT vel, const Coeffs<T>& c) {
    double sum_sq = 0.0;
    const T lr = c.lr, mom = c.momentum, l2 = c.l2;
#pragma omp simd reduction(+ : sum_sq)
    for (index_t i = lo; i < hi; ++i) {
      const T pi = p[i];
      const T gi = kL2 ? g[i] + l2 * pi : g[i];  // the L2 term; sum p^2 before the update
      if (kL2) sum_sq += double(pi) * double(pi);
      const T vi = mom * vel[i] - lr * gi;
      vel[i] = vi;
      p[i] = kNesterov ? pi + (mom * vi - lr * gi) : pi + vi;
    }
    return sum_sq;
  }
};

struct adam {
  static constexpr int kStateBuffers = 2;
  static constexpr const char* kStateDoc = "[m, v]";
  struct Step {
    double lr_t, beta_1, beta_2, epsilon;
  };
  static Step schedule(TrainOptions& o) {
    o.t += 1;
    const double t = double(o.t);
    const double lr_t =
        o.learning_rate * std::sqrt(1.0 - std::pow(o.beta_2, t)) / (1.0 - std::pow(o.beta_1, t));
    return {lr_t, o.beta_1, o.beta_2, o.epsilon};
  }
  template <typename T>
  struct Coeffs {
    T lr_t, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon, l2;
    Coeffs(const Step& s, double l2_)
        : lr_t(T(s.lr_t)),
          beta_1(T(s.beta_1)),
          one_minus_beta_1(T(1.0 - s.beta_1)),
          beta_2(T(s.beta_2)),
          one_minus_beta_2(T(1.0 - s.beta_2)),
          epsilon(T(s.epsilon)),
          l2(T(l2_)) {}
  };
  template <typename T, bool kL2>
  static double update(index_t lo, index_t hi, T* p, const T* g, T* state, index_t ld_state,
                       const Coeffs<T>& c) {
    return range<T, kL2>(lo, hi, p, g, state, state + ld_state, c);
  }

 private:
  template <typename T, bool kL2>
  static double range(index_t lo, index_t hi, T* MLPFAST_RESTRICT p, const T* MLPFAST_RESTRICT g,
                      T* MLPFAST_RESTRICT m, T* MLPFAST_RESTRICT v, const Coeffs<T>& c) {
    double sum_sq = 0.0;
    const T lr_t = c.lr_t, b1 = c.beta_1, omb1 = c.one_minus_beta_1, b2 = c.beta_2,
            omb2 = c.one_minus_beta_2, eps = c.epsilon, l2 = c.l2;
#pragma omp simd reduction(+ : sum_sq)
    for (index_t i = lo; i < hi; ++i) {
      const T pi = p[i];
      const T gi = kL2 ? g[i] + l2 * pi : g[i];  // as in sgd
      if (kL2) sum_sq += double(pi) * double(pi);
      const T mi = b1 * m[i] + omb1 * gi;
      const T vi = b2 * v[i] + omb2 * (gi * gi);
      m[i] = mi;
      v[i] = vi;
      p[i] = pi - lr_t * mi / (std::sqrt(vi) + eps);
    }
    return sum_sq;
  }
};

}  // namespace solvers

// visit(s, f): f(solvers::<name>{}) for the solver `s`.
MLPFAST_DEFINE_VISIT(Solver, MLPFAST_SOLVERS, solvers)

}  // namespace
}  // namespace mlpfast
