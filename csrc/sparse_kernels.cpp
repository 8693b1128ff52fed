// sparse_kernels.cpp: the first layer's two products when X is sparse (CSR, sparse.h), compiled
// once per ISA level (kernels.h) like the other kernels.
//
//   csr_gemm      C = act(X_b W + bias)    row r: sum over row r's nonzeros (j, v) of v W[j, :]
//   csr_gemm_tn   G = alpha X_b^T dZ       per nonzero (r, j, v): G[j, :] += (alpha v) dZ[r, :]
//
// Reference: mlpfast.reference.forward_pass / loss_grad on a scipy.sparse X (scipy's own
// csr_matvecs and the transposed product); scikit-learn's safe_sparse_dot in _forward_pass and
// _compute_loss_grad. Both loops are SIMD over the output units (the contiguous rows of W, C,
// dZ and G); X's rows are read where they lie (a batch names them, sparse.h), never copied.
//
// Threads (explicit branches above a size threshold, as vector_kernels.cpp): csr_gemm splits
// the batch's rows; csr_gemm_tn splits G's columns into blocks, each thread running over all of
// the batch's nonzeros in order for its own columns, so every element of G is summed by one
// thread in the batch's order. Results are bitwise identical for any thread count.
//
// Everything except register_sparse has internal linkage (anonymous namespace).
#include <cstring>
#include <type_traits>

#include "activations.h"
#include "kernels.h"

namespace mlpfast {
namespace MLPFAST_ISA_NS {
namespace {

// Below this many multiply-adds a parallel region costs more than it saves (vector_kernels.cpp).
constexpr index_t kParallelWork = index_t(1) << 17;
// csr_gemm_tn gives each thread at least this many of G's columns.
constexpr index_t kMinColumns = 16;

// Row i's nonzeros are [begin, end), clamped to [0, nnz] (sparse.h: never out of bounds).
template <typename I>
struct Rows {
  const I* indptr;
  const I* indices;
  index_t nnz, cols;

