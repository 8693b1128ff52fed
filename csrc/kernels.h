// kernels.h: the table of kernels that are compiled once per instruction-set level.
//
// Each per-ISA source (gemm_kernels.cpp, vector_kernels.cpp) is compiled several times with
// MLPFAST_ISA_NS set to generic / avx2 / avx512 and its own -m flags, and fills its part of a
// KernelSet through register_<concern>(). dispatch.cpp picks one level at import (CPU check,
// MLPFAST_ISA override) and everything else calls kernels<T>().
//
// Adding a kernel: a member here, an assignment in its file's register function. Adding an
// instruction-set level: docs/adding.md.
#pragma once
#include <cstdint>

#include "activations.h"
#include "common.h"
#include "losses.h"
#include "optimizers.h"
#include "sparse.h"
#include "threads.h"  // region_threads(), RegionTimer: the team of every parallel region

namespace mlpfast {

// One solver's steps (optimizers.h), instantiated for its type by vector_kernels.cpp. solver_step
// is the solver's Step (as its schedule() gave it), passed through untyped so that every solver's
// kernels have one signature; network.cpp and vector_kernels.cpp both index this table by the
// same Solver value, so the type behind it always matches.
//   The first n_l2 elements (the weights) get the L2 term: g + l2 * p. State buffer b is at
// state + b * ld_state. Hyper-parameters come as doubles and are rounded to T inside, as NumPy
// does with Python floats.
template <typename T>
struct OptimizerKernels {
  // One step over a flat buffer of n parameters p with gradient g. When partials is non-null,
  // returns sum(p[:n_l2]^2) taken BEFORE the update (the batch's penalty, for free); partials
  // holds reduce_blocks(n) doubles of scratch.
  double (*step)(index_t n, index_t n_l2, T* p, const T* g, T* state, index_t ld_state,
                 const void* solver_step, double l2, double* partials) = nullptr;
  // The same step for one layer's weights W (fan_in x fan_out, row-major) of a SMALL batch
  // (m rows, 1 to kOuterMaxRows), with the gradient formed on the fly,
  //   g = (A^T dZ) / m_eff + l2 W,   A: m x fan_in (lda), dZ: m x fan_out (lddz),
  // so the weights' gradient never goes through memory (the pass is bound by memory traffic
  // at these sizes). Returns sum(W^2) before the update when want_sum_sq (else 0); partials:
  // reduce_blocks(fan_in * fan_out) doubles of scratch.
  double (*step_outer)(index_t fan_in, index_t fan_out, index_t m, const T* a, index_t lda,
                       const T* dz, index_t lddz, T m_eff, T* W, T* state, index_t ld_state,
                       const void* solver_step, double l2, bool want_sum_sq,
                       double* partials) = nullptr;
};

template <typename T>
struct KernelSet {
  // C = act(alpha * op(A) op(B) + beta * C + bias). Row-major; op(A) is m x k, op(B) is k x n.
  // beta == 0 means C is write-only (never read, may hold garbage). bias may be null (length n).
  // act must not be prelu. Threads split M and N only: bitwise identical for any thread count.
  void (*gemm)(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
               index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc, const T* bias,
               Activation act) = nullptr;
  // matmul_precision="bfloat16" (gemm_bf16.cpp; float only, null for double): gemm's contract
  // with op(A) and op(B) rounded to bf16, float32 sums. gemm_bf16: the emulated kernel (this
  // level's vectors, any CPU); gemm_bf16_dot: AVX512-BF16 dot products (the same bits as the
  // emulated one); gemm_bf16_amx: AMX-BF16 tiles (its own summation order). The last two are
  // null unless this level and CPU have them. bf16_gemm() below picks one.
  void (*gemm_bf16)(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha,
                    const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc,
                    const T* bias, Activation act) = nullptr;
  decltype(gemm_bf16) gemm_bf16_dot = nullptr;
  decltype(gemm_bf16) gemm_bf16_amx = nullptr;

