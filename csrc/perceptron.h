// perceptron.h: one epoch of scikit-learn's Perceptron (SGD, loss "perceptron" = hinge with
// threshold 0, constant learning rate) for every one-vs-rest weight vector at once.
//
// The reference is scikit-learn's `_plain_sgd` (sklearn/linear_model/_sgd_fast.pyx.tp) with its
// WeightVector (utils/_weight_vector.pyx.tp) and SequentialDataset (utils/_seq_dataset.pyx.tp):
// the same operations in the same order and precision, so that coef_ comes out bitwise equal.
// The epoch loop's stopping rules (tol, n_iter_no_change, early stopping) stay in Python
// (python/mlpfast/_perceptron.py), which calls this once per epoch.
#pragma once
#include <cstdint>

#include "common.h"

namespace mlpfast {

// The training rows: dense (indices == nullptr: row i is values[i * n_features ...]) or CSR
// (int32 indices and indptr, as scikit-learn's CSRDataset; not required sorted).
template <typename T>
struct PerceptronData {
  const T* values;
  const std::int32_t* indices;  // nullptr for dense
  const std::int32_t* indptr;   // nullptr for dense
  index_t n_samples, n_features;
  const std::int32_t* label;     // (n_samples,) class code of each row
  const T* sample_weight;        // (n_samples,)
  const std::uint8_t* val_mask;  // (n_samples,) 1: a validation row, never trained on
  // Dense float64 training only: X's rows as float32 values that widen back to `values`
  // exactly (the caller checked), read instead of `values`; nullptr: read `values`.
  const float* compact = nullptr;
};

// One binary classifier (one row of coef_) and the state _plain_sgd keeps across its epochs.
// y = +1 on the rows whose label is `positive`, -1 elsewhere.
template <typename T>
struct PerceptronVector {
  T* w;                 // (n_features,) the row of coef_, scaled by wscale (WeightVector.w)
  T* q;                 // (n_features,) L1 truncation memory; nullptr without an L1 part
  std::int32_t* order;  // (n_samples,) the dataset's index array, shuffled in place per epoch
  double* intercept;
  T* wscale;
  T* sq_norm;  // WeightVector.sq_norm / l1_norm, kept only where the objective needs them
  T* l1_norm;
  double* u;  // accumulated L1 step
  std::uint32_t seed;
  std::int32_t positive;
  double weight_pos, weight_neg;
  double* sumloss;          // out: the epoch's summed perceptron loss
  double* objective;        // out: the same plus the penalty terms (scikit-learn >= 1.8)
  std::uint8_t* nonfinite;  // out: 1 when w or the intercept holds inf/NaN after the epoch
};

enum class PerceptronPenalty { none = 0, l1 = 1, l2 = 2, elasticnet = 3 };  // sklearn's codes

struct PerceptronOptions {
  PerceptronPenalty penalty;
  double alpha, l1_ratio, eta0, intercept_decay;
  bool fit_intercept, shuffle;
  int n_threads;  // threads over vectors; results do not depend on it
};

// One epoch (shuffle, then every row once) for each vector in vecs[0..n_vecs).
template <typename T>
void perceptron_epoch(const PerceptronData<T>& data, PerceptronVector<T>* vecs, index_t n_vecs,
                      const PerceptronOptions& opt);

}  // namespace mlpfast
