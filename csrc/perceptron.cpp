// perceptron.cpp: one epoch of scikit-learn's Perceptron for all one-vs-rest vectors together.
//
// Contract: bitwise the computation of scikit-learn's `_plain_sgd` (loss Hinge(0), learning rate
// "constant", no averaging) for each vector, given the same initial state and shuffle seed. So
// every floating-point operation below is the one of _sgd_fast.pyx.tp / _weight_vector.pyx.tp,
// in the same order and precision (the casts to T are where Cython stores a c_type), and this
// file is compiled with FMA contraction off (CMakeLists.txt): w += x * c must round twice.
//
// Where the speed comes from, then, since the order of each sum is fixed:
//  - the dot products of up to kLanes = 8 vectors run interleaved (independent add chains in
//    one loop), so the CPU overlaps the latency-bound chains that scikit-learn runs one after
//    the other; within a chain the order is scikit-learn's (no reassociation, ever); dense
//    float64 lanes go in pairs, one SSE2 register per pair (dot_dense_pairs);
//  - a sample is read once for every vector that visits it at that step: with shuffle=False
//    (or one vector) every vector visits the same row, which stays in L1 between the lanes;
//  - the dense update w += x * (c / wscale) is element-wise, so the compiler vectorizes it at
//    the build's ISA level without changing a bit (and the norms, only needed for the penalized
//    objective, are summed in a second loop only then);
//  - threads take contiguous ranges of vectors, as even as possible (n_jobs, like
//    scikit-learn's joblib over classes): each vector's arithmetic is the same on any thread
//    count and in any lane;
//  - with per-class orders every class reads every row, so the epoch is bound by memory
//    traffic; a float64 fit whose X holds float32 values reads X's float32 copy
//    (PerceptronData::compact): the same numbers, widened exactly, half the bytes.
//
// Structure: the row view; the dot products (dense, CSR); the shuffle (SequentialDataset);
// the per-sample update (WeightVector + the body of _plain_sgd's sample loop); the epoch.
#include "perceptron.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlpfast {
namespace {

constexpr int kLanes = 8;  // at most this many vectors' dot products run interleaved

// A row of X as stored: S is T, or float for a float64 fit that reads X's float32 copy
// (PerceptronData::compact; dense only). Every use widens x to double, exactly.
template <typename S>
struct Row {
  const S* x;
  const std::int32_t* idx;  // nullptr: dense, feature j is x[j]
  index_t nnz;
};

template <typename S, typename T>
Row<S> row_of(const PerceptronData<T>& d, index_t s) {
  if constexpr (!std::is_same_v<S, T>) {
    return {d.compact + s * d.n_features, nullptr, d.n_features};
  } else {
    if (!d.indices) return {d.values + s * d.n_features, nullptr, d.n_features};
    const index_t b = d.indptr[s];
    return {d.values + b, d.indices + b, index_t(d.indptr[s + 1]) - b};
  }
}

// ---- dot products: acc[k] = sum_j w_k[idx_j] * x_k[j], j in order (WeightVector.dot before
// its final * wscale). The product rounds to T (Cython multiplies two c_type values), the sum
// is double.

template <typename T, typename S, int L>
void dot_dense(const T* const* w_in, const Row<S>* rows, const Row<S>* next, index_t d,
               double* acc) {
  constexpr index_t kLine = 64 / sizeof(S);  // one cache line of x
  const T* w[L];
  const S* x[L];
  const S* nx[L];
  double a[L];
  MLPFAST_UNROLL for (int k = 0; k < L; ++k) {
    w[k] = w_in[k];
    x[k] = rows[k].x;
    nx[k] = next[k].x;
    a[k] = 0.0;
  }
  index_t j = 0;
  // The next step's rows are streamed in while this one's are summed: with shuffling they sit
  // anywhere in X, and the hardware prefetcher only finds each after its first lines.
  for (; j + kLine <= d; j += kLine) {
    MLPFAST_UNROLL for (int k = 0; k < L; ++k) MLPFAST_PREFETCH_R(nx[k] + j);
    for (index_t i = j; i < j + kLine; ++i) {
      MLPFAST_UNROLL for (int k = 0; k < L; ++k) {
        const T prod = w[k][i] * T(x[k][i]);
        a[k] += prod;
      }
    }
  }
  for (; j < d; ++j) {
    MLPFAST_UNROLL for (int k = 0; k < L; ++k) {
      const T prod = w[k][j] * T(x[k][j]);
      a[k] += prod;
    }
  }
  for (int k = 0; k < L; ++k) acc[k] = a[k];
}

#if MLPFAST_HAVE_VECTOR_EXT
// Dense float64, lanes in pairs: for lanes (a, b) and features (j, j+1), two multiplies give
// (a_j, a_j+1) and (b_j, b_j+1); regrouped as (a_j, b_j) and (a_j+1, b_j+1) they are added to
// the pair's accumulator in turn, so each lane still sums its products in order j, j+1, ...
// Four loads, two multiplies, two shuffles and two adds per four products, where the scalar
// loop spends eight loads and four multiplies. An odd lane out runs the scalar chain.
using V2d = double MLPFAST_VECTOR_ATTR(16);

using V2f = float MLPFAST_VECTOR_ATTR(8);

inline V2d load2(const double* p) {
  V2d v;
  std::memcpy(&v, p, sizeof v);  // an unaligned load
  return v;
}

inline V2d load2(const float* p) {  // two floats widened (exactly) to doubles
  V2f v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, V2d);
}

