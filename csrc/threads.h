// threads.h: the thread policy, i.e. how many threads a parallel region of mlpfast may use.
//
// Every parallel region of the core asks max_threads() for its team and takes the serial branch
// (no parallel region at all) when the answer is 1. Results never depend on the answer (the
// kernels split independent outputs only), so every rule below changes speed, never bits.
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
//   - and 1 for a while after a parallel region found its caller waiting for helpers much of
//     the time (another process holds a core, so a helper is descheduled and every barrier
//     waits for its next time slice): see report_region(). The pause doubles while regions
//     keep finding that (10 ms up to 0.5 s) and halves at each region that does not, so a loaded
//     machine costs about one slow region per pause instead of every barrier of an epoch.
#pragma once
#include <cstdint>

namespace mlpfast {

// Threads the kernels may use, from the calling thread (1 without OpenMP): every rule above but
// the last, transient one. What _core.max_threads() reports.
int max_threads();

// The team of a parallel region starting now: max_threads(), or 1 while a pause lasts.
int region_threads();

// The team size when no OpenMP setting says otherwise (n >= 1). Unless OMP_NUM_THREADS is set,
// the smaller of n and OpenMP's default also becomes the calling thread's OpenMP setting
// (omp_set_num_threads), so that threadpoolctl.threadpool_info() reports what mlpfast uses.
void set_default_threads(int n);

// Monotonic clock in nanoseconds, for report_region.
std::int64_t now_ns();

// A parallel region of `threads` threads ran from start_ns to end_ns, and its calling thread
// spent busy_ns of that on its own share of the work (the rest it waited: for helpers to start,
// at barriers, at the end). Called by the calling thread after the region.
void report_region(int threads, std::int64_t start_ns, std::int64_t end_ns, std::int64_t busy_ns);

// True in a process forked from the one that imported the core.
bool in_forked_child();

// Registers the pthread_atfork child handler (once; a no-op where there is no fork).
void install_fork_handler();

}  // namespace mlpfast
