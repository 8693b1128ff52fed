// gemm_kernels.cpp: general matrix multiply, compiled once per ISA level (see kernels.h).
//
// Contract (KernelSet<T>::gemm): C = act(alpha * op(A) op(B) + beta * C + bias), row-major,
// op(A) m x k, op(B) k x n, C m x n with row stride ldc. beta == 0: C is never read. bias may be
// null (else length n). act is any Activation but prelu. k == 0 or alpha == 0: op(A) op(B) is
// not formed (BLAS convention) and C = act(beta * C + bias). Results are bitwise identical for
// any thread count: threads split M and N, never K; every micro-kernel variant computes an
// element of C by the same operations; every decision that changes the arithmetic (path, K
// blocking) depends on the shape only.
//
// Reference: K. Goto and R. van de Geijn, "Anatomy of High-Performance Matrix Multiplication",
// ACM TOMS 34(3), 2008; F. Van Zee and R. van de Geijn, "BLIS: A Framework for Rapidly
// Instantiating BLAS Functionality", ACM TOMS 41(3), 2015 (the five loops around the
// micro-kernel, named as in BLISlab).
//
// Structure:
//   Blocks<T>              every block size of this ISA level, in one place
//   pack_a_mc_x_kc         op(A) block -> MR-row slivers (zero-padded), read by broadcast
//   pack_b_kc_x_nc         op(B) panel -> NR-column slivers (zero-padded), read as vectors
//   ukernel_mr_x_nr        MR x NR register tile: rank-1 updates over kc, fused epilogue
//   ukernel_edge           the same kernel sized to the last rows / columns of C
//   macro_kernel           loops 1 and 2 around the micro-kernel over one packed block
//   run_task               loops 3 and 4 for one task (a block of rows x an NC-or-narrower panel)
//   gemm_packed            packs A once (all threads), loop 5: threads take the tasks
//   gemm_rows / gemm_dots  the unpacked path for small products (batch size 1, k tiny), in
//                          gemm_small.h; vector types and the activation epilogue are in
//                          gemm_common.h
//   gemm                   the entry point: path choice, thread count, row super-blocks
//
// The micro-kernel is written once with GCC vector extensions (zmm on avx512, ymm on avx2,
// 16-byte vectors at the generic level, which GCC lowers to SSE2 on x86-64 and NEON/etc.
// elsewhere); compilers without them get plain scalar code (lanes = 1). Everything in this file
// has internal linkage except register_gemm, so no weak symbol of one ISA level can replace
// another's (docs/kernels.md; tests/test_gemm.py checks with nm).
#include <cstddef>
#include <cstdlib>
#include <cstring>

#if defined(__AVX__) || defined(__SSE2__)
#include <immintrin.h>
#endif

#include "gemm_common.h"
#include "gemm_narrow.h"
#include "gemm_small.h"
#include "kernels.h"
#include "vecmath.h"