template <typename S, int L>
void dot_dense_pairs(const double* const* w_in, const Row<S>* rows, const Row<S>* next, index_t d,
                     double* acc) {
  constexpr int P = L / 2;
  constexpr bool kOdd = L % 2 == 1;
  constexpr index_t kLine = 64 / sizeof(S);
  const double* w[L];
  const S* x[L];
  const S* nx[L];
  MLPFAST_UNROLL for (int k = 0; k < L; ++k) {
    w[k] = w_in[k];
    x[k] = rows[k].x;
    nx[k] = next[k].x;
  }
  V2d a[P > 0 ? P : 1];
  MLPFAST_UNROLL for (int p = 0; p < P; ++p) a[p] = V2d{0.0, 0.0};
  double single = 0.0;
  index_t j = 0;
  for (; j + kLine <= d; j += kLine) {
    MLPFAST_UNROLL for (int k = 0; k < L; ++k) MLPFAST_PREFETCH_R(nx[k] + j);
    for (index_t i = j; i < j + kLine; i += 2) {
      MLPFAST_UNROLL for (int p = 0; p < P; ++p) {
        const V2d m0 = load2(w[2 * p] + i) * load2(x[2 * p] + i);
        const V2d m1 = load2(w[2 * p + 1] + i) * load2(x[2 * p + 1] + i);
        a[p] += V2d{m0[0], m1[0]};
        a[p] += V2d{m0[1], m1[1]};
      }
      if (kOdd) {
        const double p0 = w[L - 1][i] * double(x[L - 1][i]);
        single += p0;
        const double p1 = w[L - 1][i + 1] * double(x[L - 1][i + 1]);
        single += p1;
      }
    }
  }
  for (; j < d; ++j) {
    MLPFAST_UNROLL for (int p = 0; p < P; ++p) {
      const double p0 = w[2 * p][j] * double(x[2 * p][j]);
      const double p1 = w[2 * p + 1][j] * double(x[2 * p + 1][j]);
      a[p] += V2d{p0, p1};
    }
    if (kOdd) {
      const double p0 = w[L - 1][j] * double(x[L - 1][j]);
      single += p0;
    }
  }
  MLPFAST_UNROLL for (int p = 0; p < P; ++p) {
    acc[2 * p] = a[p][0];
    acc[2 * p + 1] = a[p][1];
  }
  if (kOdd) acc[L - 1] = single;
}
#endif

