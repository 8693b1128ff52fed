// vector_kernels.cpp: the element-wise kernels of training (activation derivatives, the fused
// output loss, column sums, optimizer steps, finiteness checks), compiled once per ISA level
// (see kernels.h). The formulas live in activations.h, losses.h and optimizers.h; this file
// only lays the loops out over rows, columns and blocks and registers them in KernelSet<T>.
//
// Threads: a kernel goes parallel (OpenMP, static schedule) only above a size threshold and when
// the thread policy (threads.h) gives it a team, through an explicit branch rather than an `if`
// clause, so small calls (batch size 1) and forked children never open a parallel region. Threads
// split independent outputs only: rows for element-wise work and per-row losses, column blocks for
// column sums, fixed kReduceBlock blocks for flat reductions, whose partial sums are then added in
// block order. Results are therefore bitwise identical for any thread count.
//
// Everything except register_vector has internal linkage (anonymous namespace).
#include <atomic>
#include <cmath>
#include <type_traits>

#include "activations.h"
#include "kernels.h"
#include "losses.h"
#include "optimizers.h"

namespace mlpfast {
namespace MLPFAST_ISA_NS {
namespace {

// Below this many elements a cheap element-wise pass (a few ns per 16 elements) is cheaper than
// a parallel region: its fork/join costs microseconds on an idle machine and can cost
// milliseconds on a loaded one, where the second thread waits for a time slice. Batch-1
// training of a 784-100-10 network (80k parameters) thus stays on one thread.
constexpr index_t kParallelElements = index_t(1) << 17;
// The optimizer pass streams 5 arrays; it goes parallel for larger networks.
constexpr index_t kParallelParams = index_t(1) << 18;
// Transcendental work (an exp per element) pays for threads sooner.
constexpr index_t kParallelTranscendental = index_t(1) << 12;
// Column sums are split among threads in blocks of this many columns.
constexpr index_t kColumnBlock = 128;

// body(i) for i in [0, m): on the threads (static schedule) when `parallel`, else in order.
// Each i must touch its own outputs only, so the results do not depend on the threads.
template <typename Body>
inline void for_rows(index_t m, bool parallel, const Body& body) {
  const int nt = parallel ? region_threads() : 1;  // threads.h: 1 in a forked child
  if (nt > 1) {
    RegionTimer timer(nt);  // when the helpers arrive (threads.h: the load adaptation)
#pragma omp parallel num_threads(nt)
    {
      timer.arrive();
#pragma omp for schedule(static) nowait
      for (index_t i = 0; i < m; ++i) body(i);
    }
  } else {
    for (index_t i = 0; i < m; ++i) body(i);
  }
}

// Columns [0, n) in blocks of kColumnBlock, body(j0, j1) per block, on the threads when
// `parallel` (one call for all columns otherwise).
template <typename Body>
inline void for_column_blocks(index_t n, bool parallel, const Body& body) {
  const index_t blocks = (n + kColumnBlock - 1) / kColumnBlock;
  if (!parallel || blocks <= 1) return body(index_t(0), n);
  for_rows(blocks, true, [&](index_t b) {
    const index_t j0 = b * kColumnBlock, j1 = j0 + kColumnBlock < n ? j0 + kColumnBlock : n;
    body(j0, j1);
  });
}

// --- activation derivatives ------------------------------------------------------------------

template <typename T, typename A>
inline void act_backward_row(index_t n, const T* MLPFAST_RESTRICT a, T* MLPFAST_RESTRICT dz) {
#pragma omp simd
  for (index_t j = 0; j < n; ++j) dz[j] *= A::derivative(a[j]);
}

template <typename T>
void act_backward(Activation act, index_t m, index_t n, const T* a, index_t lda, T* dz,
                  index_t lddz) {
  visit(act, [&](auto tag) {
    using A = decltype(tag);
    // identity: g' = 1; prelu: network.cpp routes it to prelu_backward
    if constexpr (!std::is_same_v<A, activations::identity> && !A::kPerUnitSlope)
      for_rows(m, m * n >= kParallelElements,
               [&](index_t i) { act_backward_row<T, A>(n, a + i * lda, dz + i * lddz); });
  });
}

// --- PReLU (the slope is a per-unit parameter, so it is not a GEMM epilogue) -------------------

template <typename T>
inline void prelu_forward_row(index_t n, const T* MLPFAST_RESTRICT z,
                              const T* MLPFAST_RESTRICT slope, T* MLPFAST_RESTRICT a) {
#pragma omp simd
  for (index_t j = 0; j < n; ++j) a[j] = activations::prelu::forward(z[j], slope[j]);
}

template <typename T>
void prelu_forward_rows(index_t m, index_t n, const T* z, index_t ldz, const T* slope, T* a,
                        index_t lda) {
  for_rows(m, m * n >= kParallelElements,
           [&](index_t i) { prelu_forward_row(n, z + i * ldz, slope, a + i * lda); });
}

// Columns [j0, j1): dslope[j] = sum_i da[i,j] min(z[i,j], 0) / m_eff (rows in order), then
// da[i,j] *= prelu'(z[i,j], slope[j]).
template <typename T>
void prelu_backward_columns(index_t j0, index_t j1, index_t m, const T* z, index_t ldz,
                            const T* slope, T* da, index_t ldda, T* dslope, T m_eff) {
  for (index_t j = j0; j < j1; ++j) dslope[j] = T(0);
  for (index_t i = 0; i < m; ++i) {
    const T* MLPFAST_RESTRICT zi = z + i * ldz;
    T* MLPFAST_RESTRICT dai = da + i * ldda;
#pragma omp simd
    for (index_t j = j0; j < j1; ++j) {
      const T zij = zi[j];
      dslope[j] += dai[j] * (zij < T(0) ? zij : T(0));
      dai[j] *= activations::prelu::derivative(zij, slope[j]);
    }
  }
  for (index_t j = j0; j < j1; ++j) dslope[j] /= m_eff;
}

template <typename T>
void prelu_backward(index_t m, index_t n, const T* z, index_t ldz, const T* slope, T* da,
                    index_t ldda, T* dslope, T m_eff) {
  for_column_blocks(n, m * n >= kParallelElements, [&](index_t j0, index_t j1) {
    prelu_backward_columns(j0, j1, m, z, ldz, slope, da, ldda, dslope, m_eff);
  });
}

// --- column sums (intercept gradients) -------------------------------------------------------

template <typename T>
void column_sum_columns(index_t j0, index_t j1, index_t m, const T* dz, index_t lddz, T* db,
                        T m_eff) {
  for (index_t j = j0; j < j1; ++j) db[j] = T(0);
  for (index_t i = 0; i < m; ++i) {
    const T* MLPFAST_RESTRICT row = dz + i * lddz;
#pragma omp simd
    for (index_t j = j0; j < j1; ++j) db[j] += row[j];
  }
  for (index_t j = j0; j < j1; ++j) db[j] /= m_eff;
}

template <typename T>
void column_sum(index_t m, index_t n, const T* dz, index_t lddz, T* db, T m_eff) {
  for_column_blocks(n, m * n >= kParallelElements, [&](index_t j0, index_t j1) {
    column_sum_columns(j0, j1, m, dz, lddz, db, m_eff);
  });
}

// --- output layer ----------------------------------------------------------------------------

template <typename T>
void output_forward(Output out, index_t m, index_t n, T* z, index_t ldz) {
  if (out == Output::identity) return;
  visit(out, [&](auto tag) {
    using O = decltype(tag);
    for_rows(m, m * n >= kParallelTranscendental,
             [&](index_t i) { O::forward_row(n, z + i * ldz); });
  });
}

template <typename T>
double output_loss_grad(Output out, index_t m, index_t n, const T* z, index_t ldz, const T* y,
                        index_t ldy, const T* sw, T* dz, index_t lddz, double* row_loss) {
  const LogProbClip<T> clip;
  visit(out, [&](auto tag) {
    using O = decltype(tag);
    for_rows(m, m * n >= kParallelTranscendental, [&](index_t i) {
      const T w = sw ? sw[i] : T(1);
      row_loss[i] =
          double(w) * O::loss_grad_row(n, z + i * ldz, y + i * ldy, w, dz + i * lddz, clip);
    });
  });
  double total = 0.0;  // in row order, whatever the threads did
  for (index_t i = 0; i < m; ++i) total += row_loss[i];
  return total;
}

// --- optimizers over the flat buffer, in fixed blocks ------------------------------------------

// block(b) for the kReduceBlock blocks b of [0, n) (on the threads for large n), each returning
// its sum; stores the sums in partials and returns their total in block order (0 without
// partials).
template <typename Block>
inline double reduce_over_blocks(index_t n, double* partials, const Block& block) {
  const index_t blocks = reduce_blocks(n);
  for_rows(blocks, n >= kParallelParams && blocks > 1, [&](index_t b) {
    const double s = block(b);
    if (partials) partials[b] = s;
  });
  double total = 0.0;
  if (partials)
    for (index_t b = 0; b < blocks; ++b) total += partials[b];
  return total;
}

// Runs step(lo, hi, with_l2) over each block of [0, n), cut at n_l2 (weights before, the rest
// after); returns the sum of the blocks' sums of squares of the weights (0 without partials).
template <typename Step>
inline double flat_blocks(index_t n, index_t n_l2, double* partials, const Step& step) {
  return reduce_over_blocks(n, partials, [&](index_t b) {
    const index_t lo = b * kReduceBlock;
    const index_t hi = lo + kReduceBlock < n ? lo + kReduceBlock : n;
    const index_t mid = n_l2 < lo ? lo : (n_l2 > hi ? hi : n_l2);
    double s = 0.0;
    if (lo < mid) s = step(lo, mid, true);
    if (mid < hi) step(mid, hi, false);
    return s;
  });
}

// Opt::update over p[lo, hi) with the L2 term (and the sum of squares) or without.
template <typename T, typename Opt>
inline double update(bool with_l2, index_t lo, index_t hi, T* p, const T* g, T* state,
                     index_t ld_state, const typename Opt::template Coeffs<T>& c) {
  if (with_l2) return Opt::template update<T, true>(lo, hi, p, g, state, ld_state, c);
  return Opt::template update<T, false>(lo, hi, p, g, state, ld_state, c);
}

template <typename T, typename Opt>
double flat_step(index_t n, index_t n_l2, T* p, const T* g, T* state, index_t ld_state,
                 const void* step, double l2, double* partials) {
  const typename Opt::template Coeffs<T> c(*static_cast<const typename Opt::Step*>(step), l2);
  const bool with_l2 = l2 != 0.0 || partials;
  return flat_blocks(n, n_l2, partials, [&](index_t lo, index_t hi, bool weights) -> double {
    return update<T, Opt>(weights && with_l2, lo, hi, p, g, state, ld_state, c);
  });
}

// Small-batch weight steps: W, flattened, is walked in the fixed kReduceBlock blocks of the flat
// steps (threads split blocks; block sums of W^2 are added in block order), each block in
// chunks of kOuterChunk elements that stay in L1: the chunk's gradient
// g[e] = sum_r a[r,i] dz[r,j] / m_eff, e = i * fan_out + j, is formed row segment by row
// segment, then the step runs over the whole chunk (one vector loop per chunk, not per row of W:
// rows are short, e.g. 10 or 100 units).
constexpr index_t kOuterChunk = 1024;

template <typename T, typename Step>
double outer_blocks(index_t fan_in, index_t fan_out, index_t m, const T* a, index_t lda,
                    const T* dz, index_t lddz, T m_eff, double* partials, const Step& step) {
  const index_t n = fan_in * fan_out;
  const T inv_m = T(1) / m_eff;  // as the GEMM path's alpha = 1 / m_eff
  return reduce_over_blocks(n, partials, [&](index_t b) -> double {
    T g[kOuterChunk];
    double s = 0.0;
    const index_t hi = (b + 1) * kReduceBlock < n ? (b + 1) * kReduceBlock : n;
    for (index_t c0 = b * kReduceBlock; c0 < hi; c0 += kOuterChunk) {
      const index_t c1 = c0 + kOuterChunk < hi ? c0 + kOuterChunk : hi;
      for (index_t e = c0; e < c1;) {  // row segments of the chunk
        const index_t i = e / fan_out, j0 = e - i * fan_out;
        const index_t len = fan_out - j0 < c1 - e ? fan_out - j0 : c1 - e;
        T* MLPFAST_RESTRICT gs = g + (e - c0);
        const T a0 = a[i];
        const T* MLPFAST_RESTRICT dz0 = dz + j0;
#pragma omp simd
        for (index_t j = 0; j < len; ++j) gs[j] = a0 * dz0[j];
        for (index_t r = 1; r < m; ++r) {
          const T ar = a[r * lda + i];
          const T* MLPFAST_RESTRICT dzr = dz + r * lddz + j0;
#pragma omp simd
          for (index_t j = 0; j < len; ++j) gs[j] += ar * dzr[j];
        }
        e += len;
      }
      if (inv_m != T(1)) {
#pragma omp simd
        for (index_t j = 0; j < c1 - c0; ++j) g[j] *= inv_m;
      }
      s += step(c0, c1 - c0, g);
    }
    return s;
  });
}

template <typename T, typename Opt>
double outer_step(index_t fan_in, index_t fan_out, index_t m, const T* a, index_t lda, const T* dz,
                  index_t lddz, T m_eff, T* W, T* state, index_t ld_state, const void* step,
                  double l2, bool want_sum_sq, double* partials) {
  const typename Opt::template Coeffs<T> c(*static_cast<const typename Opt::Step*>(step), l2);
  const bool with_l2 = l2 != 0.0 || want_sum_sq;
  const double s =
      outer_blocks(fan_in, fan_out, m, a, lda, dz, lddz, m_eff, partials,
                   [&](index_t off, index_t len, const T* g) -> double {
                     return update<T, Opt>(with_l2, 0, len, W + off, g, state + off, ld_state, c);
                   });
  return want_sum_sq ? s : 0.0;
}

template <typename T>
double sum_squares(index_t n, const T* x, double* partials) {
  auto step = [&](index_t lo, index_t hi, bool) -> double {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (index_t i = lo; i < hi; ++i) s += double(x[i]) * double(x[i]);
    return s;
  };
  return flat_blocks(n, n, partials, step);
}

template <typename T>
void axpy(index_t n, T alpha, const T* x, T* y) {
  auto part = [&](index_t lo, index_t hi) {
#pragma omp simd
    for (index_t i = lo; i < hi; ++i) y[i] += alpha * x[i];
  };
  if (n < kParallelElements) return part(0, n);
  for_rows(reduce_blocks(n), true, [&](index_t b) {
    part(b * kReduceBlock, n - b * kReduceBlock < kReduceBlock ? n : (b + 1) * kReduceBlock);
  });
}

// --- input validation ------------------------------------------------------------------------

// x * 0 is 0 for finite x and NaN for inf or NaN; a sum of them is 0 iff all are finite.
// (Vectorizes without -ffast-math, which would fold x * 0 to 0: we never use it.)
template <typename T>
inline bool row_finite(index_t n, const T* x, index_t cs) {
  T acc = T(0);
  if (cs == 1) {
#pragma omp simd reduction(+ : acc)
    for (index_t j = 0; j < n; ++j) acc += x[j] * T(0);
  } else {
    for (index_t j = 0; j < n; ++j) acc += x[j * cs] * T(0);
  }
  return acc == T(0);
}

template <typename T>
bool all_finite(index_t m, index_t n, const T* x, index_t rs, index_t cs) {
  if (m * n >= kParallelElements) {
    std::atomic<bool> ok{true};  // (only ever cleared: the answer is independent of the threads)
    for_rows(m, true, [&](index_t i) {
      if (!row_finite(n, x + i * rs, cs)) ok.store(false, std::memory_order_relaxed);
    });
    return ok.load();
  }
  bool ok = true;
  for (index_t i = 0; i < m && ok; ++i) ok = row_finite(n, x + i * rs, cs);
  return ok;
}

template <typename T>
void fill(KernelSet<T>& k) {
  k.act_backward = &act_backward<T>;
  k.prelu_forward = &prelu_forward_rows<T>;
  k.prelu_backward = &prelu_backward<T>;
  k.column_sum = &column_sum<T>;
  k.output_forward = &output_forward<T>;
  k.output_loss_grad = &output_loss_grad<T>;
#define MLPFAST_SOLVER_KERNELS(name) \
  k.solver[int(Solver::name)] = {&flat_step<T, solvers::name>, &outer_step<T, solvers::name>};
  MLPFAST_SOLVERS(MLPFAST_SOLVER_KERNELS)
#undef MLPFAST_SOLVER_KERNELS
  k.sum_squares = &sum_squares<T>;
  k.axpy = &axpy<T>;
  k.all_finite = &all_finite<T>;
}

}  // namespace

void register_vector(KernelSet<float>& f32, KernelSet<double>& f64) {
  fill(f32);
  fill(f64);
}

}  // namespace MLPFAST_ISA_NS
}  // namespace mlpfast
