// gemm_common.h: what the packed GEMM (gemm_kernels.cpp) and its small-matrix path
// (gemm_small.h) share: the vector types of this ISA level and the activation epilogue.
// Included only by per-ISA sources, inside nothing: it opens mlpfast::MLPFAST_ISA_NS's anonymous
// namespace itself (internal linkage, see gemm_kernels.cpp).
#pragma once
#include <type_traits>

#include "activations.h"
#include "kernels.h"

namespace mlpfast {
namespace MLPFAST_ISA_NS {
namespace {

// Vectors: V<T> holds `lanes` values of T; VU<T> is the same with element alignment (for
// unaligned loads and stores of C and unpacked operands).

#if MLPFAST_HAVE_VECTOR_EXT
#if defined(__AVX512F__)
#define MLPFAST_VEC_BYTES 64
#elif defined(__AVX__)
#define MLPFAST_VEC_BYTES 32
#else
#define MLPFAST_VEC_BYTES 16
#endif
typedef float vf MLPFAST_VECTOR_ATTR(MLPFAST_VEC_BYTES);
typedef float vfu MLPFAST_VECTOR_ATTR(MLPFAST_VEC_BYTES) MLPFAST_ALIGNED_ATTR(4);
typedef double vd MLPFAST_VECTOR_ATTR(MLPFAST_VEC_BYTES);
typedef double vdu MLPFAST_VECTOR_ATTR(MLPFAST_VEC_BYTES) MLPFAST_ALIGNED_ATTR(8);
template <typename T>
struct Vec;
template <>
struct Vec<float> {
  typedef vf V;
  typedef vfu VU;
};
template <>
struct Vec<double> {
  typedef vd V;
  typedef vdu VU;
};
#else
template <typename T>
struct Vec {
  typedef T V;
  typedef T VU;
};
#endif

template <typename T>
using V = typename Vec<T>::V;
template <typename T>
constexpr int lanes() {
  return int(sizeof(V<T>) / sizeof(T));
}

template <typename T>
inline V<T> load(const T* p) {
  return *reinterpret_cast<const V<T>*>(p);
}
template <typename T>
inline V<T> loadu(const T* p) {
  return *reinterpret_cast<const typename Vec<T>::VU*>(p);
}
template <typename T>
inline void storeu(T* p, V<T> x) {
  *reinterpret_cast<typename Vec<T>::VU*>(p) = x;
}
// x - 0 is x for every x (also -0), so this folds to a plain broadcast; 0 + x would not.
template <typename T>
inline V<T> splat(T x) {
  return x - V<T>{};
}

// ---------------------------------------------------------------------------------------------
// The activation epilogue, from activations.h's list. Activations with a vector form (kVector:
// relu, leaky_relu) are applied in registers by act_vec, with the same comparison and product
// as their scalar form; the others (exp, tanh, log1p) by act_row (vecmath.h) on the finished row
// of C.

inline bool act_in_registers(Activation act) {
#define MLPFAST_IN_REGISTERS(name) \
  if (activations::name::kVector && act == Activation::name) return true;
  MLPFAST_ACTIVATIONS(MLPFAST_IN_REGISTERS)
#undef MLPFAST_IN_REGISTERS
  return false;
}

// (A dependent call: only the kVector activations need a forward<T, VT>.)
template <typename A, typename T, typename VT>
inline VT act_vec_of(VT x) {
  return A::template forward<T>(x);
}

template <typename T, typename VT>
inline VT act_vec(Activation act, VT x) {
#define MLPFAST_ACT_VEC(name)               \
  if constexpr (activations::name::kVector) \
    if (act == Activation::name) return act_vec_of<activations::name, T>(x);
  MLPFAST_ACTIVATIONS(MLPFAST_ACT_VEC)
#undef MLPFAST_ACT_VEC
  return x;
}

}  // namespace
}  // namespace MLPFAST_ISA_NS
}  // namespace mlpfast