template <typename T, int L>
void dot_sparse(const T* const* w_in, const Row<T>* rows, const Row<T>* next, double* acc) {
  for (int k = 0; k < L; ++k) {  // the next step's rows: their first lines
    MLPFAST_PREFETCH_R(next[k].x);
    MLPFAST_PREFETCH_R(next[k].idx);
  }
  const T* w[L];
  double a[L];
  index_t common = rows[0].nnz;
  MLPFAST_UNROLL for (int k = 0; k < L; ++k) {
    w[k] = w_in[k];
    a[k] = 0.0;
    common = std::min(common, rows[k].nnz);
  }
  for (index_t j = 0; j < common; ++j) {
    MLPFAST_UNROLL for (int k = 0; k < L; ++k) {
      const T prod = w[k][rows[k].idx[j]] * rows[k].x[j];
      a[k] += prod;
    }
  }
  for (int k = 0; k < L; ++k) {
    double s = a[k];
    for (index_t j = common; j < rows[k].nnz; ++j) {
      const T prod = w[k][rows[k].idx[j]] * rows[k].x[j];
      s += prod;
    }
    acc[k] = s;
  }
}

template <typename T, typename S, int L>
void dot_lanes(const T* const* w, const Row<S>* rows, const Row<S>* next, index_t d, double* acc) {
  if constexpr (std::is_same_v<S, T>) {  // (a compact copy is dense)
    if (rows[0].idx) {
      dot_sparse<T, L>(w, rows, next, acc);
      return;
    }
  }
#if MLPFAST_HAVE_VECTOR_EXT
  if constexpr (std::is_same_v<T, double> && L >= 2) {
    dot_dense_pairs<S, L>(w, rows, next, d, acc);
    return;
  }
#endif
  dot_dense<T, S, L>(w, rows, next, d, acc);
}

// dot_table<T, S>()[L - 1] = dot_lanes<T, S, L>, for L = 1 .. kLanes
template <typename T, typename S, std::size_t... I>
constexpr auto dot_table(std::index_sequence<I...>) {
  using Fn = void (*)(const T* const*, const Row<S>*, const Row<S>*, index_t, double*);
  return std::array<Fn, sizeof...(I)>{&dot_lanes<T, S, int(I) + 1>...};
}

// ---- SequentialDataset.shuffle: Fisher-Yates driven by our_rand_r (utils/_random.pxd), the
// seed taken by value, so every epoch replays the same draws on the previous epoch's order.

inline std::uint32_t our_rand_r(std::uint32_t& seed) {
  if (seed == 0) seed = 1;  // DEFAULT_SEED
  seed ^= std::uint32_t(seed << 13);
  seed ^= std::uint32_t(seed >> 17);
  seed ^= std::uint32_t(seed << 5);
  return seed % (std::uint32_t(2147483647) + 1u);  // RAND_R_MAX + 1
}

inline void shuffle(std::int32_t* ind, index_t n_samples, std::uint32_t seed) {
  const unsigned n = unsigned(n_samples);
  for (unsigned i = 0; i + 1 < n; ++i) {
    const unsigned j = i + our_rand_r(seed) % (n - i);
    std::swap(ind[i], ind[j]);
  }
}

// ---- the sample loop's body for one vector: _plain_sgd from `p = w.dot(...) + intercept` to
// l1penalty, for loss Hinge(threshold=0), learning rate constant (eta = eta0).

template <typename T>
void reset_wscale(PerceptronVector<T>& v, index_t n_features) {
  const T s = *v.wscale;  // _scal(n, wscale, w): w[i] = wscale * w[i]
  for (index_t j = 0; j < n_features; ++j) v.w[j] = s * v.w[j];
  *v.wscale = T(1);
}

struct EpochSums {
  double sumloss = 0.0, objective = 0.0;
};

