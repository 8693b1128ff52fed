// kernels.h: the table of kernels that are compiled once per instruction-set level.
//
// Each per-ISA source (gemm_kernels.cpp, vector_kernels.cpp) is compiled several times with
// MLPFAST_ISA_NS set to generic / avx2 / avx512 and its own -m flags, and fills its part of a
// KernelSet through register_<concern>(). dispatch.cpp picks one level at import (CPU check,
// MLPFAST_ISA override) and everything else calls kernels<T>().
//
// Adding a kernel: a member here, an assignment in its file's register function.
#pragma once
#include <cstdint>

#include "activations.h"

namespace mlpfast {

using index_t = std::int64_t;

template <typename T>
struct KernelSet {
  // C = act(alpha * op(A) op(B) + beta * C + bias). Row-major; op(A) is m x k, op(B) is k x n.
  // beta == 0 means C is write-only (never read, may hold garbage). bias may be null (length n).
  // act must not be prelu. Threads split M and N only: bitwise identical for any thread count.
  void (*gemm)(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha,
               const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc,
               const T* bias, Activation act) = nullptr;
};

struct KernelTable {
  const char* name = nullptr;
  KernelSet<float> f32;
  KernelSet<double> f64;
};

// Implemented in dispatch.cpp.
const KernelTable& active_kernels();
template <typename T> inline const KernelSet<T>& kernels();
template <> inline const KernelSet<float>& kernels<float>() { return active_kernels().f32; }
template <> inline const KernelSet<double>& kernels<double>() { return active_kernels().f64; }

const char* active_isa();
// Names of the levels this build has and this CPU can run, best last.
int available_isas(const char** names, int capacity);
// Selects a level by name; returns false if unknown or unsupported here.
bool set_isa(const char* name);

// Number of threads a kernel may use (OpenMP's current setting, 1 without OpenMP).
int max_threads();

}  // namespace mlpfast

// Declarations of the per-ISA register functions. MLPFAST_ISA_NS is defined per object.
#define MLPFAST_DECLARE_ISA(ns)                                                   \
  namespace mlpfast {                                                             \
  namespace ns {                                                                  \
  void register_gemm(KernelSet<float>& f32, KernelSet<double>& f64);              \
  void register_vector(KernelSet<float>& f32, KernelSet<double>& f64);            \
  }                                                                               \
  }
