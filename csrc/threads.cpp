// threads.cpp: the thread policy of threads.h. Compiled once (not per ISA level).
#include "threads.h"

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

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

// The load adaptation (threads.h). A helper arriving more than kLateNs after its region started
// was off its core: a descheduled thread waits for a time slice of the process that holds its
// core (0.75 to 3 ms under Linux's scheduler defaults, tens of ms on a heavily loaded machine),
// while on an idle machine a spinning helper arrives within microseconds. That holds when the
// calling thread's previous team region ended at most kColdGapNs before: its helpers are then
// still spinning (libgomp spins ~300,000 iterations, about 10 ms here, before it blocks). After
// a longer gap they may be asleep, and waking a sleeping team on an idle machine takes tens to a
// few hundred microseconds (futex wake, CPU idle-state exit, more with many threads), so such a
// region counts as late only beyond kColdLateNs. The first region after a pause is one of those:
// the pause cannot feed itself, yet a loaded machine is seen at once (a probe then costs one
// region, not two). The first team region of a thread is not judged: libgomp creates its threads.
constexpr std::int64_t kLateNs = 500'000;
constexpr std::int64_t kColdGapNs = 500'000;
constexpr std::int64_t kColdLateNs = 2'000'000;
constexpr std::int64_t kFirstPauseNs = 10'000'000, kMaxPauseNs = 500'000'000;
constexpr std::int64_t kLastPauseNs = kFirstPauseNs / 4;

// A pause starts or goes on: the calling thread's helpers are ended (OpenMP 5.0's
// omp_pause_resource_all; libgomp ends the calling thread's pool, LLVM's libomp puts its threads
// to sleep). Left alone, each would spin for its wait policy's time after every region (libgomp
// ~300,000 iterations, ~10 ms here; libomp 200 ms) on a core that another process needs, and
// the pause's one-thread regions would share a core with it: that spinning, not the late
// regions themselves, made a paused epoch 1.5x to 4x slower than one run on one thread from the
// start. The probe that ends a pause creates the helpers again (tens of microseconds), which
// the cold limit allows for. Called only after a region, by its calling thread.
void release_helpers() {
#ifdef _OPENMP
  if (!omp_in_parallel()) omp_pause_resource_all(omp_pause_soft);
#endif
}

std::atomic<bool> g_adapt{true};
// Until g_solo_until (now_ns() clock) every region runs on one thread; g_pause is the length of
// the last pause (0: the last judged region had its helpers on time).
std::atomic<std::int64_t> g_solo_until{0};
std::atomic<std::int64_t> g_pause{0};
// The end of the calling thread's previous team region (each thread that calls the core has a
// team of its own in libgomp, so its helpers' warmth is its own).
thread_local std::int64_t tl_last_end = 0;

struct Counters {
  std::atomic<std::int64_t> team_regions{0}, judged{0}, late{0}, solo{0}, max_late{0};
};
Counters g_stats;

void bump(std::atomic<std::int64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }

#if MLPFAST_HAS_FORK
extern "C" void mlpfast_after_fork_child() { g_forked.store(true, std::memory_order_relaxed); }
#endif

// MLPFAST_LOAD_ADAPTATION: "0", "off", "false" or "no" (any case) turn the adaptation off.
bool adaptation_from_env() {
  const char* v = std::getenv("MLPFAST_LOAD_ADAPTATION");
  if (!v) return true;
  char low[8] = {};
  for (int i = 0; i < 7 && v[i]; ++i) low[i] = char(std::tolower((unsigned char)v[i]));
  if (std::strlen(v) >= sizeof(low)) return true;
  for (const char* off : {"0", "off", "false", "no"})
    if (std::strcmp(low, off) == 0) return false;
  return true;
}

}  // namespace

bool in_forked_child() { return g_forked.load(std::memory_order_relaxed); }

void init_thread_policy() {
#if MLPFAST_HAS_FORK
  static const int registered = pthread_atfork(nullptr, nullptr, &mlpfast_after_fork_child);
  (void)registered;
#endif
  g_adapt.store(adaptation_from_env(), std::memory_order_relaxed);
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
      now_ns() < g_solo_until.load(std::memory_order_relaxed)) {
    bump(g_stats.solo);
    return 1;
  }
  return n;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void note_region(int threads, std::int64_t start_ns, std::int64_t arrival_ns, std::int64_t end_ns) {
  if (threads < 2 || !g_adapt.load(std::memory_order_relaxed)) return;
  bump(g_stats.team_regions);
  const std::int64_t previous = tl_last_end;
  tl_last_end = end_ns;
  if (previous == 0) return;  // the team's first region: its threads were just created
  bump(g_stats.judged);
  const std::int64_t late = arrival_ns - start_ns;
  const std::int64_t limit = start_ns - previous > kColdGapNs ? kColdLateNs : kLateNs;
  std::int64_t seen = g_stats.max_late.load(std::memory_order_relaxed);
  while (late > seen &&
         !g_stats.max_late.compare_exchange_weak(seen, late, std::memory_order_relaxed)) {
  }
  if (late > limit) {
    bump(g_stats.late);
    // x4, not x2: under a load that stays, each probe that finds a helper late costs up to a
    // time slice of the other process (up to ~25 ms measured on 2 cores), so probes must thin
    // out fast (10, 40, 160, 500 ms); bench_load's busy lecture epoch ran 1.52x its one-thread
    // time with doubling (two late probes in its three timed epochs)
    std::int64_t pause = 4 * g_pause.load(std::memory_order_relaxed);
    if (pause < kFirstPauseNs) pause = kFirstPauseNs;
    if (pause > kMaxPauseNs) pause = kMaxPauseNs;
    g_pause.store(pause, std::memory_order_relaxed);
    g_solo_until.store(end_ns + pause, std::memory_order_relaxed);
    release_helpers();
  } else if (g_pause.load(std::memory_order_relaxed) > 0) {
    // An on-time probe halves the pause but does not end it: one probe that found a core free
    // says little under a load that holds a core half the time; three in a row (10, 5, 2.5 ms)
    // bring the whole team back.
    const std::int64_t pause = g_pause.load(std::memory_order_relaxed) / 2;
    if (pause < kLastPauseNs) {
      g_pause.store(0, std::memory_order_relaxed);
    } else {
      g_pause.store(pause, std::memory_order_relaxed);
      g_solo_until.store(end_ns + pause, std::memory_order_relaxed);
      release_helpers();
    }
  }
}

RegionTimer::RegionTimer(int threads) : threads_(threads), start_(now_ns()), arrival_(start_) {}

void RegionTimer::arrive() {
#ifdef _OPENMP
  if (omp_get_thread_num() == 0) return;  // the calling thread is never late for itself
#endif
  const std::int64_t t = now_ns();
  std::int64_t seen = arrival_.load(std::memory_order_relaxed);
  while (t > seen && !arrival_.compare_exchange_weak(seen, t, std::memory_order_relaxed)) {
  }
}

RegionTimer::~RegionTimer() {
  note_region(threads_, start_, arrival_.load(std::memory_order_relaxed), now_ns());
}

ThreadStats thread_stats() {
  auto get = [](const std::atomic<std::int64_t>& c) { return c.load(std::memory_order_relaxed); };
  return {g_adapt.load(std::memory_order_relaxed),
          get(g_stats.team_regions),
          get(g_stats.judged),
          get(g_stats.late),
          get(g_stats.solo),
          get(g_stats.max_late)};
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
