// vecmath.h: exp, expm1 and log1p on vectors, and the activations built from them (logistic,
// tanh, softplus and softplus's derivative), for the GEMM epilogue and the backward pass.
// Per-ISA (included by gemm_common.h's users only, internal linkage): each ISA level compiles
// the same code on its own vectors (16-byte SSE2 / NEON at the generic level, ymm at avx2, zmm at
// avx512), so nothing here calls libm per element.
//
// Method (docs/kernels.md, "Vector math"). Everything is evaluated in double, on V<double>
// vectors, with no branch (both sides of a choice are computed, a select keeps one):
//   exp / expm1   x = n ln2 + r, n = round(x / ln2) (the 1.5 * 2^52 shift trick: no float-to-int
//                 conversion, which SSE2 and AVX2 lack for 64-bit lanes), |r| <= ln2 / 2, ln2 in
//                 two parts (Cody & Waite; fdlibm's ln2_hi has 21 trailing zero bits, so n ln2_hi
//                 is exact). expm1(r) = r + r^2 q(r), q the Taylor series of (e^r - 1 - r) / r^2
//                 to degree D - 2. Then exp(x) = (1 + expm1(r)) 2^n1 2^n2 (n = n1 + n2: the
//                 result overflows, or rounds into the subnormals, once, in the last product)
//                 and expm1(x) = 2^n expm1(r) + (2^n - 1).
//   log1p         1 + x = 2^k m with m in [sqrt(1/2), sqrt(2)) (exponent bits), the rounding
//                 error of 1 + x carried as c / (1 + x) (fdlibm / musl's log1p), and
//                 log m = f - f^2/2 + s (f^2/2 + R(s^2)), f = m - 1, s = f / (2 + f), R the
//                 Taylor series of 2 atanh(s) - 2s over s: sum_j 2 s^2j / (2j + 1).
//   logistic      (z >= 0 ? 1 : e) / (1 + e),  e = exp(-|z|)     (never overflows)
//   tanh          copysign(-t / (2 + t), z), t = expm1(-2|z|)   (no cancellation near 0)
//   softplus      max(z, 0) + log1p(exp(-|z|))
//   d softplus    sigmoid(z) through y = softplus(z): 1 - e^-y = -expm1(-y)
// Taylor coefficients (1/k!, 2/(2j+1)) are computed at compile time: no hand-typed constants
// besides ln2 and the exponent masks. float32 arrays are converted to double, evaluated with
// shorter series (D = 8, J = 5: truncation below 1e-9 relative) and rounded once to float, so
// float32 results are within 1 ulp of the exact value (almost always correctly rounded); double
// uses D = 13 and J = 10 (truncation under 0.2 ulp) and is within 2-3 ulp (measured maxima in
// docs/kernels.md; tests/test_vecmath.py checks 2 ulp (float32) and 4 ulp (float64) against
// NumPy on dense grids, at every ISA level).
//
// Special values: NaN in, NaN out; +-inf and arguments past overflow / underflow give the
// limits (exp: inf / +0, expm1: inf / -1, logistic: 1 / 0, tanh: +-1, softplus: inf / 0);
// subnormal inputs and results are exact or correctly rounded as the formulas above allow.
//
// Reference: W. J. Cody and W. Waite, Software Manual for the Elementary Functions (1980);
// fdlibm (Sun, 1993) e_exp.c, s_expm1.c, s_log1p.c; J.-M. Muller, Elementary Functions (2016).
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "gemm_common.h"

