// gemm_narrow.h: the GEMM path for narrow outputs (n below one packed tile, NN and TN): the
// last layer of a classifier (10 classes) or a regressor (1 output), forward and weight
// gradient. The packed path would pack all of A for a tile mostly of zero columns (n = 10 fills
// 10 of the 24 float64 / 48 float32 columns of an avx512 tile); here A is read in place, MRN
// rows at a time, and the columns are covered by up to NV vectors whose last one ends at
// column n. Included by gemm_kernels.cpp only (per-ISA, internal linkage), which passes the
// K block size (k_block) and the thread pieces.
//
// Same arithmetic as the packed path, element by element, so the results are the same bits:
// alpha is applied to each element of A before its product, each K block (k_block) is one FMA
// chain from zero, the first block adds beta * C, later blocks add C, the last adds the bias and
// applies the activation. Rows are independent, so threads (over row blocks) change nothing.
#pragma once
#include "gemm_common.h"

#if MLPFAST_HAVE_VECTOR_EXT
namespace mlpfast {
namespace MLPFAST_ISA_NS {
namespace {

// A vector of B bytes of T, and its element-aligned twin. (No scalar variant: GCC left some
// scalar chains unfused where the packed path's vector chains are fused, and the scalar tiles
// were no faster than the packed path's; widths under 16 bytes go there.)
template <typename T, int B>
struct NarrowVec {
  typedef T V MLPFAST_VECTOR_ATTR(B);
  typedef T VU MLPFAST_VECTOR_ATTR(B) MLPFAST_ALIGNED_ATTR(sizeof(T));
};

// C rows [0, MRN), columns cols[0..R) of VB-byte vectors: K block by K block. SCALE: alpha != 1
// (a separate instantiation, so that the common case has no multiply in its inner loop).
template <typename T, int VB, int MRN, int R, bool SCALE>
void narrow_tile(index_t k, index_t kcb, const T* a, index_t sa_i, index_t sa_p, T alpha,
                 const T* b, index_t ldb, const index_t* cols, T beta, T* c, index_t ldc,
                 const T* bias, Activation act) {
  typedef typename NarrowVec<T, VB>::V VT;
  typedef typename NarrowVec<T, VB>::VU VU;
  auto ld = [](const T* p) { return VT(*reinterpret_cast<const VU*>(p)); };
  auto st = [](T* p, VT x) { *reinterpret_cast<VU*>(p) = x; };
  const bool in_reg = act_in_registers(act);
  for (index_t pc = 0; pc < k; pc += kcb) {
    const index_t kc = k - pc < kcb ? k - pc : kcb;
    const bool first = pc == 0, last = pc + kc == k;
    VT acc[MRN][R];
    MLPFAST_UNROLL
    for (int i = 0; i < MRN; ++i) {
      MLPFAST_UNROLL
      for (int v = 0; v < R; ++v) acc[i][v] = VT{};
    }
    const T* ap = a + pc * sa_p;
    const T* bp = b + pc * ldb;
    for (index_t p = 0; p < kc; ++p, ap += sa_p, bp += ldb) {
      VT bv[R];
      MLPFAST_UNROLL
      for (int v = 0; v < R; ++v) bv[v] = ld(bp + cols[v]);
      MLPFAST_UNROLL
      for (int i = 0; i < MRN; ++i) {
        const VT x = (SCALE ? ap[i * sa_i] * alpha : ap[i * sa_i]) - VT{};
        MLPFAST_UNROLL
        for (int v = 0; v < R; ++v) acc[i][v] += x * bv[v];
      }
    }
    const bool read_c = !first || beta != T(0);
    const VT vbeta = (first ? beta : T(1)) - VT{};
    MLPFAST_UNROLL
    for (int i = 0; i < MRN; ++i) {
      T* ci = c + i * ldc;
      VT out[R];  // all formed before any is stored: the last vector overlaps the one before
      MLPFAST_UNROLL
      for (int v = 0; v < R; ++v) {
        VT x = acc[i][v];
        if (read_c) x += vbeta * ld(ci + cols[v]);
        if (last && bias) x += ld(bias + cols[v]);
        if (last && in_reg) x = act_vec<T>(act, x);
        out[v] = x;
      }
      MLPFAST_UNROLL
      for (int v = 0; v < R; ++v) st(ci + cols[v], out[v]);
    }
  }
}

// Rows [0, m) of C in tiles of MRN rows (the last m % MRN rows one at a time), R vectors of VB
// bytes per row.
template <typename T, int VB, int MRN, int R>
void narrow_rows(index_t m, index_t n, index_t k, index_t kcb, const T* a, index_t sa_i,
                 index_t sa_p, T alpha, const T* b, index_t ldb, T beta, T* c, index_t ldc,
                 const T* bias, Activation act) {
  constexpr index_t L = VB / index_t(sizeof(T));
  index_t cols[R];
  for (int v = 0; v < R; ++v) cols[v] = (v + 1) * L <= n ? v * L : n - L;
  auto tiles = [&](auto scale) {
    constexpr bool S = decltype(scale)::value;
    index_t i0 = 0;
    for (; i0 + MRN <= m; i0 += MRN)
      narrow_tile<T, VB, MRN, R, S>(k, kcb, a + i0 * sa_i, sa_i, sa_p, alpha, b, ldb, cols, beta,
                                    c + i0 * ldc, ldc, bias, act);
    for (; i0 < m; ++i0)
      narrow_tile<T, VB, 1, R, S>(k, kcb, a + i0 * sa_i, sa_i, sa_p, alpha, b, ldb, cols, beta,
                                  c + i0 * ldc, ldc, bias, act);
  };
  if (alpha != T(1))
    tiles(std::true_type{});
  else
    tiles(std::false_type{});
  if (act != Activation::identity && !act_in_registers(act))
    for (index_t i = 0; i < m; ++i) act_row(act, c + i * ldc, n);
}

template <typename T, int VB, int MRN, int R>
void narrow_rows_r(int r, index_t m, index_t n, index_t k, index_t kcb, const T* a, index_t sa_i,
                   index_t sa_p, T alpha, const T* b, index_t ldb, T beta, T* c, index_t ldc,
                   const T* bias, Activation act) {
  if (r == R)
    return narrow_rows<T, VB, MRN, R>(m, n, k, kcb, a, sa_i, sa_p, alpha, b, ldb, beta, c, ldc,
                                      bias, act);
  if constexpr (R > 1)
    narrow_rows_r<T, VB, MRN, R - 1>(r, m, n, k, kcb, a, sa_i, sa_p, alpha, b, ldb, beta, c, ldc,
                                     bias, act);
}

// The widest vector (this level's, then 32, then 16 bytes) with at most n lanes, and how many of
// them cover n columns; false when that takes more than RMAX (or n is under 16 bytes).
template <typename T, int RMAX>
bool narrow_shape(index_t n, int* vb, int* r) {
  for (int bytes = MLPFAST_VEC_BYTES; bytes >= 16; bytes /= 2) {
    const index_t lanes = bytes / index_t(sizeof(T));
    if (lanes > n) continue;
    const index_t nvec = (n + lanes - 1) / lanes;
    if (nvec > RMAX) return false;
    *vb = bytes;
    *r = int(nvec);
    return true;
  }
  return false;
}

// Rows [0, m) of C (op(A) rows, with a already at row 0): dispatch on the vector width.
template <typename T, int MRN, int RMAX>
void narrow_any(int vb, int r, index_t m, index_t n, index_t k, index_t kcb, const T* a,
                index_t sa_i, index_t sa_p, T alpha, const T* b, index_t ldb, T beta, T* c,
                index_t ldc, const T* bias, Activation act) {
  auto run = [&](auto bytes) {
    narrow_rows_r<T, decltype(bytes)::value, MRN, RMAX>(r, m, n, k, kcb, a, sa_i, sa_p, alpha, b,
                                                        ldb, beta, c, ldc, bias, act);
  };
#if MLPFAST_VEC_BYTES >= 64
  if (vb == 64) return run(std::integral_constant<int, 64>{});
#endif
#if MLPFAST_VEC_BYTES >= 32
  if (vb == 32) return run(std::integral_constant<int, 32>{});
#endif
  run(std::integral_constant<int, 16>{});
}

}  // namespace
}  // namespace MLPFAST_ISA_NS
}  // namespace mlpfast
#endif  // MLPFAST_HAVE_VECTOR_EXT
