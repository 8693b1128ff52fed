// threads.h: the thread policy, i.e. how many threads a parallel region of mlpfast may use.
//
// Every parallel region of the core asks region_threads() for its team and takes the serial
// branch (no parallel region at all) when the answer is 1. Results never depend on the answer
// (the kernels split independent outputs only), so every rule below changes speed, never bits.
//
// The rules, in order:
//   - in a child forked after the parent used OpenMP: 1. libgomp's worker pool does not survive
//     fork(), and a child that enters a parallel region waits forever for workers that do not
//     exist (the same holds for PyTorch). A pthread_atfork child handler, registered once at
//     import, sets a flag that this function reads; the child then never enters a region.
//   - inside someone else's parallel region: 1.
//   - OMP_NUM_THREADS set, or the calling thread's OpenMP setting changed by the program
//     (threadpoolctl's threadpool_limits calls omp_set_num_threads): that setting.
//   - otherwise the smaller of OpenMP's default and the default set at import from Python
//     (joblib's cpu_count(), which honours CPU affinity and cgroup quotas), see
//     set_default_threads();
//   - and 1 for a while after a helper thread arrived late at a parallel region (the load
//     adaptation, below).
//
// A region runs on that whole team or on the calling thread alone (its serial branch), never on
// a team of another size: libgomp ends the surplus threads of its pool whenever a team is smaller
// than the one before, and creates them again (pthread_create, cold caches, new packing buffers)
// when a larger one follows. Teams sized per product (9, 5, 5, 5, 9 threads, then 16 for the
// optimizer step, in each batch of the lecture's network on 16 threads) thus created threads at
// every batch. A product that pays for fewer threads gets fewer, larger tasks instead (GEMM).
//
// The load adaptation. When another process holds a core, one of our helper threads is often
// off its core when a region starts, and every barrier of the region then waits for its next
// time slice (milliseconds, against regions of 0.05 to 1 ms in an epoch). Each parallel region
// therefore records when its helpers arrive (RegionTimer): the latest helper's first instruction
// inside the region against the region's start. A helper that arrives more than 0.5 ms late
// was not running; the next regions then run on one thread for a pause that grows 4x while the
// regions that probe after it keep finding a late helper (10 ms up to 0.5 s) and halves at each
// one that does not (the team is back when it falls below 2.5 ms: three probes in a row on time
// after a first pause). While a pause lasts the helpers are ended, not left spinning on a core
// the other process needs (threads.cpp: release_helpers). What is measured is the helpers' arrival,
// not how long the calling thread waited: a caller legitimately waits for most of a region on an
// idle machine whenever the team has fewer tasks than threads or a static share ends late, and
// waiting time is no evidence of load (an earlier version that used it made the lecture epoch 2x
// slower on 16 idle cores). A region that starts more than 0.5 ms after the calling thread's
// previous team region counts as late only beyond 2 ms: its helpers may have gone to sleep (libgomp
// spins for a while, then blocks), and waking sleeping threads takes up to a few hundred
// microseconds on an idle machine, more with many threads and deep CPU idle states; the first
// region after a pause is such a region, so the pause cannot feed itself. MLPFAST_LOAD_ADAPTATION=0
// in the environment (read once, at import) turns the adaptation off.
#pragma once
#include <atomic>
#include <cstdint>

namespace mlpfast {

// Threads the kernels may use, from the calling thread (1 without OpenMP): every rule above but
// the last, transient one. What _core.max_threads() reports.
int max_threads();

// The team of a parallel region starting now: max_threads(), or 1 while a pause lasts.
int region_threads();

// The team size when no OpenMP setting says otherwise (n >= 1). In the calling thread it is also
// made OpenMP's own setting (omp_set_num_threads), so that threadpoolctl.threadpool_info()
// reports what mlpfast uses, unless OMP_NUM_THREADS is set or n is above OpenMP's default.
void set_default_threads(int n);

// True in a process forked from the one that imported the core.
bool in_forked_child();

// At import: registers the pthread_atfork child handler (once; a no-op where there is no fork)
// and reads MLPFAST_LOAD_ADAPTATION.
void init_thread_policy();

// Monotonic clock in nanoseconds.
std::int64_t now_ns();

// The adaptation's input: a team region of `threads` threads started at start_ns (by the calling
// thread's clock, just before the region), its latest helper arrived at arrival_ns, and it ended
// at end_ns. Called by the calling thread after the region (RegionTimer does).
void note_region(int threads, std::int64_t start_ns, std::int64_t arrival_ns, std::int64_t end_ns);

// What the adaptation saw and did since import (for tests and diagnostics).
struct ThreadStats {
  bool enabled;               // MLPFAST_LOAD_ADAPTATION was not 0 at import
  std::int64_t team_regions;  // parallel regions of 2+ threads
  std::int64_t judged;        // ... but a thread's first one
  std::int64_t late;          // ... whose latest helper arrived late (0.5 ms, 2 ms when cold): each
                              // starts (or lengthens) a pause
  std::int64_t solo;          // requests for a team answered 1 by a pause
  std::int64_t max_late_ns;   // the latest arrival seen in a judged region
};
ThreadStats thread_stats();

// Times one parallel region for note_region: construct just before the region, call arrive()
// first thing inside it on every thread; the destructor (after the region) reports. Its members
// are defined in threads.cpp, not here: this header is compiled into every per-ISA object, where
// an inline member would be a weak symbol that one ISA level's copy could replace (kernels.h).
class RegionTimer {
 public:
  explicit RegionTimer(int threads);
  RegionTimer(const RegionTimer&) = delete;
  RegionTimer& operator=(const RegionTimer&) = delete;
  void arrive();
  ~RegionTimer();

 private:
  int threads_;
  std::int64_t start_;
  std::atomic<std::int64_t> arrival_;
};

}  // namespace mlpfast