namespace mlpfast {
namespace MLPFAST_ISA_NS {
namespace {
namespace vm {

using VD = V<double>;
constexpr int kLanes = lanes<double>();

#if MLPFAST_HAVE_VECTOR_EXT
typedef std::int64_t VI MLPFAST_VECTOR_ATTR(MLPFAST_VEC_BYTES);
typedef std::uint64_t VU MLPFAST_VECTOR_ATTR(MLPFAST_VEC_BYTES);  // for shifts
// kLanes floats: a float array is read and written kLanes elements at a time, as doubles.
typedef float VF MLPFAST_VECTOR_ATTR(MLPFAST_VEC_BYTES / 2);
typedef float VFU MLPFAST_VECTOR_ATTR(MLPFAST_VEC_BYTES / 2) MLPFAST_ALIGNED_ATTR(4);
inline VI as_int(VD x) { return (VI)x; }  // bit casts (vector casts of equal size)
inline VD as_double(VI i) { return (VD)i; }
inline VI shift_left(VI i, int b) { return (VI)((VU)i << b); }  // logical shifts
inline VI shift_right(VI i, int b) { return (VI)((VU)i >> b); }
inline VD load(const double* p) { return loadu(p); }
inline VD load(const float* p) {
  return __builtin_convertvector(VF(*reinterpret_cast<const VFU*>(p)), VD);
}
inline void store(double* p, VD x) { storeu(p, x); }
inline void store(float* p, VD x) { *reinterpret_cast<VFU*>(p) = __builtin_convertvector(x, VF); }
#else
typedef std::int64_t VI;
inline VI shift_left(VI i, int b) { return VI(std::uint64_t(i) << b); }
inline VI shift_right(VI i, int b) { return VI(std::uint64_t(i) >> b); }
inline VI as_int(double x) {
  VI i;
  std::memcpy(&i, &x, sizeof i);
  return i;
}
inline double as_double(VI i) {
  double x;
  std::memcpy(&x, &i, sizeof x);
  return x;
}
inline double load(const double* p) { return *p; }
inline double load(const float* p) { return double(*p); }
inline void store(double* p, double x) { *p = x; }
inline void store(float* p, double x) { *p = float(x); }
#endif

inline VD splat(double x) { return x - VD{}; }  // (x - 0 is x for every x, -0 included)

// cond ? a : b per lane (cond: a comparison of VDs).
template <typename M>
inline VD select(M cond, VD a, VD b) {
  return cond ? a : b;
}

// Series lengths: Accurate (double results) or not (float results, evaluated in double).
template <bool Accurate>
struct Degree {
  static constexpr int D = Accurate ? 13 : 8;  // expm1: Taylor to r^D
  static constexpr int J = Accurate ? 10 : 5;  // log1p: R to s^2J
};

constexpr double inv_factorial(int k) { return k <= 1 ? 1.0 : inv_factorial(k - 1) / k; }

// sum_{k=K..D} r^(k-K) / k!, by Horner.
template <int K, int D>
inline VD exp_tail(VD r) {
  if constexpr (K == D)
    return splat(inv_factorial(D));
  else
    return exp_tail<K + 1, D>(r) * r + inv_factorial(K);
}

// sum_{j=J0..J} 2 z^(j-J0) / (2j + 1), by Horner.
template <int J0, int J>
inline VD atanh_tail(VD z) {
  if constexpr (J0 == J)
    return splat(2.0 / (2 * J + 1));
  else
    return atanh_tail<J0 + 1, J>(z) * z + 2.0 / (2 * J0 + 1);
}

constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 0x3fe62e42fee00000 (fdlibm)
constexpr double kLn2Lo = 1.90821492927058770002e-10;  // 0x3dea39ef35793c76
constexpr double kLog2e = 1.44269504088896338700e+00;
constexpr double kShift = 6755399441055744.0;  // 1.5 * 2^52: x + kShift rounds x to an integer
constexpr std::int64_t kSignBit = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kExpOne = std::int64_t(1023) << 52;  // the bits of 1.0
constexpr std::int64_t kMantissa = (std::int64_t(1) << 52) - 1;
constexpr std::int64_t kSqrtHalf = 0x3fe6a09e00000000LL;  // ~ sqrt(1/2), as musl's log1p
constexpr double kInf = std::numeric_limits<double>::infinity();

// 2^n for integer n in [-1022, 1023] (an int64 vector).
inline VD pow2(VI n) { return as_double(shift_left(n + 1023, 52)); }

// x = n ln2 + r (|r| <= ln2/2 + a little), em = expm1(r); n as a double and as integers.
template <bool Accurate>
struct Reduced {
  VD em, nd;
  VI n;
};
template <bool Accurate>
inline Reduced<Accurate> reduce(VD x) {
  const VD shifted = x * kLog2e + kShift;
  Reduced<Accurate> q;
  q.nd = shifted - kShift;
  q.n = as_int(shifted) - as_int(splat(kShift));
  const VD r = (x - q.nd * kLn2Hi) - q.nd * kLn2Lo;
  q.em = r + (r * r) * exp_tail<2, Degree<Accurate>::D>(r);
  return q;
}

// e^x.
template <bool Accurate>
inline VD exp(VD x) {
  x = select(x < -746.0, splat(-746.0), x);  // (NaN stays NaN: comparisons are false)
  x = select(x > 710.0, splat(710.0), x);    // past both ends: 0 and inf, below
  const Reduced<Accurate> q = reduce<Accurate>(x);
  // n in [-1076, 1025]: n1 = floor((n + 2048) / 2) - 1024 and n2 = n - n1 are in [-538, 513]
  const VI n1 = shift_right(q.n + 2048, 1) - 1024;
  return ((1.0 + q.em) * pow2(n1)) * pow2(q.n - n1);
}

// e^x - 1.
template <bool Accurate>
inline VD expm1(VD x) {
  x = select(x < -60.0, splat(-60.0), x);  // e^-60 < 2^-86: -1 exactly after rounding
  x = select(x > 710.0, splat(710.0), x);
  const Reduced<Accurate> q = reduce<Accurate>(x);
  const VI n1 = shift_right(q.n + 2048, 1) - 1024;
  const VD s1 = pow2(n1), s2 = pow2(q.n - n1);
  const VD big = ((1.0 + q.em) * s1) * s2;  // x > 40: e^x - 1 rounds to e^x (e^40 > 2^57)
  const VD s = s1 * s2;                     // exact for the small n used below
  return select(x > 40.0, big, s * q.em + (s - 1.0));
}

// log(1 + x).
template <bool Accurate>
inline VD log1p(VD x) {
  const VD u = 1.0 + x;
  // 1 + x = 2^k m, m in [0x3fe6a09e00000000, 0x3ff6a09e00000000) ~ [0.7071, 1.4142)
  const VI ui = as_int(u) + (kExpOne - kSqrtHalf);
  const VI k = shift_right(ui, 52) - 1023;
  const VD m = as_double((ui & kMantissa) + kSqrtHalf);
  const VD kd = as_double(k + as_int(splat(kShift))) - kShift;  // k as a double, exactly
  // the rounding error of u = 1 + x, relative to u (0 once it no longer matters)
  VD c = select(kd >= 2.0, 1.0 - (u - x), x - (u - 1.0)) / u;
  c = select(kd < 54.0, c, VD{});
  const VD f = m - 1.0;
  const VD hfsq = 0.5 * f * f;
  const VD s = f / (2.0 + f);
  const VD z = s * s;
  const VD R = z * atanh_tail<1, Degree<Accurate>::J>(z);
  VD y = s * (hfsq + R) + (kd * kLn2Lo + c) - hfsq + f + kd * kLn2Hi;
  y = select(u == 0.0, splat(-kInf), y);                                        // x = -1
  y = select(x == kInf, splat(kInf), y);                                        // x = inf
  return select(x < -1.0, splat(std::numeric_limits<double>::quiet_NaN()), y);  // (NaN in: NaN)
}

inline VD abs(VD x) { return as_double(as_int(x) & ~kSignBit); }

template <bool Accurate>
inline VD logistic(VD z) {
  const VD e = exp<Accurate>(-abs(z));
  return select(z >= 0.0, splat(1.0), e) / (1.0 + e);
}

template <bool Accurate>
inline VD tanh(VD z) {
  const VD t = expm1<Accurate>(-2.0 * abs(z));  // in [-1, 0]
  const VD y = -t / (2.0 + t);                  // tanh |z|
  return as_double((as_int(y) & ~kSignBit) | (as_int(z) & kSignBit));
}

template <bool Accurate>
inline VD softplus(VD z) {
  return select(z > 0.0, z, VD{}) + log1p<Accurate>(exp<Accurate>(-abs(z)));
}

// sigmoid(z) from y = softplus(z): 1 - e^-y.
template <bool Accurate>
inline VD softplus_derivative(VD y) {
  return -expm1<Accurate>(-y);
}

// y[j] = F(x[j]) for j < n (x == y allowed), F a function of VD evaluated at double precision
// for T = double, at the shorter series for T = float. The last n % kLanes elements go through
// a padded vector, so each element is computed by the same operations wherever it sits.
template <typename T, typename F>
inline void map(index_t n, const T* x, T* y, const F& f) {
  index_t j = 0;
  for (; j + kLanes <= n; j += kLanes) store(y + j, f(load(x + j)));
  if (j < n) {
    T buf[kLanes] = {};
    for (index_t i = j; i < n; ++i) buf[i - j] = x[i];
    store(buf, f(load(buf)));
    for (index_t i = j; i < n; ++i) y[i] = buf[i - j];
  }
}

// The functions activations.h names (VecMath), applied to a row.
template <typename T>
void map(VecMath fn, index_t n, const T* x, T* y) {
  constexpr bool acc = sizeof(T) == sizeof(double);
  switch (fn) {
    case VecMath::logistic:
      return map(n, x, y, [](VD v) { return logistic<acc>(v); });
    case VecMath::tanh:
      return map(n, x, y, [](VD v) { return tanh<acc>(v); });
    case VecMath::softplus:
      return map(n, x, y, [](VD v) { return softplus<acc>(v); });
    case VecMath::softplus_derivative:
      return map(n, x, y, [](VD v) { return softplus_derivative<acc>(v); });
    case VecMath::none:
      break;
  }
}

}  // namespace vm

// c[j] = g(c[j]) for the activation A (identity: nothing; not prelu): vecmath for those that
// name a function, their scalar forward otherwise.
template <typename A, typename T>
void act_row_of(T* c, index_t n) {
  if constexpr (A::kForwardMath != VecMath::none)
    vm::map(A::kForwardMath, n, c, c);
  else if constexpr (!std::is_same_v<A, activations::identity> && !A::kPerUnitSlope)
    for (index_t j = 0; j < n; ++j) c[j] = A::template forward<T>(c[j]);
}

// The GEMM epilogue of activations without a register form (gemm_common.h): c[j] = g(c[j]).
template <typename T>
void act_row(Activation act, T* c, index_t n) {
  visit(act, [&](auto tag) { act_row_of<decltype(tag)>(c, n); });
}

}  // namespace
}  // namespace MLPFAST_ISA_NS
}  // namespace mlpfast
