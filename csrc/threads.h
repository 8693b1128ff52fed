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
//     set_default_threads().
#pragma once

namespace mlpfast {

// Threads the kernels may use now, from the calling thread (1 without OpenMP).
int max_threads();

// The team size when no OpenMP setting says otherwise (n >= 1). In the calling thread it is also
// made OpenMP's own setting (omp_set_num_threads), so that threadpoolctl.threadpool_info()
// reports what mlpfast uses, unless OMP_NUM_THREADS is set or n is above OpenMP's default.
void set_default_threads(int n);

// True in a process forked from the one that imported the core.
bool in_forked_child();

// Registers the pthread_atfork child handler (once; a no-op where there is no fork).
void install_fork_handler();

}  // namespace mlpfast
