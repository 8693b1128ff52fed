// dispatch.cpp: picks the instruction-set level of the kernels once, at import.
//
// The best level this CPU (and its OS, which must save the wide registers) supports is chosen;
// the environment variable MLPFAST_ISA=generic|avx2|avx512 forces a lower one (an unsupported or
// unknown name raises at import, in bindings.cpp). Tests switch levels with set_isa().
#include <cstdlib>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"

#ifdef MLPFAST_HAVE_GENERIC
MLPFAST_DECLARE_ISA(generic)
#endif
#ifdef MLPFAST_HAVE_AVX2
MLPFAST_DECLARE_ISA(avx2)
#endif
#ifdef MLPFAST_HAVE_AVX512
MLPFAST_DECLARE_ISA(avx512)
#endif

namespace mlpfast {
namespace {

struct Level {
  const char* name;
  void (*register_gemm)(KernelSet<float>&, KernelSet<double>&);
  void (*register_vector)(KernelSet<float>&, KernelSet<double>&);
  bool (*cpu_has)();
};

bool always() { return true; }
#if defined(__x86_64__) || defined(_M_X64)
// __builtin_cpu_supports checks XCR0 too, so an OS that does not save the registers says no.
bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool cpu_has_avx512() {
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
#endif

// Worst to best.
const Level kLevels[] = {
#ifdef MLPFAST_HAVE_GENERIC
    {"generic", &generic::register_gemm, &generic::register_vector, &always},
#endif
#ifdef MLPFAST_HAVE_AVX2
    {"avx2", &avx2::register_gemm, &avx2::register_vector, &cpu_has_avx2},
#endif
#ifdef MLPFAST_HAVE_AVX512
    {"avx512", &avx512::register_gemm, &avx512::register_vector, &cpu_has_avx512},
#endif
};
constexpr int kNumLevels = sizeof(kLevels) / sizeof(kLevels[0]);

KernelTable make_table(const Level& level) {
  KernelTable t;
  t.name = level.name;
  level.register_gemm(t.f32, t.f64);
  level.register_vector(t.f32, t.f64);
  return t;
}

KernelTable g_tables[kNumLevels];
int g_active = -1;

void init_once() {
  if (g_active >= 0) return;
  for (int i = 0; i < kNumLevels; ++i) {
    g_tables[i] = make_table(kLevels[i]);
    if (kLevels[i].cpu_has()) g_active = i;
  }
}

}  // namespace

const KernelTable& active_kernels() {
  init_once();
  return g_tables[g_active];
}

const char* active_isa() { return active_kernels().name; }

int available_isas(const char** names, int capacity) {
  init_once();
  int n = 0;
  for (int i = 0; i < kNumLevels; ++i)
    if (kLevels[i].cpu_has() && n < capacity) names[n++] = kLevels[i].name;
  return n;
}

int compiled_isas(const char** names, int capacity) {
  int n = 0;
  for (int i = 0; i < kNumLevels && n < capacity; ++i) names[n++] = kLevels[i].name;
  return n;
}

bool set_isa(const char* name) {
  init_once();
  for (int i = 0; i < kNumLevels; ++i) {
    if (std::strcmp(kLevels[i].name, name) == 0) {
      if (!kLevels[i].cpu_has()) return false;
      g_active = i;
      return true;
    }
  }
  return false;
}

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace mlpfast