namespace mlpfast {
namespace MLPFAST_ISA_NS {
namespace {

// ---------------------------------------------------------------------------------------------
// Block sizes: the one place that holds them. MR x NR is the register tile (NR = NV vectors),
// KC the depth of a packed block, MC x KC the packed A block (L2), KC x NC the packed B panel
// (L3). Measured on AMD Zen 4 (1 MiB L2/core, 32 KiB L1d, AVX-512 double-pumped), one thread,
// CPU time: 8x48 beat 6x64 and 12x32 (float); 8x24 tied 6x32 and beat 12x16 (double); MC 96,
// 192 and 384 were within noise on one thread, 192 won on two (a 128-row task is one block). The K
// blocking changes rounding, so KC is per dtype and ISA but never depends on threads.

//   avx512 double: KC 512 and a software prefetch PF = 16 k steps ahead in the micro-kernel's
// A and B slivers (SPR, 2026-11-28, one thread, CPU time, medians of 9-11 side by side with
// numpy: 2048^3 0.81-0.83x -> 0.89-0.92x numpy, and the MLP shapes 0-10% faster; KC 128, 192 and
// 1024 were slower, MC 96 no better). PF = 0: no prefetch.
template <typename T>
struct Blocks {
#if MLPFAST_VEC_BYTES == 64
  static constexpr int MR = 8, NV = 3, MC = 192;
  static constexpr int KC = sizeof(T) == 8 ? 512 : 256, PF = sizeof(T) == 8 ? 16 : 0;
#elif MLPFAST_VEC_BYTES == 32
  static constexpr int MR = 6, NV = 2, KC = 256, MC = 96, PF = 0;
#else
  static constexpr int MR = 4, NV = 3, KC = 256, MC = 96, PF = 0;
#endif
  static constexpr int NC = sizeof(T) == 4 ? 1536 : 768;  // the same bytes for both dtypes
};

// Path thresholds depend on the shape only; the thread count never changes the arithmetic.
constexpr index_t kSmallM = 4;  // m <= 4 (batch size 1..4): unpacked row kernel
constexpr index_t kSmallK = 4;  // k <= 4 (outer products, dW at batch 1): same
// (the threads a product pays for: kMinFlopsPerThread, kernels.h)

// Everything a micro-kernel needs besides its operands.
template <typename T>
struct Epilogue {
  T beta;         // applies to the first K block only; later blocks accumulate (beta = 1)
  bool first;     // first K block: C is scaled by beta (or not read when beta == 0)
  bool last;      // last K block: add bias, apply act
  const T* bias;  // at this tile's first column, or null
  Activation act;
};

// ---------------------------------------------------------------------------------------------
// Packing. op(A)[i][p] = trans_a ? a[p*lda + i] : a[i*lda + p]; likewise op(B)[p][j].

// dst[p*ldd + r] = src[r*lds + p] for r < rows, p < kc: the transposing copy that NN packing of
// A and NT packing of B both need (rows of the source are contiguous in p). Square blocks of TW
// are transposed in registers (8x8 float / 4x4 double with AVX, 4x4 / 2x2 with SSE2); scalar
// copies elsewhere. A plain copy: no arithmetic, so the path cannot change results.
#if defined(__AVX__)
inline void transpose_block(const float* s, index_t lds, float* d, index_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(d + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(d + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
inline void transpose_block(const double* s, index_t lds, double* d, index_t ldd) {
  const __m256d r0 = _mm256_loadu_pd(s), r1 = _mm256_loadu_pd(s + lds);
  const __m256d r2 = _mm256_loadu_pd(s + 2 * lds), r3 = _mm256_loadu_pd(s + 3 * lds);
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  _mm256_storeu_pd(d, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(d + ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(d + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(d + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
}
template <typename T>
constexpr int transpose_width() {
  return 32 / int(sizeof(T));
}
#elif defined(__SSE2__)
inline void transpose_block(const float* s, index_t lds, float* d, index_t ldd) {
  __m128 r0 = _mm_loadu_ps(s), r1 = _mm_loadu_ps(s + lds);
  __m128 r2 = _mm_loadu_ps(s + 2 * lds), r3 = _mm_loadu_ps(s + 3 * lds);
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  _mm_storeu_ps(d, r0);
  _mm_storeu_ps(d + ldd, r1);
  _mm_storeu_ps(d + 2 * ldd, r2);
  _mm_storeu_ps(d + 3 * ldd, r3);
}
inline void transpose_block(const double* s, index_t lds, double* d, index_t ldd) {
  const __m128d r0 = _mm_loadu_pd(s), r1 = _mm_loadu_pd(s + lds);
  _mm_storeu_pd(d, _mm_unpacklo_pd(r0, r1));
  _mm_storeu_pd(d + ldd, _mm_unpackhi_pd(r0, r1));
}
template <typename T>
constexpr int transpose_width() {
  return 16 / int(sizeof(T));
}
#else
template <typename T>
void transpose_block(const T* s, index_t lds, T* d, index_t ldd) {
  d[0] = s[0];
  (void)lds;
  (void)ldd;
}
template <typename T>
constexpr int transpose_width() {
  return 1;
}
#endif

template <typename T>
void transpose_copy(const T* src, index_t lds, int rows, index_t kc, T* dst, int ldd) {
  constexpr int TW = transpose_width<T>();
  const int rb = rows / TW * TW;
  const index_t pb = kc / TW * TW;
  for (int r = 0; r < rb; r += TW) {
    for (index_t p = 0; p < pb; p += TW)
      transpose_block(src + r * lds + p, lds, dst + p * ldd + r, ldd);
    for (index_t p = pb; p < kc; ++p)
      for (int q = r; q < r + TW; ++q) dst[p * ldd + q] = src[q * lds + p];
  }
  for (int q = rb; q < rows; ++q)
    for (index_t p = 0; p < kc; ++p) dst[p * ldd + q] = src[q * lds + p];
}

// alpha * op(A)[0:mc, 0:kc] -> ceil(mc/MR) slivers of kc x MR (element (i, p) at p*MR + i),
// rows past mc zero. TN copies MR contiguous values per p; NN transposes MR rows. alpha is
// applied here, once per element of A, which keeps the epilogue a single multiply-add.
template <typename T>
void pack_a_mc_x_kc(bool trans_a, index_t mc, index_t kc, T alpha, const T* a, index_t lda, T* ap) {
  constexpr int MR = Blocks<T>::MR;
  if (alpha != T(1)) {
    T* const ap0 = ap;
    pack_a_mc_x_kc(trans_a, mc, kc, T(1), a, lda, ap);
    const index_t len = (mc + MR - 1) / MR * MR * kc;
    for (index_t q = 0; q < len; ++q) ap0[q] *= alpha;
    return;
  }
  if (trans_a) {
    // row p of A holds op(A)[:, p]: copy it whole into every sliver, one MR piece each
    const index_t full = mc / MR * MR;
    for (index_t p = 0; p < kc; ++p) {
      const T* src = a + p * lda;
      for (index_t i0 = 0; i0 < full; i0 += MR) {
        T* dst = ap + i0 * kc + p * MR;
        MLPFAST_UNROLL
        for (int i = 0; i < MR; ++i) dst[i] = src[i0 + i];
      }
      if (full < mc) {
        T* dst = ap + full * kc + p * MR;
        for (int i = 0; i < MR; ++i) dst[i] = full + i < mc ? src[full + i] : T(0);
      }
    }
    return;
  }
  for (index_t i0 = 0; i0 < mc; i0 += MR, ap += MR * kc) {
    const int mr = mc - i0 < MR ? int(mc - i0) : MR;
    transpose_copy(a + i0 * lda, lda, mr, kc, ap, MR);
    if (mr < MR)
      for (index_t p = 0; p < kc; ++p)
        for (int i = mr; i < MR; ++i) ap[p * MR + i] = T(0);
  }
}

// op(B)[0:kc, 0:nc] -> ceil(nc/NR) slivers of kc x NR (element (p, j) at p*NR + j), columns past
// nc zero. NN copies NR contiguous values per p; NT transposes NR rows of b.
template <typename T>
void pack_b_kc_x_nc(bool trans_b, index_t kc, index_t nc, const T* b, index_t ldb, T* bp) {
  constexpr int NR = Blocks<T>::NV * lanes<T>();
  for (index_t j0 = 0; j0 < nc; j0 += NR, bp += NR * kc) {
    const int nr = nc - j0 < NR ? int(nc - j0) : NR;
    if (!trans_b) {
      const T* src = b + j0;
      for (index_t p = 0; p < kc; ++p) {
        std::memcpy(bp + p * NR, src + p * ldb, nr * sizeof(T));
        for (int j = nr; j < NR; ++j) bp[p * NR + j] = T(0);
      }
    } else {
      transpose_copy(b + j0 * ldb, ldb, nr, kc, bp, NR);
      if (nr < NR)
        for (index_t p = 0; p < kc; ++p)
          for (int j = nr; j < NR; ++j) bp[p * NR + j] = T(0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Micro-kernel: C[0:MR, 0:NR] (+)= sum_p ap[p*MRP + i] * b[p*ldb_p + j], a series of kc
// rank-1 updates held in MR x NV vector registers (24 zmm for the avx512 8x48 / 8x24 tiles).
// ap is a packed A sliver (MRP = Blocks::MR rows; MR < MRP for the last rows of C). b is a
// packed sliver (ldb_p = NR) or, for NN/TN with B not packed, B itself (ldb_p = ldb).
// The epilogue runs here, once per tile: beta on the first K block, bias and act on the last.
// Every instantiation computes an element of C by the same operations in the same order.
template <typename T, int MR, int NV, int MRP>
void ukernel_mr_x_nr(index_t kc, const T* MLPFAST_RESTRICT ap, const T* MLPFAST_RESTRICT b,
                     index_t ldb_p, T* MLPFAST_RESTRICT c, index_t ldc, const Epilogue<T>& ep) {
  constexpr int L = lanes<T>();
  // C is touched only after the kc loop: start fetching its lines now (rows of a large C are
  // pages apart and would otherwise miss one after another in the epilogue).
  for (int i = 0; i < MR; ++i)
    for (int off = 0; off < NV * L; off += 64 / int(sizeof(T)))
      MLPFAST_PREFETCH_W(c + i * ldc + off);
  V<T> acc[MR][NV];
  MLPFAST_UNROLL
  for (int i = 0; i < MR; ++i) {
    MLPFAST_UNROLL
    for (int v = 0; v < NV; ++v) acc[i][v] = V<T>{};
  }
  for (index_t p = 0; p < kc; ++p) {
    V<T> bv[NV];
    MLPFAST_UNROLL
    for (int v = 0; v < NV; ++v) bv[v] = loadu(b + v * L);
    if constexpr (Blocks<T>::PF > 0) {
      MLPFAST_PREFETCH_R(ap + Blocks<T>::PF * MRP);
      MLPFAST_UNROLL
      for (int v = 0; v < NV; ++v) MLPFAST_PREFETCH_R(b + Blocks<T>::PF * ldb_p + v * L);
    }
    MLPFAST_UNROLL
    for (int i = 0; i < MR; ++i) {
      const V<T> ai = splat(ap[i]);
      MLPFAST_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] += ai * bv[v];
    }
    ap += MRP;
    b += ldb_p;
  }
  const bool read_c = !ep.first || ep.beta != T(0);
  const V<T> beta = splat(ep.first ? ep.beta : T(1));
  V<T> bias[NV];
  MLPFAST_UNROLL
  for (int v = 0; v < NV; ++v) bias[v] = ep.last && ep.bias ? loadu(ep.bias + v * L) : V<T>{};
  MLPFAST_UNROLL
  for (int i = 0; i < MR; ++i) {
    T* ci = c + i * ldc;
    MLPFAST_UNROLL
    for (int v = 0; v < NV; ++v) {
      // One multiply-add only (alpha is in the packed A), so every instantiation contracts it
      // to the same FMA: two would leave the compiler a choice of which one to fuse.
      V<T> x = acc[i][v];
      if (read_c) x += beta * loadu(ci + v * L);
      if (ep.last && ep.bias) x += bias[v];
      if (ep.last) x = act_vec<T>(ep.act, x);
      storeu(ci + v * L, x);
    }
  }
  if (ep.last && ep.act != Activation::identity && !act_in_registers(ep.act))
    for (int i = 0; i < MR; ++i) act_row(ep.act, c + i * ldc, NV * L);
}

// Edge tiles (the last rows or columns of C): the micro-kernel instantiated for exactly mr rows
// and ceil(nr / lanes) vectors, so the edges do not pay for a full tile of zeros.
template <typename T, int M, int N>
void ukernel_edge(int mr, int nv, index_t kc, const T* ap, const T* b, index_t ldb_p, T* c,
                  index_t ldc, const Epilogue<T>& ep) {
  if (mr == M && nv == N)
    return ukernel_mr_x_nr<T, M, N, Blocks<T>::MR>(kc, ap, b, ldb_p, c, ldc, ep);
  if constexpr (N > 1)
    if (nv < N) return ukernel_edge<T, M, N - 1>(mr, nv, kc, ap, b, ldb_p, c, ldc, ep);
  if constexpr (M > 1)
    return ukernel_edge<T, M - 1, Blocks<T>::NV>(mr, nv, kc, ap, b, ldb_p, c, ldc, ep);
}

// ---------------------------------------------------------------------------------------------
// Macro-kernel: one packed MC x KC block of A times one KC x NC panel of B into C[0:mc, 0:nc].
// A tile whose width is not a whole number of vectors goes through an MR x NR buffer. Which
// kernel computes an element depends on the shape only (threads split at tile boundaries).
template <typename T>
struct Panel {
  const T* b;       // packed panel (ldb_p == NR) or B itself at (pc, jc)
  index_t ldb_p;    // row stride of b; NR when packed
  const T* b_tail;  // packed copy of the last, partial sliver when B is not packed (else null)
};

template <typename T>
void macro_kernel(index_t mc, index_t nc, index_t kc, const T* ap, const Panel<T>& bpanel, T* c,
                  index_t ldc, Epilogue<T> ep) {
  constexpr int MR = Blocks<T>::MR, NV = Blocks<T>::NV, L = lanes<T>(), NR = NV * L;
  const bool packed = bpanel.ldb_p == NR;
  const T* bias0 = ep.bias;
  alignas(64) T tile[MR * NR];
  alignas(64) T tile_bias[NR];
  // loop 2 around the micro-kernel: NR-column slivers of the panel
  for (index_t j0 = 0; j0 < nc; j0 += NR) {
    const int nr = nc - j0 < NR ? int(nc - j0) : NR;
    const int nv = (nr + L - 1) / L;
    const T* bs = packed ? bpanel.b + j0 * kc : (nr == NR ? bpanel.b + j0 : bpanel.b_tail);
    const index_t ldb_p = packed || nr < NR ? NR : bpanel.ldb_p;
    ep.bias = bias0 ? bias0 + j0 : nullptr;
    Epilogue<T> ept = ep;  // for tiles computed in `tile`
    if (nr < nv * L) {
      if (bias0) {
        for (int j = 0; j < NR; ++j) tile_bias[j] = j < nr ? bias0[j0 + j] : T(0);
        ept.bias = tile_bias;
      }
    }
    // loop 1 around the micro-kernel: MR-row slivers of the packed A block
    for (index_t i0 = 0; i0 < mc; i0 += MR) {
      const int mr = mc - i0 < MR ? int(mc - i0) : MR;
      T* cij = c + i0 * ldc + j0;
      const T* as = ap + i0 * kc;
      if (mr == MR && nr == NR) {
        ukernel_mr_x_nr<T, MR, NV, MR>(kc, as, bs, ldb_p, cij, ldc, ep);
      } else if (nr == nv * L) {
        ukernel_edge<T, MR, NV>(mr, nv, kc, as, bs, ldb_p, cij, ldc, ep);
      } else {
        // (copies and zeros: a loop of conditional loads became masked loads behind a long
        // mask computation, see gemm_bf16.cpp)
        const bool read_c = !ep.first || ep.beta != T(0);
        const int copied = read_c ? nr : 0;
        for (int i = 0; i < mr; ++i) {
          if (copied) std::memcpy(tile + i * NR, cij + i * ldc, copied * sizeof(T));
          std::memset(tile + i * NR + copied, 0, (nv * L - copied) * sizeof(T));
        }
        ukernel_edge<T, MR, NV>(mr, nv, kc, as, bs, ldb_p, tile, NR, ept);
        for (int i = 0; i < mr; ++i)
          for (int j = 0; j < nr; ++j) cij[i * ldc + j] = tile[i * NR + j];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Per-thread packing buffers (grown on demand, 64-byte aligned, freed when the thread exits),
// kept between calls up to kKeepPackBytes: the MLP's products reuse them call after call, while
// a larger one (a product with a huge k, e.g. 8 x 10**6 @ 10**6 x 8, packs 61 MiB of A) is freed
// when its call returns, so a thread never holds more than a few MiB after a call.
// Packed A of one row super-block stays under kMaxPackedABytes (rows are processed in
// super-blocks beyond it, which changes no arithmetic); its rounding up to MR rows adds less
// than 1 MiB wherever a super-block has at least MC rows. Larger packed A (k so large that MC
// rows do not fit the budget) is not kept.
constexpr std::size_t kMaxPackedABytes = std::size_t(16) << 20;
constexpr std::size_t kKeepPackBytes = kMaxPackedABytes + (std::size_t(1) << 20);
struct PackBuffer {
  void* p = nullptr;
  std::size_t bytes = 0;
  void* get(std::size_t need) {
    if (need > bytes) {
      release();
      need = (need + 4095) & ~std::size_t(4095);
      p = std::aligned_alloc(64, need);
      bytes = p ? need : 0;
    }
    return p;
  }
  void release() {
    std::free(p);
    p = nullptr;
    bytes = 0;
  }
  void trim() {
    if (bytes > kKeepPackBytes) release();
  }
  ~PackBuffer() { std::free(p); }
};
thread_local PackBuffer tl_pack_a;  // the calling thread's: packed A, shared by its team
thread_local PackBuffer tl_pack_b;  // every thread's own: its packed B panel

// K is cut into ceil(k / KC) nearly equal blocks (e.g. 784 -> 4 x 196, not 3 x 256 + 16): a
// short last block would waste the epilogue's C traffic. Depends on k only.
template <typename T>
index_t k_block(index_t k) {
  const index_t nb = (k + Blocks<T>::KC - 1) / Blocks<T>::KC;
  return (k + nb - 1) / nb;
}

// B is read in place (not packed) for NN/TN up to m = 1024 (measured: packing did not pay for
// the MLP shapes), unless its row stride is a multiple of 4 KiB (cache-set conflicts). Only
// speed depends on this choice.
template <typename T>
bool pack_b_needed(bool trans_b, index_t m, index_t ldb) {
  if (trans_b) return true;
  if ((ldb * index_t(sizeof(T))) % 4096 == 0) return true;
  return m > 1024;
}

// One packed product on rows [0, m) of C, shared by a team of threads. A is packed once, for all
// K blocks (block starting at pc: mpad x kc in MR slivers, at ap + mpad * pc); C is then cut into
// tasks (rows x columns) that the threads take dynamically, each packing the B panel of its own
// columns. Tasks never split K, and an element's arithmetic does not depend on which task or
// thread computes it, so results are identical for any thread count or schedule.
template <typename T>
struct Job {
  bool trans_a, trans_b, pack_b;
  index_t m, n, k, kcb, mpad;
  const T* a;
  index_t lda;
  const T* b;
  index_t ldb;
  T alpha, beta;
  T* c;
  index_t ldc;
  const T* bias;
  Activation act;
  T* ap;
  index_t task_rows, task_cols, tasks_m, tasks_n;
};

// Packing unit u of A: K block u / row_blocks, MC rows u % row_blocks.
template <typename T>
void pack_a_unit(const Job<T>& job, index_t u) {
  constexpr index_t MC = Blocks<T>::MC;
  const index_t row_blocks = (job.m + MC - 1) / MC;
  const index_t pc = u / row_blocks * job.kcb, ic = u % row_blocks * MC;
  const index_t kc = job.k - pc < job.kcb ? job.k - pc : job.kcb;
  const index_t mc = job.m - ic < MC ? job.m - ic : MC;
  pack_a_mc_x_kc(job.trans_a, mc, kc, job.alpha,
                 job.trans_a ? job.a + pc * job.lda + ic : job.a + ic * job.lda + pc, job.lda,
                 job.ap + job.mpad * pc + ic * kc);
}

template <typename T>
void run_task(const Job<T>& job, index_t t) {
  constexpr int NR = Blocks<T>::NV * lanes<T>();
  constexpr index_t MC = Blocks<T>::MC;
  const index_t i0 = t / job.tasks_n * job.task_rows, j0 = t % job.tasks_n * job.task_cols;
  const index_t i1 = i0 + job.task_rows < job.m ? i0 + job.task_rows : job.m;
  const index_t nc = j0 + job.task_cols < job.n ? job.task_cols : job.n - j0;
  const index_t nc_pad = (nc + NR - 1) / NR * NR;
  T* bp =
      static_cast<T*>(tl_pack_b.get(std::size_t(job.pack_b ? nc_pad : NR) * job.kcb * sizeof(T)));
  if (!bp) {  // out of memory (for a few MiB): slower, still correct
    const index_t mm = i1 - i0;
    return gemm_unpacked(job.trans_a, job.trans_b, mm, nc, job.k, job.alpha,
                         job.trans_a ? job.a + i0 : job.a + i0 * job.lda, job.lda,
                         job.trans_b ? job.b + j0 * job.ldb : job.b + j0, job.ldb, job.beta,
                         job.c + i0 * job.ldc + j0, job.ldc, job.bias ? job.bias + j0 : nullptr,
                         job.act);
  }
  const T* b = job.b;
  const index_t ldb = job.ldb;
  // loop 4 around the micro-kernel: KC-deep blocks of K (the only loop that accumulates in C)
  for (index_t pc = 0; pc < job.k; pc += job.kcb) {
    const index_t kc = job.k - pc < job.kcb ? job.k - pc : job.kcb;
    Panel<T> panel;
    if (job.pack_b) {
      pack_b_kc_x_nc(job.trans_b, kc, nc, job.trans_b ? b + j0 * ldb + pc : b + pc * ldb + j0, ldb,
                     bp);
      panel = {bp, NR, nullptr};
    } else {
      panel = {b + pc * ldb + j0, ldb, nullptr};
      if (nc % NR) {
        const index_t jt = nc / NR * NR;
        pack_b_kc_x_nc(false, kc, nc - jt, b + pc * ldb + j0 + jt, ldb, bp);
        panel.b_tail = bp;
      }
    }
    const Epilogue<T> ep{job.beta, pc == 0, pc + kc >= job.k, job.bias ? job.bias + j0 : nullptr,
                         job.act};
    // loop 3 around the micro-kernel: MC-row blocks (packed A is read in place)
    for (index_t ic = i0; ic < i1; ic += MC) {
      const index_t mc = i1 - ic < MC ? i1 - ic : MC;
      macro_kernel(mc, nc, kc, job.ap + job.mpad * pc + ic * kc, panel, job.c + ic * job.ldc + j0,
                   job.ldc, ep);
    }
  }
}

// Tasks: about four per thread (two when each task packs a B panel), so that a thread slowed by
// another process hands its share to the others, and a multiple of the thread count when that
// is possible (9 equal tasks on 2 threads leave one idle for a ninth of the time). B read in
// place: rows are split first (MR multiples), and a task reads its rows of the packed A and all
// of B, as in Goto's order; then columns, in whole NR-column slivers (tasks of 64 columns ran a
// 48-column sliver and a one-vector one, whose kernel waits on its loads: the batch-100 forward
// products were 6% slower on 2 threads on Zen 4). B packed: columns are split first (vector
// multiples, NC at most), so no two tasks pack the same B columns unless there are too few of
// them.
inline void split_tasks(index_t extent, index_t parts, index_t unit, index_t min_size,
                        index_t max_size, index_t& size, index_t& count) {
  size = ((extent + parts - 1) / parts + unit - 1) / unit * unit;
  if (size < min_size) size = min_size;
  if (size > max_size) size = max_size;
  count = (extent + size - 1) / size;
}

template <typename T>
void plan_tasks(Job<T>& job, int nt) {
  constexpr int MR = Blocks<T>::MR, L = lanes<T>(), NR = Blocks<T>::NV * L;
  constexpr index_t MC = Blocks<T>::MC, NC = Blocks<T>::NC;
  const index_t want = nt > 1 ? (job.pack_b ? 2 : 4) * index_t(nt) : 1;
  const index_t big = index_t(1) << 40;
  // the first dimension gets `want` parts (as far as it goes), the second makes up the rest
  for (index_t extra = 0;; ++extra) {
    if (job.pack_b) {
      split_tasks(job.n, want, L, NR, NC, job.task_cols, job.tasks_n);
      const index_t tm = (want + job.tasks_n - 1) / job.tasks_n + extra;
      split_tasks(job.m, tm, MR, MR, big, job.task_rows, job.tasks_m);
    } else {
      split_tasks(job.m, want, MR, MC, big, job.task_rows, job.tasks_m);
      const index_t tn = (want + job.tasks_m - 1) / job.tasks_m + extra;
      split_tasks(job.n, tn, NR, NR, NC, job.task_cols, job.tasks_n);
    }
    if (nt <= 1 || (job.tasks_m * job.tasks_n) % nt == 0 || extra >= 4 * want) break;
  }
}

// nt: the threads the work pays for (tasks are planned for them); team: the team that runs them
// (region_threads(): 1, or the whole team, never a size in between; threads.h says why).
template <typename T>
void gemm_packed(Job<T>& job, int nt, int team) {
  constexpr index_t MC = Blocks<T>::MC;
  const index_t units = (job.k + job.kcb - 1) / job.kcb * ((job.m + MC - 1) / MC);
  plan_tasks(job, nt);
  const index_t tasks = job.tasks_m * job.tasks_n;
  if (nt > tasks) nt = int(tasks);
  if (nt <= 1) {
    for (index_t u = 0; u < units; ++u) pack_a_unit(job, u);
    for (index_t t = 0; t < tasks; ++t) run_task(job, t);  // loop 5: NC-column panels
    return;
  }
#ifdef _OPENMP
  RegionTimer timer(team);  // when the helpers arrive (threads.h: the load adaptation)
#pragma omp parallel num_threads(team)
  {
    timer.arrive();
    // dynamic here too: a thread that another process keeps off its core must not hold up the
    // barrier with a share of the packing
#pragma omp for schedule(dynamic, 1)
    for (index_t u = 0; u < units; ++u) pack_a_unit(job, u);
    // (implicit barrier: A is packed before any task reads it)
    // loop 5 around the micro-kernel: column panels (and row blocks), one task at a time
#pragma omp for schedule(dynamic, 1)
    for (index_t t = 0; t < tasks; ++t) run_task(job, t);
  }
#endif
}

// ---------------------------------------------------------------------------------------------
// k == 0 or alpha == 0: C = act(beta * C + bias).
template <typename T>
void scale_c(index_t m, index_t n, T beta, T* c, index_t ldc, const T* bias, Activation act) {
  for (index_t i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    for (index_t j = 0; j < n; ++j)
      ci[j] = (beta == T(0) ? T(0) : beta * ci[j]) + (bias ? bias[j] : T(0));
    act_row(act, ci, n);
  }
}

#if MLPFAST_HAVE_VECTOR_EXT
// ---------------------------------------------------------------------------------------------
// Narrow outputs (gemm_narrow.h): rows of C in pieces of whole MR-row tiles, taken dynamically
// planned for nt threads, taken by the whole team; rows are independent, so the pieces change no
// arithmetic.
template <typename T>
void gemm_narrow(int vb, int r, bool trans_a, index_t m, index_t n, index_t k, T alpha, const T* a,
                 index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc, const T* bias,
                 Activation act, int nt, int team) {
  constexpr int MR = Blocks<T>::MR, NV = Blocks<T>::NV;
  const index_t sa_i = trans_a ? 1 : lda, sa_p = trans_a ? lda : 1, kcb = k_block<T>(k);
  auto rows = [&](index_t i0, index_t i1) {
    narrow_any<T, MR, NV>(vb, r, i1 - i0, n, k, kcb, a + i0 * sa_i, sa_i, sa_p, alpha, b, ldb, beta,
                          c + i0 * ldc, ldc, bias, act);
  };
  if (nt <= 1) return rows(0, m);
  const index_t tiles = (m + MR - 1) / MR, per = (tiles + 4 * nt - 1) / (4 * nt) * MR;
  const index_t pieces = (m + per - 1) / per;
  RegionTimer timer(team);  // the whole team (threads.h), its helpers' arrival timed
#pragma omp parallel num_threads(team)
  {
    timer.arrive();
#pragma omp for schedule(dynamic, 1) nowait
    for (index_t t = 0; t < pieces; ++t) rows(t * per, (t + 1) * per < m ? (t + 1) * per : m);
  }
}
#endif

// ---------------------------------------------------------------------------------------------
// The entry point: path choice, thread count, row super-blocks.
template <typename T>
void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc, const T* bias,
          Activation act) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == T(0)) return scale_c(m, n, beta, c, ldc, bias, act);
  if (m <= kSmallM || k <= kSmallK)
    return gemm_unpacked(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act);
  constexpr int MR = Blocks<T>::MR;
  constexpr index_t MC = Blocks<T>::MC;
  // the policy's team (threads.h: 1 in a forked child or inside a parallel region), and the
  // threads the work pays for: tasks are planned for those, and the whole team takes them
  const int team = region_threads();
  int nt = team;
  if (nt > 1) {
    const double want = 2.0 * double(m) * double(n) * double(k) / double(kMinFlopsPerThread);
    if (want < double(nt)) nt = want < 1.0 ? 1 : int(want);
  }
#if MLPFAST_HAVE_VECTOR_EXT
  if (!trans_b && n < Blocks<T>::NV * lanes<T>()) {  // narrow outputs: gemm_narrow.h
    int vb = 0, r = 0;
    if (narrow_shape<T, Blocks<T>::NV>(n, &vb, &r))
      return gemm_narrow(vb, r, trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act,
                         nt, team);
  }
#endif
  Job<T> job{};
  job.trans_a = trans_a;
  job.trans_b = trans_b;
  job.pack_b = pack_b_needed<T>(trans_b, m, ldb);
  job.n = n;
  job.k = k;
  job.kcb = k_block<T>(k);
  job.lda = lda;
  job.b = b;
  job.ldb = ldb;
  job.alpha = alpha;
  job.beta = beta;
  job.ldc = ldc;
  job.bias = bias;
  job.act = act;
  // row super-blocks whose packed A fits the budget (one for every MLP shape)
  index_t rows = index_t(kMaxPackedABytes / sizeof(T)) / k;
  if (rows < MC) rows = MC;
  const index_t blocks = (m + rows - 1) / rows;
  rows = ((m + blocks - 1) / blocks + MR - 1) / MR * MR;  // equal super-blocks
  for (index_t i0 = 0; i0 < m; i0 += rows) {
    job.m = m - i0 < rows ? m - i0 : rows;
    job.mpad = (job.m + MR - 1) / MR * MR;
    job.a = trans_a ? a + i0 : a + i0 * lda;
    job.c = c + i0 * ldc;
    job.ap = static_cast<T*>(tl_pack_a.get(std::size_t(job.mpad) * k * sizeof(T)));
    if (!job.ap) {  // out of memory for the packed A: slower, still correct
      gemm_unpacked(trans_a, trans_b, job.m, n, k, alpha, job.a, lda, b, ldb, beta, job.c, ldc,
                    bias, act);
      continue;
    }
    gemm_packed(job, nt, team);
  }
  tl_pack_a.trim();  // (packed B panels are at most NC x KC: always kept)
}

}  // namespace

void register_gemm(KernelSet<float>& f32, KernelSet<double>& f64) {
  f32.gemm = &gemm<float>;
  f64.gemm = &gemm<double>;
}

}  // namespace MLPFAST_ISA_NS
}  // namespace mlpfast
