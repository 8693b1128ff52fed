// gemm_bf16.cpp: the bfloat16 GEMM of matmul_precision="bfloat16", compiled once per ISA level
// (the emulated kernel, at that level's vector width), once more with -mavx512bf16
// (MLPFAST_BF16_NATIVE: the vdpbf16ps kernel, namespace avx512_bf16) and once with AMX
// (MLPFAST_BF16_AMX: TDPBF16PS tiles, namespace amx_bf16); dispatch.cpp puts the last two
// into the avx512 level's table when the CPU has them.
//
// Contract (KernelSet<float>::gemm_bf16, gemm_bf16_native): as KernelSet<float>::gemm, except
// that every element of op(A) and op(B) is first rounded to bfloat16 (round to nearest even,
// subnormals to signed zero, NaN kept quiet: what VCVTNEPS2BF16 does), the products are summed
// in float32, and alpha multiplies each K block's sum in the epilogue:
//   C = act(alpha * sum_blocks(bf16(op(A)) bf16(op(B))) + beta * C + bias).
// The sum over one K block runs over k-pairs (2q, 2q+1) in order, each pair as VDPBF16PS does
// it (measured identical on Zen 4 and as Intel's SDM writes it): acc = fma(a[2q+1], b[2q+1],
// acc), then acc = fma(a[2q], b[2q], acc). The emulated kernel does exactly these two FMAs, so
// both kernels give the same bits (except where a partial sum is subnormal: the hardware
// flushes it to zero). AMX's TDPBF16PS sums in an order of its own (not documented; neither
// FMA order nor exact sums reproduce it), within the same error bound (tests/test_bf16.py).
// Threads split M and N only, K blocks depend on k only: bitwise identical for any thread
// count, for each kernel.
//
// Structure (Goto/BLIS, as gemm_kernels.cpp): op(A) and op(B) are packed into 32-bit words,
// each holding a k-pair of bf16 values (low half: even k, high half: odd k), MR (A) or NR (B)
// words per pair:
//   pack_pair_rows   source rows are k (B for NN, A for TN): round two rows, merge per lane
//   pack_pair_cols   source rows run along k (A for NN, B for NT): adjacent values make a pair
//   ukernel          MR x (NV vectors) register tile over the pairs, fused epilogue
//   run_task         one task: for each K block pack its B panel, then MR-row slivers of A
//   gemm_bf16        path, threads, A packed once (all threads), tasks over M x N
// B is always packed (the conversion is the packing); m <= 4 takes the same path (no unpacked
// path for bf16: every element of C is computed by the same kernel whatever m is).
// AMX: A is packed row by row instead ([i][q]: a tile's 16 rows of 16 pairs), the pairs of a
// K block padded to a multiple of 16 with zeros, and the 32 x 32 register tile is 2 x 2 tiles.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif
#if MLPFAST_BF16_NATIVE || MLPFAST_BF16_AMX
#include <immintrin.h>
#endif

#include "gemm_common.h"
#include "kernels.h"
#include "vecmath.h"  // act_row