template <typename T, typename S>
void learn_sample(const PerceptronData<T>& data, PerceptronVector<T>& v, index_t s,
                  const Row<S>& row, double innerprod, const PerceptronOptions& opt,
                  double l1_ratio, EpochSums& sums) {
  const auto penalty = opt.penalty;
  const double eta = opt.eta0, alpha = opt.alpha;
  T* const w = v.w;
  const T wscale = *v.wscale;
  const double p = double(T(innerprod * double(wscale))) + *v.intercept;
  const T y = data.label[s] == v.positive ? T(1) : T(-1);

  const double z = p * double(y);  // Hinge(0): loss max(0, -z), gradient -y where z <= 0
  const double loss = z <= 0.0 ? 0.0 - z : 0.0;
  sums.sumloss += loss;
  sums.objective += loss;
  if (penalty != PerceptronPenalty::none) {
    const T norm = T(std::sqrt(double(*v.sq_norm)));
    sums.objective +=
        alpha * ((1 - l1_ratio) * 0.5 * std::pow(double(norm), 2) + l1_ratio * double(*v.l1_norm));
  }
  const double dloss = z <= 0.0 ? -double(y) : 0.0;
  const T class_weight = T(y > T(0) ? v.weight_pos : v.weight_neg);
  double update = -eta * dloss;
  update *= double(T(class_weight * data.sample_weight[s]));

  if (penalty == PerceptronPenalty::l2 || penalty == PerceptronPenalty::elasticnet) {
    // WeightVector.scale(c)
    const T c = T(std::max(0.0, 1.0 - ((1.0 - l1_ratio) * eta * alpha)));
    *v.wscale = T(*v.wscale * c);
    *v.sq_norm = T(*v.sq_norm * T(c * c));
    *v.l1_norm = T(*v.l1_norm * std::fabs(double(c)));
    if (double(*v.wscale) < (sizeof(T) == 4 ? 1e-6 : 1e-9)) reset_wscale(v, data.n_features);
  }

  if (update != 0.0) {  // WeightVector.add(x, update)
    const T c = T(update);
    const T ws = *v.wscale;
    const double step = double(T(c / ws));
    const bool norms = penalty != PerceptronPenalty::none;
    double l2 = 0.0, l1 = 0.0;
    if (!row.idx) {
      for (index_t j = 0; j < row.nnz; ++j) w[j] = T(double(w[j]) + double(row.x[j]) * step);
      if (norms)
        for (index_t j = 0; j < row.nnz; ++j) {
          const T sq = w[j] * w[j];
          l2 += sq;
          l1 += std::fabs(double(w[j]));
        }
    } else {  // one loop: a row may repeat an index, and the norms see each update in turn
      for (index_t j = 0; j < row.nnz; ++j) {
        const index_t i = row.idx[j];
        w[i] = T(double(w[i]) + double(row.x[j]) * step);
        if (norms) {
          const T sq = w[i] * w[i];
          l2 += sq;
          l1 += std::fabs(double(w[i]));
        }
      }
    }
    if (norms) {
      *v.sq_norm = T(l2 * double(T(ws * ws)));
      *v.l1_norm = T(l1 * double(ws));
    }
  }
  if (opt.fit_intercept && update != 0.0) *v.intercept += update * opt.intercept_decay;

  if (penalty == PerceptronPenalty::l1 || penalty == PerceptronPenalty::elasticnet) {
    *v.u += l1_ratio * eta * alpha;  // then l1penalty(w, q, x's indices, u)
    const double u = *v.u, ws = double(*v.wscale);
    T* const q = v.q;
    for (index_t j = 0; j < row.nnz; ++j) {
      const index_t i = row.idx ? row.idx[j] : j;
      const double z0 = double(w[i]);
      if (ws * z0 > 0.0)
        w[i] = T(std::max(0.0, double(w[i]) - ((u + double(q[i])) / ws)));
      else if (ws * z0 < 0.0)
        w[i] = T(std::min(0.0, double(w[i]) + ((u - double(q[i])) / ws)));
      q[i] = T(double(q[i]) + ws * (double(w[i]) - z0));
    }
  }
}

// ---- one epoch for the vectors vecs[begin, end) on this thread