  void span(index_t i, index_t& begin, index_t& end) const {
    begin = index_t(indptr[i]);
    end = index_t(indptr[i + 1]);
    if (end > nnz) end = nnz;
    if (begin < 0) begin = 0;
    if (begin > end) begin = end;
  }
  // column of nonzero p, or -1 when out of range (skipped)
  index_t column(index_t p) const {
    const index_t j = index_t(indices[p]);
    return j >= 0 && j < cols ? j : -1;
  }
};

template <typename T, typename I>
Rows<I> rows_of(const Csr<T>& X) {
  return {static_cast<const I*>(X.indptr), static_cast<const I*>(X.indices), X.nnz, X.cols};
}

template <typename T>
inline index_t batch_row(const CsrRows<T>& x, index_t r) {
  return x.rows ? index_t(x.rows[r]) : x.first + r;
}

// Nonzeros in the batch (for the threading decision).
template <typename T, typename I>
index_t batch_nnz(const CsrRows<T>& x, const Rows<I>& R) {
  index_t total = 0;
  for (index_t r = 0; r < x.m; ++r) {
    index_t b, e;
    R.span(batch_row(x, r), b, e);
    total += e - b;
  }
  return total;
}

// c[0..n) = act(c + bias) in place.
template <typename T, typename A>
inline void bias_act_row(index_t n, const T* bias, T* MLPFAST_RESTRICT c) {
  if (bias) {
#pragma omp simd
    for (index_t j = 0; j < n; ++j) c[j] += bias[j];
  }
  if constexpr (!A::kPerUnitSlope && !std::is_same_v<A, activations::identity>) {
    for (index_t j = 0; j < n; ++j) c[j] = A::template forward<T>(c[j]);
  }
}

template <typename T, typename I, typename A>
void csr_gemm_with(const CsrRows<T>& x, index_t n, const T* W, const T* bias, T* c, index_t ldc) {
  const Rows<I> R = rows_of<T, I>(x.X);
  const T* data = x.X.data;
  auto row = [&](index_t r) {
    T* MLPFAST_RESTRICT cr = c + r * ldc;
    for (index_t j = 0; j < n; ++j) cr[j] = T(0);
    index_t b, e;
    R.span(batch_row(x, r), b, e);
    for (index_t p = b; p < e; ++p) {
      const index_t col = R.column(p);
      if (col < 0) continue;
      const T v = data[p];
      const T* MLPFAST_RESTRICT w = W + col * n;
#pragma omp simd
      for (index_t j = 0; j < n; ++j) cr[j] += v * w[j];
    }
    bias_act_row<T, A>(n, bias, cr);
  };
  const int nt = (x.m + batch_nnz(x, R)) * n >= kParallelWork ? region_threads() : 1;
  if (nt > 1) {  // threads.h: the whole team, or 1 (a forked child, a pause)
    RegionTimer timer(nt);
#pragma omp parallel num_threads(nt)
    {
      timer.arrive();
#pragma omp for schedule(static) nowait
      for (index_t r = 0; r < x.m; ++r) row(r);
    }
  } else {
    for (index_t r = 0; r < x.m; ++r) row(r);
  }
}

template <typename T>
void csr_gemm(const CsrRows<T>& x, index_t n, const T* W, const T* bias, Activation act, T* c,
              index_t ldc) {
  visit(act, [&](auto a) {
    using A = decltype(a);
    if (x.X.wide)
      csr_gemm_with<T, std::int64_t, A>(x, n, W, bias, c, ldc);
    else
      csr_gemm_with<T, std::int32_t, A>(x, n, W, bias, c, ldc);
  });
}

// Columns [j0, j1) of G: zero the rows `clear` names (or all rows), then add alpha v dZ[r, :]
// into row j of G for each nonzero (r, j, v) of the batch, in the batch's order.
template <typename T, typename I>
void csr_gemm_tn_columns(const CsrRows<T>& x, const CsrRows<T>* clear, const Rows<I>& R, index_t n,
                         T alpha, const T* dz, index_t lddz, T* g, index_t j0, index_t j1) {
  const index_t width = j1 - j0;
  if (clear) {
    const Rows<I> C = rows_of<T, I>(clear->X);
    for (index_t r = 0; r < clear->m; ++r) {
      index_t b, e;
      C.span(batch_row(*clear, r), b, e);
      for (index_t p = b; p < e; ++p) {
        const index_t col = C.column(p);
        if (col >= 0) std::memset(g + col * n + j0, 0, size_t(width) * sizeof(T));
      }
    }
  } else {
    for (index_t i = 0; i < R.cols; ++i) std::memset(g + i * n + j0, 0, size_t(width) * sizeof(T));
  }
  const T* data = x.X.data;
  for (index_t r = 0; r < x.m; ++r) {
    const T* MLPFAST_RESTRICT d = dz + r * lddz + j0;
    index_t b, e;
    R.span(batch_row(x, r), b, e);
    for (index_t p = b; p < e; ++p) {
      const index_t col = R.column(p);
      if (col < 0) continue;
      const T v = alpha * data[p];
      T* MLPFAST_RESTRICT gr = g + col * n + j0;
#pragma omp simd
      for (index_t j = 0; j < width; ++j) gr[j] += v * d[j];
    }
  }
}

template <typename T, typename I>
void csr_gemm_tn_with(const CsrRows<T>& x, const CsrRows<T>* clear, index_t n, T alpha, const T* dz,
                      index_t lddz, T* g) {
  const Rows<I> R = rows_of<T, I>(x.X);
  const index_t cleared = clear ? batch_nnz(*clear, rows_of<T, I>(clear->X)) : x.X.cols;
  const index_t work = (batch_nnz(x, R) + cleared) * n;
  index_t blocks = (n + kMinColumns - 1) / kMinColumns;
  const int team = work < kParallelWork ? 1 : region_threads();  // threads.h
  if (blocks > team) blocks = team;
  if (blocks <= 1) return csr_gemm_tn_columns(x, clear, R, n, alpha, dz, lddz, g, 0, n);
  RegionTimer timer(team);
#pragma omp parallel num_threads(team)
  {
    timer.arrive();
#pragma omp for schedule(static) nowait
    for (index_t t = 0; t < blocks; ++t)
      csr_gemm_tn_columns(x, clear, R, n, alpha, dz, lddz, g, n * t / blocks, n * (t + 1) / blocks);
  }
}

template <typename T>
void csr_gemm_tn(const CsrRows<T>& x, const CsrRows<T>* clear, index_t n, T alpha, const T* dz,
                 index_t lddz, T* g) {
  if (x.X.wide)
    csr_gemm_tn_with<T, std::int64_t>(x, clear, n, alpha, dz, lddz, g);
  else
    csr_gemm_tn_with<T, std::int32_t>(x, clear, n, alpha, dz, lddz, g);
}

}  // namespace

void register_sparse(KernelSet<float>& f32, KernelSet<double>& f64) {
  f32.csr_gemm = &csr_gemm<float>;
  f32.csr_gemm_tn = &csr_gemm_tn<float>;
  f64.csr_gemm = &csr_gemm<double>;
  f64.csr_gemm_tn = &csr_gemm_tn<double>;
}

}  // namespace MLPFAST_ISA_NS
}  // namespace mlpfast
