// gemm_kernels.cpp: general matrix multiply, compiled once per ISA level (see kernels.h).
//
// PLACEHOLDER TIER: plain loops, correct for every form, to be replaced by the packed
// Goto/BLIS kernel (Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication",
// ACM TOMS 2008). Threads split rows of C only, so results do not depend on the thread count.
#include "kernels.h"

namespace mlpfast {
namespace MLPFAST_ISA_NS {
namespace {

template <typename T>
void gemm_plain(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha,
                const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc,
                const T* bias, Activation act) {
  const bool big = m * n * k > (index_t(1) << 18);
#pragma omp parallel for schedule(static) if (big)
  for (index_t i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    for (index_t j = 0; j < n; ++j) ci[j] = beta == T(0) ? T(0) : beta * ci[j];
    for (index_t p = 0; p < k; ++p) {
      const T aip = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
      if (trans_b) {
        for (index_t j = 0; j < n; ++j) ci[j] += aip * b[j * ldb + p];
      } else {
        const T* bp = b + p * ldb;
        for (index_t j = 0; j < n; ++j) ci[j] += aip * bp[j];
      }
    }
    if (bias)
      for (index_t j = 0; j < n; ++j) ci[j] += bias[j];
    if (act != Activation::identity)
      for (index_t j = 0; j < n; ++j) ci[j] = act_forward(act, ci[j]);
  }
}

}  // namespace

void register_gemm(KernelSet<float>& f32, KernelSet<double>& f64) {
  f32.gemm = &gemm_plain<float>;
  f64.gemm = &gemm_plain<double>;
}

}  // namespace MLPFAST_ISA_NS
}  // namespace mlpfast