template <typename T, typename S>
void epoch_range(const PerceptronData<T>& data, PerceptronVector<T>* vecs, index_t begin,
                 index_t end, const PerceptronOptions& opt) {
  const index_t n = data.n_samples, m = end - begin;
  if (m <= 0) return;
  // _plain_sgd's l1_ratio: 0 for L2, 1 for L1, the parameter for elastic net
  const double l1_ratio = opt.penalty == PerceptronPenalty::l2   ? 0.0
                          : opt.penalty == PerceptronPenalty::l1 ? 1.0
                                                                 : opt.l1_ratio;
  if (opt.shuffle)
    for (index_t k = begin; k < end; ++k) shuffle(vecs[k].order, n, vecs[k].seed);
  std::vector<EpochSums> sums(static_cast<std::size_t>(m));

  // groups of at most kLanes vectors, sizes as even as possible
  const index_t n_groups = (m + kLanes - 1) / kLanes;
  for (index_t t = 0; t < n; ++t) {
    for (index_t g = 0; g < n_groups; ++g) {
      const index_t g0 = begin + g * m / n_groups, g1 = begin + (g + 1) * m / n_groups;
      const int L = int(g1 - g0);
      const T* w[kLanes];
      Row<S> rows[kLanes], next[kLanes];
      index_t sample[kLanes];
      bool learn[kLanes];
      for (int k = 0; k < L; ++k) {
        sample[k] = vecs[g0 + k].order[t];
        learn[k] = !data.val_mask[sample[k]];  // validation rows: skipped (nothing changes)
        rows[k] = row_of<S>(data, sample[k]);
        next[k] = t + 1 < n ? row_of<S>(data, vecs[g0 + k].order[t + 1]) : rows[k];
        w[k] = vecs[g0 + k].w;
      }
      double acc[kLanes];
      static constexpr auto dot = dot_table<T, S>(std::make_index_sequence<kLanes>{});
      dot[L - 1](w, rows, next, data.n_features, acc);
      for (int k = 0; k < L; ++k)
        if (learn[k])
          learn_sample(data, vecs[g0 + k], sample[k], rows[k], acc[k], opt, l1_ratio,
                       sums[std::size_t(g0 + k - begin)]);
    }
  }

  for (index_t k = begin; k < end; ++k) {
    PerceptronVector<T>& v = vecs[k];
    *v.sumloss = sums[std::size_t(k - begin)].sumloss;
    *v.objective = sums[std::size_t(k - begin)].objective;
    bool bad = !std::isfinite(*v.intercept);
    for (index_t j = 0; j < data.n_features && !bad; ++j) bad = !std::isfinite(double(v.w[j]));
    *v.nonfinite = bad ? 1 : 0;
  }
}

}  // namespace

template <typename T>
void perceptron_epoch(const PerceptronData<T>& data, PerceptronVector<T>* vecs, index_t n_vecs,
                      const PerceptronOptions& opt) {
  auto range = [&](index_t begin, index_t end) {
    if constexpr (std::is_same_v<T, double>) {
      if (data.compact) return epoch_range<T, float>(data, vecs, begin, end, opt);
    }
    epoch_range<T, T>(data, vecs, begin, end, opt);
  };
  // Threads take contiguous ranges of vectors, as even as possible (10 classes on 2 threads:
  // 5 and 5). A vector's arithmetic does not depend on which others share its lanes or its
  // thread, so the result is the same whatever the thread count.
  int nt = int(std::max<index_t>(1, std::min<index_t>(opt.n_threads, n_vecs)));
  if (in_forked_child()) nt = 1;  // threads.h: the parent's OpenMP team is gone after fork
  if (nt == 1) {
    range(0, n_vecs);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static, 1)
  for (int th = 0; th < nt; ++th) range(n_vecs * th / nt, n_vecs * (th + 1) / nt);
}

template void perceptron_epoch<float>(const PerceptronData<float>&, PerceptronVector<float>*,
                                      index_t, const PerceptronOptions&);
template void perceptron_epoch<double>(const PerceptronData<double>&, PerceptronVector<double>*,
                                       index_t, const PerceptronOptions&);

}  // namespace mlpfast
