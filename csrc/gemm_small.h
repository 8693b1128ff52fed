// gemm_small.h: the small-matrix GEMM path (batch size 1 to kSmallM, or k up to kSmallK): no
// packing, no threads, as BLIS keeps its "sup" path apart from the packed one. Also the
// packed path's fallback when a packing buffer cannot be allocated. Same contract as
// gemm_kernels.cpp's gemm; included by it only (per-ISA, internal linkage).
#pragma once
#include "gemm_common.h"
#include "vecmath.h"

namespace mlpfast {
namespace MLPFAST_ISA_NS {
namespace {

// The unpacked path for small products: no packing, no threads. Each C row is one chain of
// FMAs over p (no K blocking), then the epilogue.

// op(B) rows contiguous (NN, TN): C[i, cols] = sum_p op(A)[i, p] * B[p, cols] for R vectors of
// columns at once (R independent FMA chains), row after row. All R results of a row are formed
// before any is stored, so a vector that overlaps another (the last one ends at column n) reads
// the original C and writes the same bits for the shared columns: each column's chain is the
// same whichever vector has it.
template <typename T, typename VT, int R>
void row_chunk(index_t m, const T* a, index_t sa_i, index_t sa_p, index_t k, const T* b,
               index_t ldb, const index_t* cols, T alpha, T beta, T* c, index_t ldc, const T* bias,
               Activation act) {
  typedef VT VU MLPFAST_ALIGNED_ATTR(sizeof(T));
  auto ld = [](const T* p) { return VT(*reinterpret_cast<const VU*>(p)); };
  for (index_t i = 0; i < m; ++i) {
    const T* ai = a + i * sa_i;
    T* ci = c + i * ldc;
    VT acc[R];
    MLPFAST_UNROLL
    for (int v = 0; v < R; ++v) acc[v] = VT{};
    for (index_t p = 0; p < k; ++p) {
      const VT x = ai[p * sa_p] - VT{};
      const T* bp = b + p * ldb;
      MLPFAST_UNROLL
      for (int v = 0; v < R; ++v) acc[v] += x * ld(bp + cols[v]);
    }
    MLPFAST_UNROLL
    for (int v = 0; v < R; ++v) {
      acc[v] = (alpha - VT{}) * acc[v];
      if (beta != T(0)) acc[v] += (beta - VT{}) * ld(ci + cols[v]);
      if (bias) acc[v] += ld(bias + cols[v]);
      acc[v] = act_vec<T>(act, acc[v]);
    }
    MLPFAST_UNROLL
    for (int v = 0; v < R; ++v) *reinterpret_cast<VU*>(ci + cols[v]) = acc[v];
  }
}

template <typename T, typename VT, int R>
void row_chunk_r(int r, index_t m, const T* a, index_t sa_i, index_t sa_p, index_t k, const T* b,
                 index_t ldb, const index_t* cols, T alpha, T beta, T* c, index_t ldc,
                 const T* bias, Activation act) {
  if (r == R)
    return row_chunk<T, VT, R>(m, a, sa_i, sa_p, k, b, ldb, cols, alpha, beta, c, ldc, bias, act);
  if constexpr (R > 1)
    row_chunk_r<T, VT, R - 1>(r, m, a, sa_i, sa_p, k, b, ldb, cols, alpha, beta, c, ldc, bias, act);
}

// The columns in chunks of up to 8 vectors of VT (n >= lanes of VT): a 100-wide float row is one
// pass over B. When n is not a multiple of the lanes, one more vector ends at column n; it
// overlaps only the last full vector and is kept in the same chunk as it.
template <typename T, typename VT>
void row_vectors(index_t m, const T* a, index_t sa_i, index_t sa_p, index_t k, const T* b,
                 index_t ldb, index_t n, T alpha, T beta, T* c, index_t ldc, const T* bias,
                 Activation act) {
  constexpr int L = int(sizeof(VT) / sizeof(T)), RMAX = 8;
  const index_t nfull = n / L, nvec = nfull + (n % L ? 1 : 0);
  for (index_t v0 = 0; v0 < nvec;) {
    int r = nvec - v0 >= RMAX ? RMAX : int(nvec - v0);
    if (nvec > nfull && nvec - v0 - r == 1) r -= 1;  // else the tail would be left alone
    index_t cols[RMAX];
    for (int v = 0; v < r; ++v) cols[v] = v0 + v < nfull ? (v0 + v) * L : n - L;
    row_chunk_r<T, VT, RMAX>(r, m, a, sa_i, sa_p, k, b, ldb, cols, alpha, beta, c, ldc, bias, act);
    v0 += r;
  }
}

template <typename T>
void gemm_rows(bool trans_a, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
               const T* b, index_t ldb, T beta, T* c, index_t ldc, const T* bias, Activation act) {
#if MLPFAST_HAVE_VECTOR_EXT
  typedef T V16 MLPFAST_VECTOR_ATTR(16);  // narrow outputs (10 classes) stay vectorized
#else
  typedef T V16;
#endif
  constexpr int L = lanes<T>(), L16 = int(sizeof(V16) / sizeof(T));
  const index_t sa_i = trans_a ? 1 : lda, sa_p = trans_a ? lda : 1;
  const Activation reg_act = act_in_registers(act) ? act : Activation::identity;
  if (n >= L) {
    row_vectors<T, V<T>>(m, a, sa_i, sa_p, k, b, ldb, n, alpha, beta, c, ldc, bias, reg_act);
  } else if (n >= L16) {
    row_vectors<T, V16>(m, a, sa_i, sa_p, k, b, ldb, n, alpha, beta, c, ldc, bias, reg_act);
  } else {
    for (index_t i = 0; i < m; ++i) {
      const T* ai = a + i * sa_i;
      T* ci = c + i * ldc;
      for (index_t j = 0; j < n; ++j) {
        T acc = T(0);
        for (index_t p = 0; p < k; ++p) acc += ai[p * sa_p] * b[p * ldb + j];
        T y = alpha * acc;
        if (beta != T(0)) y += beta * ci[j];
        if (bias) y += bias[j];
        ci[j] = act_vec<T>(reg_act, y);
      }
    }
  }
  if (act != Activation::identity && !act_in_registers(act))
    for (index_t i = 0; i < m; ++i) act_row(act, c + i * ldc, n);
}

// op(B) = B^T (NT, TT): C[i, j] = dot(op(A)[i, :], b[j, :]), vectorized along p when op(A)'s
// rows are contiguous (NT), lanes summed in a fixed order.
template <typename T>
void gemm_dots(bool trans_a, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
               const T* b, index_t ldb, T beta, T* c, index_t ldc, const T* bias, Activation act) {
  constexpr int L = lanes<T>();
  const index_t sa_i = trans_a ? 1 : lda, sa_p = trans_a ? lda : 1;
  for (index_t i = 0; i < m; ++i) {
    const T* ai = a + i * sa_i;
    T* ci = c + i * ldc;
    for (index_t j = 0; j < n; ++j) {
      const T* bj = b + j * ldb;
      T acc = T(0);
      index_t p = 0;
      if (!trans_a && k >= 2 * L) {
        V<T> s0 = V<T>{}, s1 = V<T>{};
        for (; p + 2 * L <= k; p += 2 * L) {
          s0 += loadu(ai + p) * loadu(bj + p);
          s1 += loadu(ai + p + L) * loadu(bj + p + L);
        }
        s0 += s1;
        for (int l = 0; l < L; ++l) acc += s0[l];
      }
      for (; p < k; ++p) acc += ai[p * sa_p] * bj[p];
      T y = alpha * acc;
      if (beta != T(0)) y += beta * ci[j];
      if (bias) y += bias[j];
      ci[j] = y;
    }
    act_row(act, ci, n);
  }
}

template <typename T>
void gemm_unpacked(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
                   index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc, const T* bias,
                   Activation act) {
  if (trans_b) return gemm_dots(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act);
  gemm_rows(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act);
}

}  // namespace
}  // namespace MLPFAST_ISA_NS
}  // namespace mlpfast