  // ---- element-wise kernels (vector_kernels.cpp; the formulas live in activations.h,
  // losses.h, optimizers.h). Row-major m x n blocks with leading dimensions; reductions run
  // in a fixed order (per column over rows, per row over columns, per kReduceBlock block of a
  // flat buffer), so results are bitwise identical for any thread count.

  // dz[i,j] *= g'(a[i,j]) for a hidden activation given through its output a = g(z); not prelu.
  void (*act_backward)(Activation act, index_t m, index_t n, const T* a, index_t lda, T* dz,
                       index_t lddz) = nullptr;
  // a[i,j] = prelu(z[i,j], slope[j]).
  void (*prelu_forward)(index_t m, index_t n, const T* z, index_t ldz, const T* slope, T* a,
                        index_t lda) = nullptr;
  // dslope[j] = sum_i da[i,j] * min(z[i,j], 0) / m_eff; then da[i,j] *= prelu'(z[i,j], slope[j])
  // (da becomes dz in place).
  void (*prelu_backward)(index_t m, index_t n, const T* z, index_t ldz, const T* slope, T* da,
                         index_t ldda, T* dslope, T m_eff) = nullptr;
  // db[j] = sum_i dz[i,j] / m_eff.
  void (*column_sum)(index_t m, index_t n, const T* dz, index_t lddz, T* db, T m_eff) = nullptr;
  // z <- out(z) in place, row by row (softmax normalises each row).
  void (*output_forward)(Output out, index_t m, index_t n, T* z, index_t ldz) = nullptr;
  // The output layer fused with its loss: dz = (out(z) - y) * sw (sw may be null: weight 1) and
  // returns sum_i sw_i * loss_i, loss_i the per-sample loss of losses.h (probabilities clipped to
  // [eps, 1 - eps] in the loss value as scikit-learn does). row_loss: m doubles of scratch.
  double (*output_loss_grad)(Output out, index_t m, index_t n, const T* z, index_t ldz, const T* y,
                             index_t ldy, const T* sw, T* dz, index_t lddz,
                             double* row_loss) = nullptr;
  // The solvers' steps, one entry per solver of optimizers.h (solver[int(Solver::name)]).
  OptimizerKernels<T> solver[kNumSolvers];
  // sum(x^2) in double, in reduce_blocks(n) fixed blocks (partials: scratch of that many).
  double (*sum_squares)(index_t n, const T* x, double* partials) = nullptr;
  // y += alpha * x.
  void (*axpy)(index_t n, T alpha, const T* x, T* y) = nullptr;
  // true iff every element of the strided m x n array (element (i, j) at x[i*rs + j*cs]) is
  // finite.
  bool (*all_finite)(index_t m, index_t n, const T* x, index_t rs, index_t cs) = nullptr;

  // ---- sparse first layer (sparse_kernels.cpp; sparse.h). Rows of the result are independent
  // and each gradient element is summed in batch order by one thread: bitwise identical for any
  // thread count.