namespace mlpfast {
namespace MLPFAST_ISA_NS {
namespace {

using word = std::uint32_t;
#if MLPFAST_HAVE_VECTOR_EXT
typedef word vw MLPFAST_VECTOR_ATTR(MLPFAST_VEC_BYTES);
typedef word vwu MLPFAST_VECTOR_ATTR(MLPFAST_VEC_BYTES) MLPFAST_ALIGNED_ATTR(4);
#else
typedef word vw;
typedef word vwu;
#endif
constexpr int L = lanes<float>();
using vf = V<float>;

inline vw loadw(const void* p) {
  vw x;
  std::memcpy(&x, p, sizeof(vw));
  return x;
}
inline void storew(void* p, vw x) { std::memcpy(p, &x, sizeof(vw)); }
template <typename To, typename From>
inline To bits(From x) {
  static_assert(sizeof(To) == sizeof(From), "same size");
  To y;
  std::memcpy(&y, &x, sizeof(To));
  return y;
}

// float bits -> the bf16 value in the high half (low half zero): round to nearest even,
// subnormals (and zeros) to signed zero, NaN quieted (VCVTNEPS2BF16's rules). W: a word or a
// vector of words.
template <typename W>
inline W round_bf16(W x) {
  const W r = (x + word(0x7FFF) + ((x >> 16) & word(1))) & word(0xFFFF0000);
  const W nan = (x | word(0x00400000)) & word(0xFFFF0000);
  const W zero = x & word(0x80000000);
  const W mag = x & word(0x7FFFFFFF);
  const W exponent = x & word(0x7F800000);
  if constexpr (sizeof(W) > sizeof(word)) {  // a vector: masks from the comparisons
    const W is_nan = W(mag > word(0x7F800000)), is_small = W(exponent == word(0));
    return (is_small & zero) | (~is_small & ((is_nan & nan) | (~is_nan & r)));
  } else {
    return exponent == 0 ? zero : (mag > word(0x7F800000) ? nan : r);
  }
}

// Block sizes. MR x NR register tile as the float GEMM's (8 x 48 with zmm: 24 accumulators);
// KC counts bf16 values (KC / 2 pairs: the same bytes of B as the float GEMM's KC = 256).
#if MLPFAST_BF16_AMX
constexpr bool kAmx = true;
constexpr int MR = 32, NV = 2, kPairAlign = 16;  // 2 x 2 tiles of 16 x 16; 16-pair tile rows
constexpr index_t MC = 192;
#elif MLPFAST_VEC_BYTES == 64
constexpr int MR = 8, NV = 3;
constexpr index_t MC = 192;
#elif MLPFAST_VEC_BYTES == 32
constexpr int MR = 6, NV = 2;
constexpr index_t MC = 96;
#else
constexpr int MR = 4, NV = 3;
constexpr index_t MC = 96;
#endif
#if !MLPFAST_BF16_AMX
constexpr bool kAmx = false;
constexpr int kPairAlign = 1;
#endif
constexpr int NR = NV * L;
constexpr index_t KC = kAmx ? 1024 : 512, NC = 1536;
// Words per row of a packed K block of kc values: its pairs, padded for the tiles.
constexpr index_t pairs(index_t kc) {
  return ((kc + 1) / 2 + kPairAlign - 1) / kPairAlign * kPairAlign;
}
// Rows of A per packing unit (units are shared out among the team), so that a batch of 100 rows
// (one MC block) is not packed by one thread while the others wait: with AMX one sliver, else
// four (with MC rows, K = 500 products at batch 100 were one unit: measured 3% slower on 2
// threads over the epoch's products on Zen 4).
constexpr index_t kPackRows = kAmx ? MR : 4 * MR;

// With AVX512-BF16 (the native objects) the packing converts with VCVTNE2PS2BF16, whose rounding
// round_bf16 reproduces (tests/test_bf16.py checks the kernels against each other and NumPy).
#if MLPFAST_BF16_NATIVE || MLPFAST_BF16_AMX
constexpr bool kCvt = true;
// 16 words: pair(r0[t], r1[t]) for t < cols, zero words for t >= cols (r1 null: high halves
// zero). Masked loads: no element at or past cols is read.
inline __m512i pairs_of_rows(const float* r0, const float* r1, int cols = 16) {
  const __mmask16 keep = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1u);
  const __m512 x0 = _mm512_maskz_loadu_ps(keep, r0);
  const __m512 x1 = r1 ? _mm512_maskz_loadu_ps(keep, r1) : _mm512_setzero_ps();
  const __m512i interleave =
      _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
}
// 16 words: pair(s[2t], s[2t + 1]) for t < 16 (32 consecutive values); with n < 32 values only
// s[0..n) are read and the rest are zeros (the last pairs of a K block).
inline __m512i pairs_of_run(const float* s, index_t n = 32) {
  if (n >= 32) return (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + 16), _mm512_loadu_ps(s));
  const __mmask16 lo = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
  const __mmask16 hi = n > 16 ? __mmask16((1u << (n - 16)) - 1u) : __mmask16(0);
  return (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, s + 16),
                                      _mm512_maskz_loadu_ps(lo, s));
}
// r[i][j] -> r[j][i] for a 16 x 16 matrix of words: three rounds of two-source permutes
// (interleave words, then word pairs, then 128-bit lanes twice).
inline __m512i mix(__m512i a, __m512i b, int i0, int i1, int i2, int i3, int i4, int i5, int i6,
                   int i7, int i8, int i9, int i10, int i11, int i12, int i13, int i14, int i15) {
  const __m512i idx = _mm512_set_epi32(i15, i14, i13, i12, i11, i10, i9, i8, i7, i6, i5, i4, i3, i2,
                                       i1, i0);  // index >= 16: b's word index - 16
  return _mm512_permutex2var_epi32(a, idx, b);
}
// r[u] holds words 0..15 of row u of an 8 x 16 matrix; afterwards r[h] holds its columns 2h
// and 2h + 1 (eight words each, in row order): the 16 x 8 transpose, stored row after row.
// (Unused in the AMX object, whose A slivers are 32 rows: Clang would warn.)
[[maybe_unused]] inline void transpose8x16(__m512i r[8]) {
  __m512i s[8];
  for (int u = 0; u < 8; u += 2) {  // rows u, u+1 word by word: columns 0-7, then 8-15
    s[u] = mix(r[u], r[u + 1], 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    s[u + 1] = mix(r[u], r[u + 1], 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  }
  __m512i t[8];  // rows 0-3 (t[0..3]) and 4-7 (t[4..7]), four columns each, word quads
  for (int g = 0; g < 8; g += 4)
    for (int h = 0; h < 2; ++h) {
      const __m512i x = s[g + h], y = s[g + h + 2];
      t[g + 2 * h] = mix(x, y, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
      t[g + 2 * h + 1] = mix(x, y, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
    }
  for (int c = 0; c < 4; ++c) {  // rows 0-3 then 4-7 of two columns
    r[2 * c] = mix(t[c], t[4 + c], 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    r[2 * c + 1] =
        mix(t[c], t[4 + c], 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  }
}
inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {  // t[i], t[i+1]: rows i, i+1 interleaved word by word
    t[i] = mix(r[i], r[i + 1], 0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29);
    t[i + 1] = mix(r[i], r[i + 1], 2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31);
  }
  for (int g = 0; g < 16; g += 4) {  // r[g + c]: rows g..g+3 of columns c, c+4, c+8, c+12
    for (int h = 0; h < 2; ++h) {
      const __m512i x = t[g + h], y = t[g + h + 2];
      r[g + 2 * h] = mix(x, y, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
      r[g + 2 * h + 1] = mix(x, y, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    }
  }
  for (int c = 0; c < 4; ++c) {  // gather each column's four 128-bit lanes
    const __m512i x0 = mix(r[c], r[4 + c], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    const __m512i x1 =
        mix(r[c], r[4 + c], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    const __m512i y0 =
        mix(r[8 + c], r[12 + c], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    const __m512i y1 =
        mix(r[8 + c], r[12 + c], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    t[c] = mix(x0, y0, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    t[c + 4] = mix(x0, y0, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    t[c + 8] = mix(x1, y1, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    t[c + 12] = mix(x1, y1, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}
#else
constexpr bool kCvt = false;
#endif

// ---------------------------------------------------------------------------------------------
// Packing: dst[q * W + j] = pair(op[2q][j], op[2q+1][j]) for q < ceil(kc / 2), j < W; the
// missing odd element of an odd kc and the columns j >= w are zero.

// Source row p (stride lds) holds op[p][0..w): two rows make one row of pairs.
template <int W>
void pack_pair_rows(const float* src, index_t lds, int w, index_t kc, word* dst) {
  for (index_t q = (kc + 1) / 2; q < pairs(kc); ++q)  // (AMX) padding pairs
    for (int j = 0; j < W; ++j) dst[q * W + j] = 0;
  for (index_t p = 0; p < kc; p += 2, dst += W) {
    const float* r0 = src + p * lds;
    const float* r1 = p + 1 < kc ? r0 + lds : nullptr;
    int j = 0;
#if MLPFAST_BF16_NATIVE || MLPFAST_BF16_AMX
    if constexpr (W % 16 == 0 || W == 8) {  // a partial sliver's columns past w are zero words
      for (int v = 0; v < W; v += 16) {
        const int cols = w - v < 16 ? w - v : 16;
        const __m512i x =
            cols > 0 ? pairs_of_rows(r0 + v, r1 ? r1 + v : nullptr, cols) : _mm512_setzero_si512();
        if constexpr (W == 8)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm512_castsi512_si256(x));
        else
          _mm512_storeu_si512(dst + v, x);
      }
      continue;
    }
#endif
    if (w == W && W % L == 0) {
      MLPFAST_UNROLL
      for (int v = 0; v < W / L; ++v) {
        const vw lo = round_bf16(loadw(r0 + v * L)) >> 16;
        const vw hi = r1 ? round_bf16(loadw(r1 + v * L)) : vw{};
        storew(dst + v * L, lo | hi);
      }
      continue;
    }
    for (; j < w; ++j)
      dst[j] = (round_bf16(bits<word>(r0[j])) >> 16) | (r1 ? round_bf16(bits<word>(r1[j])) : 0);
    for (; j < W; ++j) dst[j] = 0;
  }
}

// Source row j (stride lds) holds op[0..kc)[j]: adjacent values make a pair. The words are
// formed in vectors (lanes 2t and 2t+1 of a float vector make word t) and stored down column j.
template <int W>
void pack_pair_cols(const float* src, index_t lds, int w, index_t kc, word* dst) {
  const index_t kp = pairs(kc);
  for (index_t q = (kc + 1) / 2; q < kp; ++q)  // (AMX) padding pairs
    for (int j = 0; j < w; ++j) dst[q * W + j] = 0;
  int j = 0;
#if MLPFAST_BF16_NATIVE || MLPFAST_BF16_AMX
  // (the last pairs of a K block by masked loads: as scalar code they took a sixth of the time
  // of packing W^T for a K block of 500 values, whose last 10 pairs are not a whole 16)
  const index_t half = (kc + 1) / 2;
  if constexpr (W == 8) {  // (A's slivers) 8 columns x 16 pairs at a time, transposed in registers
    for (index_t q = 0; q < half; q += 16) {
      __m512i r[8];
      for (int u = 0; u < 8; ++u)
        r[u] = u < w ? pairs_of_run(src + u * lds + 2 * q, kc - 2 * q) : _mm512_setzero_si512();
      transpose8x16(r);  // r[h]: pairs q + 2h and q + 2h + 1, 8 words each: 16 words in a row
      for (int h = 0; h < 8 && q + 2 * h < half; ++h) {
        if (q + 2 * h + 1 < half)
          _mm512_storeu_si512(dst + (q + 2 * h) * W, r[h]);
        else
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (q + 2 * h) * W),
                              _mm512_castsi512_si256(r[h]));
      }
    }
    return;
  }
  if constexpr (W % 16 == 0) {  // 16 columns x 16 pairs at a time, transposed in registers
    for (; j + 16 <= w; j += 16) {
      for (index_t q = 0; q < half; q += 16) {
        __m512i r[16];
        for (int u = 0; u < 16; ++u) r[u] = pairs_of_run(src + (j + u) * lds + 2 * q, kc - 2 * q);
        transpose16(r);
        for (int u = 0; u < 16 && q + u < half; ++u)
          _mm512_storeu_si512(dst + (q + u) * W + j, r[u]);
      }
    }
  }
#endif
  for (; j < w; ++j) {
    const float* s = src + j * lds;
    index_t q = 0;
#if MLPFAST_BF16_NATIVE || MLPFAST_BF16_AMX
    for (; 2 * q + 32 <= kc; q += 16) {
      const __m512i x = pairs_of_run(s + 2 * q);
      if (W == 1) {
        _mm512_storeu_si512(dst + q, x);
      } else {
        alignas(64) word t[16];
        _mm512_store_si512(t, x);
        MLPFAST_UNROLL
        for (int u = 0; u < 16; ++u) dst[(q + u) * W + j] = t[u];
      }
    }
#endif
#if MLPFAST_HAVE_VECTOR_EXT
    if constexpr (L >= 2 && !kCvt) {
      typedef std::uint64_t vq MLPFAST_VECTOR_ATTR(MLPFAST_VEC_BYTES);
      for (; 2 * q + L <= kc; q += L / 2) {
        const vq x = bits<vq>(round_bf16(loadw(s + 2 * q)));
        const vq pair = ((x >> 16) & 0xFFFFu) | ((x >> 32) & 0xFFFF0000u);
        MLPFAST_UNROLL
        for (int t = 0; t < L / 2; ++t) dst[(q + t) * W + j] = word(pair[t]);
      }
    }
#endif
    for (; 2 * q < kc; ++q) {
      const word lo = round_bf16(bits<word>(s[2 * q])) >> 16;
      const word hi = 2 * q + 1 < kc ? round_bf16(bits<word>(s[2 * q + 1])) : 0;
      dst[q * W + j] = lo | hi;
    }
  }
  for (int j = w; j < W; ++j)
    for (index_t q = 0; q < kp; ++q) dst[q * W + j] = 0;
}

// AMX: op(A)[0:mc, 0:kc] -> ceil(mc / MR) slivers of MR rows x pairs(kc) words, each sliver
// stored tile by tile: for each step of 16 pairs its MR rows of 16 words (64 bytes: a tile row),
// so that the kernel reads A and B sequentially. Rows past mc and pairs past kc are zero.
inline index_t a_word(index_t i, index_t q, index_t kp) {
  return i / MR * MR * kp + q / 16 * (MR * 16) + i % MR * 16 + q % 16;
}
void pack_a_rows(bool trans_a, index_t mc, index_t kc, const float* a, index_t lda, word* ap) {
  const index_t kp = pairs(kc), half = (kc + 1) / 2;
  const index_t rows = (mc + MR - 1) / MR * MR;
  for (index_t i = 0; i < rows; ++i)
    for (index_t q = i < mc ? half : 0; q < kp; ++q) ap[a_word(i, q, kp)] = 0;
  auto pair_at = [&](const float* r0, const float* r1, index_t t) {  // r1 null: odd kc's end
    return (round_bf16(bits<word>(r0[t])) >> 16) | (r1 ? round_bf16(bits<word>(r1[t])) : 0);
  };
  if (!trans_a) {  // row i of A runs along k: its pairs are adjacent values
    for (index_t i = 0; i < mc; ++i) {
      const float* s = a + i * lda;
      index_t q = 0;
#if MLPFAST_BF16_AMX
      for (; 2 * q + 32 <= kc; q += 16)
        _mm512_storeu_si512(ap + a_word(i, q, kp), pairs_of_run(s + 2 * q));
#endif
      for (; 2 * q < kc; ++q)
        ap[a_word(i, q, kp)] = pair_at(s + 2 * q, 2 * q + 1 < kc ? s + 2 * q + 1 : nullptr, 0);
    }
    return;
  }
  // rows p and p + 1 of a hold op(A)[:, p], [:, p + 1]
  index_t p0 = 0;
#if MLPFAST_BF16_AMX
  for (; p0 + 32 <= kc; p0 += 32) {  // 16 rows x 16 pairs at a time, transposed in registers
    index_t i = 0;
    for (; i + 16 <= mc; i += 16) {
      __m512i r[16];
      for (int u = 0; u < 16; ++u) {
        const float* r0 = a + (p0 + 2 * u) * lda + i;
        r[u] = pairs_of_rows(r0, r0 + lda);
      }
      transpose16(r);
      for (int u = 0; u < 16; ++u) _mm512_storeu_si512(ap + a_word(i + u, p0 / 2, kp), r[u]);
    }
    for (; i < mc; ++i)
      for (index_t p = p0; p < p0 + 32; p += 2)
        ap[a_word(i, p / 2, kp)] = pair_at(a + p * lda, a + (p + 1) * lda, i);
  }
#endif
  for (index_t p = p0; p < kc; p += 2) {
    const float* r0 = a + p * lda;
    const float* r1 = p + 1 < kc ? r0 + lda : nullptr;
    index_t i = 0;
#if MLPFAST_BF16_AMX
    for (; i + 16 <= mc; i += 16) {
      alignas(64) word t[16];
      _mm512_store_si512(t, pairs_of_rows(r0 + i, r1 ? r1 + i : nullptr));
      MLPFAST_UNROLL
      for (int u = 0; u < 16; ++u) ap[a_word(i + u, p / 2, kp)] = t[u];
    }
#endif
    for (; i < mc; ++i) ap[a_word(i, p / 2, kp)] = pair_at(r0, r1, i);
  }
}

#if MLPFAST_BF16_NATIVE
// TN's op(A) = a^T, up to four 8-row slivers (mr <= 32 rows of op(A), i.e. columns of a) in one
// pass down a's rows: each pair of rows gives 32 words, eight to each sliver. (Sliver by sliver,
// pack_pair_rows<8> read 32 bytes of each row per pass: four passes over the same lines.)
void pack_a_trans4(const float* a, index_t lda, int mr, index_t kc, word* ap) {
  const index_t kp = pairs(kc);
  const int slivers = (mr + 7) / 8;
  for (index_t p = 0; p < kc; p += 2, ap += 8) {
    const float* r0 = a + p * lda;
    const float* r1 = p + 1 < kc ? r0 + lda : nullptr;
    for (int v = 0; v < slivers; v += 2) {  // 16 columns of a: slivers v, v + 1
      const int cols = mr - 8 * v < 16 ? mr - 8 * v : 16;
      const __m512i x = pairs_of_rows(r0 + 8 * v, r1 ? r1 + 8 * v : nullptr, cols);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(ap + v * kp * 8), _mm512_castsi512_si256(x));
      if (v + 1 < slivers)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(ap + (v + 1) * kp * 8),
                            _mm512_extracti64x4_epi64(x, 1));
    }
  }
}
#endif

// op(A)[0:mc, 0:kc] (at a) -> ceil(mc / MR) slivers of pairs(kc) x MR words.
void pack_a(bool trans_a, index_t mc, index_t kc, const float* a, index_t lda, word* ap) {
  if (kAmx) return pack_a_rows(trans_a, mc, kc, a, lda, ap);
  const index_t kp = pairs(kc);
#if MLPFAST_BF16_NATIVE
  if (trans_a && MR == 8) {
    for (index_t i0 = 0; i0 < mc; i0 += 32, ap += 4 * kp * MR)
      pack_a_trans4(a + i0, lda, mc - i0 < 32 ? int(mc - i0) : 32, kc, ap);
    return;
  }
#endif
  for (index_t i0 = 0; i0 < mc; i0 += MR, ap += kp * MR) {
    const int mr = mc - i0 < MR ? int(mc - i0) : MR;
    if (trans_a)
      pack_pair_rows<MR>(a + i0, lda, mr, kc, ap);
    else
      pack_pair_cols<MR>(a + i0 * lda, lda, mr, kc, ap);
  }
}

// op(B)[0:kc, 0:nc] (at b) -> ceil(nc / NR) slivers of pairs(kc) x NR words.
void pack_b(bool trans_b, index_t kc, index_t nc, const float* b, index_t ldb, word* bp) {
  const index_t kp = pairs(kc);
  for (index_t j0 = 0; j0 < nc; j0 += NR, bp += kp * NR) {
    const int nr = nc - j0 < NR ? int(nc - j0) : NR;
    if (trans_b)
      pack_pair_cols<NR>(b + j0 * ldb, ldb, nr, kc, bp);
    else
      pack_pair_rows<NR>(b + j0, ldb, nr, kc, bp);
  }
}

// ---------------------------------------------------------------------------------------------
// Micro-kernel: C[0:MR, 0:N*L] (+)= alpha * sum_q pairs, N <= NV vectors of columns.
struct Epilogue {
  float alpha, beta;  // beta applies to the first K block only; later blocks add to C
  bool first, last;   // last: bias and activation
  const float* bias;  // at this tile's first column, or null
  Activation act;
};

// The epilogue, one vector of C: C = alpha * sums (+ beta * C on the first K block, + C on later
// ones), then on the last K block + bias and the activation; the same operations wherever the
// sums are (registers: the dot kernels; a buffer: AMX).
struct EpilogueVectors {
  bool read_c;
  vf alpha, beta;
  explicit EpilogueVectors(const Epilogue& ep)
      : read_c(!ep.first || ep.beta != 0.0f),
        alpha(splat(ep.alpha)),
        beta(splat(ep.first ? ep.beta : 1.0f)) {}
};
inline void finish_vector(vf sum, float* c, const float* bias, const Epilogue& ep,
                          const EpilogueVectors& e) {
  vf x = ep.alpha == 1.0f ? sum : e.alpha * sum;
  if (e.read_c) x += e.beta * loadu(c);
  if (ep.last && bias) x += loadu(bias);
  storeu(c, ep.last ? act_vec<float>(ep.act, x) : x);
}
// The epilogue of an MR x (N vectors) tile whose sums are in `sums` (row stride NR).
template <int N>
void finish_tile(const float* sums, float* c, index_t ldc, const Epilogue& ep, int rows = MR) {
  const EpilogueVectors e(ep);
  for (int i = 0; i < rows; ++i, sums += NR, c += ldc) {
    MLPFAST_UNROLL
    for (int v = 0; v < N; ++v)
      finish_vector(load(sums + v * L), c + v * L, ep.bias ? ep.bias + v * L : nullptr, ep, e);
    if (ep.last && ep.act != Activation::identity && !act_in_registers(ep.act))
      act_row(ep.act, c, N * L);
  }
}

#if MLPFAST_BF16_AMX
// The 32 x (N * 16) tile: C tiles 0..3 (rows 0-15 / 16-31 x columns 0-15 / 16-31), A tiles 4,
// 5, B tiles 6, 7; each 16 rows x 64 bytes (the configuration run_task loads). H = 1: the
// upper 16 rows only (a sliver's last rows, when they are 16 or fewer). A and B are read
// sequentially: a step's two A tiles are 2 KiB in a row (pack_a_rows), its B tiles too.
template <int N, int H>
void amx_store(float* acc) {  // the sums, row stride NR
  _tile_stored(0, acc, NR * 4);
  if (H == 2) _tile_stored(2, acc + 16 * NR, NR * 4);
  if (N == 2) _tile_stored(1, acc + 16, NR * 4);
  if (H == 2 && N == 2) _tile_stored(3, acc + 16 * NR + 16, NR * 4);
}
template <int N, int H>
void amx_sums(index_t kp, const word* MLPFAST_RESTRICT ap, const word* MLPFAST_RESTRICT bp,
              float* MLPFAST_RESTRICT acc) {
  _tile_zero(0);
  if (N == 2) _tile_zero(1);
  if (H == 2) _tile_zero(2);
  if (H == 2 && N == 2) _tile_zero(3);
  for (index_t q = 0; q < kp; q += 16, ap += MR * 16, bp += 16 * NR) {
    _tile_loadd(4, ap, 64);
    if (H == 2) _tile_loadd(5, ap + 256, 64);
    _tile_loadd(6, bp, NR * 4);
    _tile_dpbf16ps(0, 4, 6);
    if (H == 2) _tile_dpbf16ps(2, 5, 6);
    if (N == 2) {
      _tile_loadd(7, bp + 16, NR * 4);
      _tile_dpbf16ps(1, 4, 7);
      if (H == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
  amx_store<N, H>(acc);
}
// The sums of a tile of N vectors and `rows` rows into acc (row stride NR).
template <int N>
void amx_sums_rows(int rows, index_t kp, const word* ap, const word* bp, float* acc) {
  if (rows <= 16) return amx_sums<N, 1>(kp, ap, bp, acc);
  amx_sums<N, 2>(kp, ap, bp, acc);
}
template <int N, int R = MR>
void ukernel(index_t kp, const word* ap, const word* bp, float* c, index_t ldc, const Epilogue& ep,
             int rows = MR) {
  alignas(64) float acc[MR * NR];
  amx_sums_rows<N>(rows, kp, ap, bp, acc);
  finish_tile<N>(acc, c, ldc, ep, rows <= 16 ? 16 : MR);
}
#else
// R <= MR rows: the first R rows of each packed pair of MR words (R = MR / 2: a sliver's last
// rows when they are that few, e.g. rows 96-99 of a batch of 100, instead of 8 with 4 of zeros).
template <int N, int R = MR>
void ukernel(index_t kp, const word* MLPFAST_RESTRICT ap, const word* MLPFAST_RESTRICT bp,
             float* MLPFAST_RESTRICT c, index_t ldc, const Epilogue& ep, int = MR) {
  for (int i = 0; i < R; ++i) MLPFAST_PREFETCH_W(c + i * ldc);  // C is read after the loop
  vf acc[R][N] = {};
  for (index_t q = 0; q < kp; ++q, ap += MR, bp += NR) {
#if MLPFAST_BF16_NATIVE
    __m512bh bv[N];
    MLPFAST_UNROLL
    for (int v = 0; v < N; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(bp + v * L);
    MLPFAST_UNROLL
    for (int i = 0; i < R; ++i) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(int(ap[i]));
      MLPFAST_UNROLL
      for (int v = 0; v < N; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
    }
#else
    vf b_even[N], b_odd[N];
    MLPFAST_UNROLL
    for (int v = 0; v < N; ++v) {
      const vw x = loadw(bp + v * L);
      b_even[v] = bits<vf>(vw(x << 16));
      b_odd[v] = bits<vf>(vw(x & word(0xFFFF0000)));
    }
    MLPFAST_UNROLL
    for (int i = 0; i < R; ++i) {
      const vf a_even = splat(bits<float>(word(ap[i] << 16)));
      const vf a_odd = splat(bits<float>(word(ap[i] & word(0xFFFF0000))));
      MLPFAST_UNROLL
      for (int v = 0; v < N; ++v) {  // VDPBF16PS's order: the odd product first
        acc[i][v] += a_odd * b_odd[v];
        acc[i][v] += a_even * b_even[v];
      }
    }
#endif
  }
  // the epilogue from the registers (finish_tile's operations): with a short K block (k = 10
  // in the lecture's dA = dZ W^T) a round trip through a buffer cost as much as the products
  const EpilogueVectors e(ep);
  MLPFAST_UNROLL
  for (int i = 0; i < R; ++i) {
    float* ci = c + i * ldc;
    MLPFAST_UNROLL
    for (int v = 0; v < N; ++v)
      finish_vector(acc[i][v], ci + v * L, ep.bias ? ep.bias + v * L : nullptr, ep, e);
    if (ep.last && ep.act != Activation::identity && !act_in_registers(ep.act))
      act_row(ep.act, ci, N * L);
  }
}
#endif

// The kernel for n vectors (1..NV).
template <int R = MR, int N = NV>
void ukernel_n(int n, index_t kp, const word* ap, const word* bp, float* c, index_t ldc,
               const Epilogue& ep, int rows = MR) {
  if (n == N) return ukernel<N, R>(kp, ap, bp, c, ldc, ep, rows);
  if constexpr (N > 1) ukernel_n<R, N - 1>(n, kp, ap, bp, c, ldc, ep, rows);
}

// One packed block of A (mc rows) times one packed panel of B (nc columns) into C. A tile that
// is not MR full rows and a whole number of vectors goes through a buffer (same kernel, same
// arithmetic per element).
#if MLPFAST_BF16_AMX
// AMX: the epilogue of each tile runs after the next tile's products are issued, so that its
// loads of the stored sums do not wait for the tile stores (there is no forwarding from them)
// and overlap the tile unit's work. Tiles of whole vectors only (the rest: macro_kernel's
// buffered path); the same arithmetic per element.
struct PendingTile {
  float* acc = nullptr;  // null: none
  float* c;
  Epilogue ep;
  int nv, rows;
};
void finish_pending(PendingTile& p, index_t ldc) {
  if (!p.acc) return;
  if (p.nv == 2)
    finish_tile<2>(p.acc, p.c, ldc, p.ep, p.rows);
  else
    finish_tile<1>(p.acc, p.c, ldc, p.ep, p.rows);
  p.acc = nullptr;
}
#endif

void macro_kernel(index_t mc, index_t nc, index_t kp, const word* ap, const word* bp, float* c,
                  index_t ldc, Epilogue ep) {
#if MLPFAST_BF16_AMX
  alignas(64) float acc[2][MR * NR];
  PendingTile pending;
  int parity = 0;
#endif
  alignas(64) float tile[MR * NR];
  alignas(64) float tile_bias[NR];
  const float* bias0 = ep.bias;
  for (index_t j0 = 0; j0 < nc; j0 += NR, bp += kp * NR) {
    const int nr = nc - j0 < NR ? int(nc - j0) : NR;
    const int nv = (nr + L - 1) / L;
    ep.bias = bias0 ? bias0 + j0 : nullptr;
    Epilogue ept = ep;
    if (bias0 && nr < nv * L) {
      for (int j = 0; j < nv * L; ++j) tile_bias[j] = j < nr ? bias0[j0 + j] : 0.0f;
      ept.bias = tile_bias;
    }
    for (index_t i0 = 0; i0 < mc; i0 += MR) {
      const int mr = mc - i0 < MR ? int(mc - i0) : MR;
      float* cij = c + i0 * ldc + j0;
      const word* as = ap + i0 * kp;
#if MLPFAST_BF16_AMX
      if (nr == nv * L) {
        float* sums = acc[parity];
        if (nv == 2)
          amx_sums_rows<2>(mr, kp, as, bp, sums);
        else
          amx_sums_rows<1>(mr, kp, as, bp, sums);
        finish_pending(pending, ldc);
        pending = {sums, cij, ep, nv, mr};
        parity ^= 1;
        continue;
      }
      finish_pending(pending, ldc);
#endif
      if (mr == MR && nr == nv * L) {
        ukernel_n(nv, kp, as, bp, cij, ldc, ep);
        continue;
      }
      constexpr bool kHalf = !kAmx && MR % 2 == 0;  // the R = MR / 2 kernel for the last rows
      if (kHalf && mr == MR / 2 && nr == nv * L) {
        ukernel_n<MR / 2>(nv, kp, as, bp, cij, ldc, ep);
        continue;
      }
      // (copies and zeros, not a loop of conditional loads: GCC made that one masked loads
      // whose mask took a long chain to build, the hottest code of a k = 10 product on Zen 4)
      const bool read_c = !ep.first || ep.beta != 0.0f;
      for (int i = 0; i < MR; ++i) {
        const int copied = read_c && i < mr ? nr : 0;
        if (copied) std::memcpy(tile + i * NR, cij + i * ldc, copied * sizeof(float));
        std::memset(tile + i * NR + copied, 0, (nv * L - copied) * sizeof(float));
      }
      if (kHalf && mr <= MR / 2)
        ukernel_n<MR / 2>(nv, kp, as, bp, tile, NR, ept, mr);
      else
        ukernel_n(nv, kp, as, bp, tile, NR, ept, mr);
      for (int i = 0; i < mr; ++i) std::memcpy(cij + i * ldc, tile + i * NR, nr * sizeof(float));
    }
  }
#if MLPFAST_BF16_AMX
  finish_pending(pending, ldc);
#endif
}

// ---------------------------------------------------------------------------------------------
// Scratch (per thread, kept between calls, 64-byte aligned, freed when the thread exits).
struct Scratch {
  word* p = nullptr;
  std::size_t words = 0;
  ~Scratch() { std::free(p); }
};
thread_local Scratch tl_a;  // the calling thread's: packed A, shared by its team
thread_local Scratch tl_b;  // every thread's own: its packed B panel

// s.p with room for `words` words, or null when out of memory.
word* room(Scratch& s, std::size_t words) {
  if (words <= s.words) return s.p;
  std::free(s.p);
  s.words = (words + 1023) / 1024 * 1024;  // whole 4 KiB pages
  s.p = static_cast<word*>(std::aligned_alloc(64, s.words * sizeof(word)));
  if (!s.p) s.words = 0;
  return s.p;
}

index_t blocks_of(index_t extent, index_t size) { return (extent + size - 1) / size; }
index_t least(index_t x, index_t y) { return x < y ? x : y; }

// One product (a row super-block of it), shared by a team: the operands, the packed A (the K
// block at pc starts at ap + mpad * pc / 2: kcb is even) and the task grid.
struct Job {
  bool trans_a, trans_b;
  const float *a, *b, *bias;
  float* c;
  index_t lda, ldb, ldc;
  float alpha, beta;
  Activation act;
  index_t m, n, k, kcb, mpad;
  word* ap;
  index_t rows, cols, tasks_m, tasks_n;

  // A's packing unit u: K block u / row_blocks, kPackRows rows u % row_blocks.
  void pack_a_unit(index_t u) const {
    const index_t row_blocks = blocks_of(m, kPackRows), pc = u / row_blocks * kcb,
                  ic = u % row_blocks * kPackRows;
    const index_t kc = least(k - pc, kcb);
    const float* src = trans_a ? a + pc * lda + ic : a + ic * lda + pc;
    pack_a(trans_a, least(m - ic, kPackRows), kc, src, lda, ap + mpad * pc / 2 + ic * pairs(kc));
  }

  // Task t: rows [i0, i0 + rows) x columns [j0, j0 + cols); false when out of memory.
  bool run_task(index_t t) const {
    const index_t i0 = t / tasks_n * rows, j0 = t % tasks_n * cols;
    const index_t i1 = least(i0 + rows, m), nc = least(n - j0, cols);
    word* bp = room(tl_b, std::size_t(blocks_of(nc, NR) * NR) * std::size_t(kcb / 2));
    if (!bp) return false;
#if MLPFAST_BF16_AMX
    // every tile 16 rows x 64 bytes (palette 1), loaded for this thread, released at the end
    struct alignas(64) TileConfig {
      std::uint8_t palette, start_row, reserved[14];
      std::uint16_t colsb[16];
      std::uint8_t rows[16];
    } config{};
    config.palette = 1;
    for (int tile = 0; tile < 8; ++tile) config.colsb[tile] = 64, config.rows[tile] = 16;
    _tile_loadconfig(&config);
#endif
    for (index_t pc = 0; pc < k; pc += kcb) {  // K blocks: the only loop that adds into C
      const index_t kc = least(k - pc, kcb), kp = pairs(kc);
      pack_b(trans_b, kc, nc, trans_b ? b + j0 * ldb + pc : b + pc * ldb + j0, ldb, bp);
      const Epilogue ep{alpha, beta, pc == 0, pc + kc >= k, bias ? bias + j0 : nullptr, act};
      for (index_t ic = i0; ic < i1; ic += MC)
        macro_kernel(least(i1 - ic, MC), nc, kp, ap + mpad * pc / 2 + ic * kp, bp,
                     c + ic * ldc + j0, ldc, ep);
    }
#if MLPFAST_BF16_AMX
    _tile_release();
#endif
    return true;
  }

  // About two tasks per thread: columns first (vector multiples, NC at most; each task packs
  // its own B panel), then rows (MR multiples) for the rest.
  void plan(int nt) {
    const index_t want = nt > 1 ? 2 * index_t(nt) : 1, vectors = blocks_of(n, L);
    cols = least(blocks_of(vectors, least(want, vectors)) * L, NC);
    tasks_n = blocks_of(n, cols);
    const index_t slivers = blocks_of(m, MR);
    rows = blocks_of(slivers, least(blocks_of(want, tasks_n), slivers)) * MR;
    tasks_m = blocks_of(m, rows);
  }

  // Packs A (units shared out) and runs the tasks on `team` threads; false when out of memory.
  bool run(int team) {
    const index_t units = blocks_of(k, kcb) * blocks_of(m, kPackRows), tasks = tasks_m * tasks_n;
    bool ok = true;
#ifdef _OPENMP
#pragma omp parallel num_threads(team) if (team > 1) reduction(&& : ok)
#endif
    {
      // dynamic: a thread kept off its core by another process hands its share on
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
      for (index_t u = 0; u < units; ++u) pack_a_unit(u);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
      for (index_t t = 0; t < tasks; ++t) ok = run_task(t) && ok;
    }
    return ok;
  }
};

// Threads an m x n x k product pays for (kMinFlopsPerThread each at least, as gemm_kernels.cpp),
// at most `team`: the thread policy's team (threads.h: 1 in a forked child or inside someone
// else's parallel region, else the whole team, which runs the region whatever this says).
int team_size(index_t m, index_t n, index_t k, int team) {
  const double per_thread = 2.0 * double(m) * double(n) * double(k) / double(kMinFlopsPerThread);
  return per_thread >= double(team) ? team : (per_thread < 1.0 ? 1 : int(per_thread));
}

// Packed A of one row super-block stays under this many words (rows beyond: more super-blocks,
// which changes no arithmetic).
constexpr index_t kMaxPackedAWords = index_t(4) << 20;

void gemm_bf16(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, float alpha,
               const float* a, index_t lda, const float* b, index_t ldb, float beta, float* c,
               index_t ldc, const float* bias, Activation act) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f)  // no products: C = act(beta * C + bias), the float GEMM's way
    return kernels<float>().gemm(trans_a, trans_b, m, n, 0, alpha, a, lda, b, ldb, beta, c, ldc,
                                 bias, act);
  // equal K blocks of an even size (a multiple of 32 for AMX: whole tile rows of pairs)
  const index_t kcb = blocks_of(blocks_of(k, blocks_of(k, KC)), 2 * kPairAlign) * 2 * kPairAlign;
  const index_t kp_total = blocks_of(k, kcb) * (kcb / 2);  // >= the words of a row of A
  Job job{trans_a, trans_b, a, b, bias, c, lda,     ldb, ldc, alpha, beta,
          act,     0,       n, k, kcb,  0, nullptr, 0,   0,   0,     0};
  // row super-blocks (equal, MR multiples) whose packed A fits kMaxPackedAWords
  const index_t most = kMaxPackedAWords / kp_total > MC ? kMaxPackedAWords / kp_total : MC;
  const index_t rows = blocks_of(blocks_of(m, blocks_of(m, most)), MR) * MR;
  const int team = region_threads();
  const int nt = team_size(m, n, k, team);
  for (index_t r0 = 0; r0 < m; r0 += rows) {
    job.m = least(m - r0, rows);
    job.mpad = blocks_of(job.m, MR) * MR;
    job.a = trans_a ? a + r0 : a + r0 * lda;
    job.c = c + r0 * ldc;
    job.ap = room(tl_a, std::size_t(job.mpad) * std::size_t(kp_total));
    job.plan(nt);
    // the tasks are planned for nt threads; the whole team (or one thread) takes them
    if (!job.ap || !job.run(least(nt, job.tasks_m * job.tasks_n) > 1 ? team : 1))
      throw std::bad_alloc();
  }
}

}  // namespace

#if MLPFAST_BF16_AMX
void register_bf16_native(KernelSet<float>& f32) { f32.gemm_bf16_amx = &gemm_bf16; }
#elif MLPFAST_BF16_NATIVE
void register_bf16_native(KernelSet<float>& f32) { f32.gemm_bf16_dot = &gemm_bf16; }
#else
void register_bf16(KernelSet<float>& f32, KernelSet<double>&) { f32.gemm_bf16 = &gemm_bf16; }
#endif

}  // namespace MLPFAST_ISA_NS
}  // namespace mlpfast
