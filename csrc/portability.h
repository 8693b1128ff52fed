// portability.h: every compiler- or CPU-specific construct of the core, each with its fallback,
// so that GCC, Clang (Linux), Apple Clang (macOS, x86_64 and arm64) and MSVC (Windows) build
// the same sources. The core includes this header instead of writing __builtin_* or
// __attribute__ itself.
//
//   MLPFAST_RESTRICT            no-alias pointer qualifier (__restrict: GCC, Clang, MSVC)
//   MLPFAST_PREFETCH_W(p)       prefetch the cache line at p for writing; a no-op elsewhere
//   MLPFAST_PREFETCH_R(p)       prefetch the cache line at p for reading; a no-op elsewhere
//   MLPFAST_FORCE_INLINE        inline even where the compiler's heuristics say no
//   MLPFAST_UNREACHABLE()       tells the compiler a point cannot be reached (after a switch
//                               that covers every enumerator)
//   MLPFAST_UNROLL              unroll the next (constant-trip) loop fully; a no-op elsewhere
//   MLPFAST_HAVE_VECTOR_EXT     1 where GCC/Clang vector extensions (vector_size) exist, so the
//                               kernels use V<T> vectors; 0 elsewhere (MSVC: plain scalar code)
//   MLPFAST_VECTOR_ATTR(bytes)  __attribute__((vector_size(bytes))), where they exist
//   MLPFAST_ALIGNED_ATTR(n)     __attribute__((aligned(n))) where vector extensions exist (an
//                               under-aligned vector type for unaligned loads); empty elsewhere,
//                               where the types it applies to are scalars aligned to n already
//   MLPFAST_X86_64              1 on x86-64 (GCC/Clang __x86_64__, MSVC _M_X64), else 0
//   mlpfast::cpu_has_avx2_fma(), mlpfast::cpu_has_avx512_dq_bw_vl()
//                               run-time CPU checks, x86-64 only: each checks the CPUID bits
//                               AND that the OS saves the registers (XCR0), so a CPU whose OS
//                               does not enable AVX-512 says no. Elsewhere they do not exist:
//                               dispatch code must sit under #if MLPFAST_X86_64, and other CPUs
//                               get the generic level.
//
// Arithmetic is unaffected by every fallback here: prefetch, inlining and unrolling change no
// result, and the scalar fallback of the vector types computes each element by the same
// operations (the bitwise guarantees hold per build, as before).
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define MLPFAST_GNU_LIKE 1
#else
#define MLPFAST_GNU_LIKE 0
#endif

// ---- qualifiers and hints -------------------------------------------------------------------
#if MLPFAST_GNU_LIKE || defined(_MSC_VER)
#define MLPFAST_RESTRICT __restrict
#else
#define MLPFAST_RESTRICT
#endif

#if MLPFAST_GNU_LIKE
#define MLPFAST_PREFETCH_W(p) __builtin_prefetch((p), 1)
#define MLPFAST_PREFETCH_R(p) __builtin_prefetch((p), 0)
#define MLPFAST_FORCE_INLINE inline __attribute__((always_inline))
#define MLPFAST_UNREACHABLE() __builtin_unreachable()
#elif defined(_MSC_VER)
#if defined(_M_X64) || defined(_M_IX86)
#include <xmmintrin.h>
#define MLPFAST_PREFETCH_W(p) _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0)
#define MLPFAST_PREFETCH_R(p) _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0)
#else
#define MLPFAST_PREFETCH_W(p) ((void)(p))
#define MLPFAST_PREFETCH_R(p) ((void)(p))
#endif
#define MLPFAST_FORCE_INLINE __forceinline
#define MLPFAST_UNREACHABLE() __assume(0)
#else
#define MLPFAST_PREFETCH_W(p) ((void)(p))
#define MLPFAST_PREFETCH_R(p) ((void)(p))
#define MLPFAST_FORCE_INLINE inline
#define MLPFAST_UNREACHABLE() ((void)0)
#endif

// Clang accepts GCC's spelling too, but says "unroll" for "as far as the trip count allows".
#if defined(__clang__)
#define MLPFAST_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define MLPFAST_UNROLL _Pragma("GCC unroll 64")
#else
#define MLPFAST_UNROLL
#endif

// ---- vector extensions ----------------------------------------------------------------------
#if MLPFAST_GNU_LIKE
#define MLPFAST_HAVE_VECTOR_EXT 1
#define MLPFAST_VECTOR_ATTR(bytes) __attribute__((vector_size(bytes)))
#define MLPFAST_ALIGNED_ATTR(n) __attribute__((aligned(n)))
#else
#define MLPFAST_HAVE_VECTOR_EXT 0
#define MLPFAST_ALIGNED_ATTR(n)
#endif

// ---- CPU features (x86-64 only) ---------------------------------------------------------------
#if defined(__x86_64__) || defined(_M_X64)
#define MLPFAST_X86_64 1
#else
#define MLPFAST_X86_64 0
#endif

#if MLPFAST_X86_64
// (internal linkage, as everything in headers the per-ISA objects include: activations.h)
#if MLPFAST_GNU_LIKE
namespace mlpfast {
namespace {
// libgcc's / compiler-rt's __builtin_cpu_supports checks XCR0 as well as CPUID.
inline bool cpu_has_avx2_fma() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
inline bool cpu_has_avx512_dq_bw_vl() {
  return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
}  // namespace
}  // namespace mlpfast
#elif defined(_MSC_VER)
#include <intrin.h>
namespace mlpfast {
namespace {
namespace cpuid_detail {
inline bool bit(int leaf, int reg, int b) {
  int r[4];
  __cpuidex(r, leaf, 0);
  return (r[reg] >> b) & 1;
}
// OSXSAVE (CPUID.1:ECX.27) and the XCR0 bits for the state in `mask`.
inline bool os_saves(unsigned long long mask) {
  return bit(1, 2, 27) && (_xgetbv(0) & mask) == mask;
}
}  // namespace cpuid_detail
inline bool cpu_has_avx2_fma() {
  using namespace cpuid_detail;
  return os_saves(0x6) && bit(7, 1, 5) /*avx2*/ && bit(1, 2, 12) /*fma*/;
}
inline bool cpu_has_avx512_dq_bw_vl() {
  using namespace cpuid_detail;
  return cpu_has_avx2_fma() && os_saves(0xe6) && bit(7, 1, 16) /*f*/ && bit(7, 1, 17) /*dq*/ &&
         bit(7, 1, 30) /*bw*/ && bit(7, 1, 31) /*vl*/;
}
}  // namespace
}  // namespace mlpfast
#else
#error "portability.h: no CPU feature check for this compiler on x86-64"
#endif
#endif  // MLPFAST_X86_64