  // C = act(X_b W + bias) for the x.m rows X_b of a CSR matrix; W: x.X.cols x n (ld n), C: x.m x
  // n (ldc), bias null or length n, act not prelu (as gemm).
  void (*csr_gemm)(const CsrRows<T>& x, index_t n, const T* W, const T* bias, Activation act, T* c,
                   index_t ldc) = nullptr;
  // G = alpha X_b^T dZ (x.X.cols x n, ld n), dZ: x.m x n (lddz). G is taken to be zero except in
  // the rows of the columns `clear` holds (every row of G when clear is null): those are zeroed
  // first, so consecutive batches only touch the rows their nonzeros name.
  void (*csr_gemm_tn)(const CsrRows<T>& x, const CsrRows<T>* clear, index_t n, T alpha, const T* dz,
                      index_t lddz, T* g) = nullptr;
};

// The least work a parallel GEMM gives a thread (gemm_kernels.cpp, gemm_bf16.cpp), ~80 us: below
// it a fork/join costs more than the thread saves (2^21, ~20 us, left 784-100-10 at batch 32
// slower on 2 threads than on 1; 2^23 keeps its 5-MFLOP products on one thread, and every
// product of the lecture's 784-500-500-10 at batch 100 on two). A product of fewer than twice
// this many flops runs on one thread whatever the team.
constexpr index_t kMinFlopsPerThread = index_t(1) << 23;

// Batches of at most this many rows update the weights through the *_outer steps (measured on
// 784-100-10 and 784-500-500-10: faster than GEMM + flat step at batch size 1, even at 2,
// slower from 4 on, where the GEMM's blocking pays).
constexpr index_t kOuterMaxRows = 2;

// Flat reductions are summed per block of this many elements, then the block sums in order.
constexpr index_t kReduceBlock = 8192;
namespace {  // internal linkage: this header is compiled into every per-ISA object
constexpr index_t reduce_blocks(index_t n) { return (n + kReduceBlock - 1) / kReduceBlock; }
}  // namespace

struct KernelTable {
  const char* name = nullptr;
  KernelSet<float> f32;
  KernelSet<double> f64;
};

// Implemented in dispatch.cpp. init_dispatch() fills the tables (bindings.cpp calls it at
// import; any first use would too, thread-safely). kernels<T>() reads the active level
// atomically: a core call fetches it once and passes the reference down, so that set_isa() in
// another thread cannot mix two levels' kernels within one call.
void init_dispatch();
const KernelTable& active_kernels();
template <typename T>
inline const KernelSet<T>& kernels();
template <>
inline const KernelSet<float>& kernels<float>() {
  return active_kernels().f32;
}
template <>
inline const KernelSet<double>& kernels<double>() {
  return active_kernels().f64;
}

const char* active_isa();
// Names of the levels this build has and this CPU can run, best last.
int available_isas(const char** names, int capacity);
// Names of the levels this build has, whether or not this CPU can run them, worst to best.
int compiled_isas(const char** names, int capacity);
// Selects a level by name; returns false if unknown or unsupported here.
bool set_isa(const char* name);

// The bf16 kernels by name, and the choice among them: Bf16Kernel::best (the default) takes AMX,
// else AVX512-BF16, else the emulated kernel; set_bf16_kernel() forces one (tests, benchmarks;
// a kernel the active level lacks falls back to the emulated one).
enum class Bf16Kernel { best, emulated, avx512_bf16, amx };
Bf16Kernel bf16_kernel_choice();
void set_bf16_kernel(Bf16Kernel kernel);
inline decltype(KernelSet<float>::gemm) bf16_gemm(const KernelSet<float>& k) {
  switch (bf16_kernel_choice()) {
    case Bf16Kernel::best:
      return k.gemm_bf16_amx ? k.gemm_bf16_amx : k.gemm_bf16_dot ? k.gemm_bf16_dot : k.gemm_bf16;
    case Bf16Kernel::avx512_bf16:
      return k.gemm_bf16_dot ? k.gemm_bf16_dot : k.gemm_bf16;
    case Bf16Kernel::amx:
      return k.gemm_bf16_amx ? k.gemm_bf16_amx : k.gemm_bf16;
    case Bf16Kernel::emulated:
      break;
  }
  return k.gemm_bf16;
}

}  // namespace mlpfast

// Declarations of the per-ISA register functions. MLPFAST_ISA_NS is defined per object.
#define MLPFAST_DECLARE_ISA(ns)                                        \
  namespace mlpfast {                                                  \
  namespace ns {                                                       \
  void register_gemm(KernelSet<float>& f32, KernelSet<double>& f64);   \
  void register_vector(KernelSet<float>& f32, KernelSet<double>& f64); \
  void register_sparse(KernelSet<float>& f32, KernelSet<double>& f64); \
  void register_bf16(KernelSet<float>& f32, KernelSet<double>& f64);   \
  }                                                                    \
  }
