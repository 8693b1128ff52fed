// threads.cpp: the thread policy of threads.h. Compiled once (not per ISA level).
#include "threads.h"

#include <atomic>
#include <cstdlib>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define MLPFAST_HAS_FORK 1
#else
#define MLPFAST_HAS_FORK 0  // Windows: no fork, nothing to guard
#endif

namespace mlpfast {
namespace {

// Set in the child by the atfork handler: only an async-signal-safe store happens there.
std::atomic<bool> g_forked{false};
// set_default_threads: the default team (0: none given), OpenMP's default at that time (a
// thread whose setting still equals it has not been limited by the program), and whether
// OMP_NUM_THREADS was set (then OpenMP's setting is the user's and is always honoured).
std::atomic<int> g_default{0};
std::atomic<int> g_openmp_default{0};
std::atomic<bool> g_env_set{false};

#if MLPFAST_HAS_FORK
extern "C" void mlpfast_after_fork_child() { g_forked.store(true, std::memory_order_relaxed); }
#endif

}  // namespace

bool in_forked_child() { return g_forked.load(std::memory_order_relaxed); }

void install_fork_handler() {
#if MLPFAST_HAS_FORK
  static const int registered = pthread_atfork(nullptr, nullptr, &mlpfast_after_fork_child);
  (void)registered;
#endif
}

int max_threads() {
#ifdef _OPENMP
  if (in_forked_child() || omp_in_parallel()) return 1;
  const int openmp = omp_get_max_threads();
  const int def = g_default.load(std::memory_order_relaxed);
  if (def > 0 && def < openmp && !g_env_set.load(std::memory_order_relaxed) &&
      openmp == g_openmp_default.load(std::memory_order_relaxed))
    return def;
  return openmp < 1 ? 1 : openmp;
#else
  return 1;
#endif
}

void set_default_threads(int n) {
  if (n < 1) n = 1;
#ifdef _OPENMP
  const char* env = std::getenv("OMP_NUM_THREADS");
  const bool env_set = env && *env;
  g_env_set.store(env_set, std::memory_order_relaxed);
  if (g_openmp_default.load(std::memory_order_relaxed) == 0)
    g_openmp_default.store(omp_get_max_threads(), std::memory_order_relaxed);
  g_default.store(n, std::memory_order_relaxed);
  if (!env_set && n < omp_get_max_threads()) omp_set_num_threads(n);
#else
  g_default.store(n, std::memory_order_relaxed);
#endif
}

}  // namespace mlpfast
