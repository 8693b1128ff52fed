// threads.cpp: the thread policy of threads.h. Compiled once (not per ISA level).
#include "threads.h"

#include <atomic>
#include <chrono>
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

// The adaptation to a loaded machine: until g_solo_until (now_ns() clock) every region runs on
// one thread; g_pause is the length of the last pause (0: the last measured region was fine).
// A region counts as slowed when its caller waited more than kSlowWaitNs and more than a
// quarter of the region's time: on a quiet machine the caller waits for at most one task of
// its helper at the end (a few percent), under load for a time slice (milliseconds).
std::atomic<std::int64_t> g_solo_until{0};
std::atomic<std::int64_t> g_pause{0};
constexpr std::int64_t kSlowWaitNs = 200'000;
constexpr std::int64_t kFirstPauseNs = 10'000'000, kMaxPauseNs = 500'000'000;

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

int region_threads() {
  const int n = max_threads();
  if (n > 1 && g_pause.load(std::memory_order_relaxed) > 0 &&
      now_ns() < g_solo_until.load(std::memory_order_relaxed))
    return 1;
  return n;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void report_region(int threads, std::int64_t start_ns, std::int64_t end_ns, std::int64_t busy_ns) {
  if (threads < 2) return;
  const std::int64_t wait = (end_ns - start_ns) - busy_ns;
  if (wait > kSlowWaitNs && 4 * wait > end_ns - start_ns) {
    std::int64_t pause = 2 * g_pause.load(std::memory_order_relaxed);
    if (pause < kFirstPauseNs) pause = kFirstPauseNs;
    if (pause > kMaxPauseNs) pause = kMaxPauseNs;
    g_pause.store(pause, std::memory_order_relaxed);
    g_solo_until.store(end_ns + pause, std::memory_order_relaxed);
  } else {  // halved, not reset: under a load that comes and goes, the pause tracks it
    const std::int64_t pause = g_pause.load(std::memory_order_relaxed) / 2;
    g_pause.store(pause < kFirstPauseNs ? 0 : pause, std::memory_order_relaxed);
  }
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
  const int openmp_default = g_openmp_default.load(std::memory_order_relaxed);
  if (!env_set) omp_set_num_threads(n < openmp_default ? n : openmp_default);
#else
  g_default.store(n, std::memory_order_relaxed);
#endif
}

}  // namespace mlpfast
