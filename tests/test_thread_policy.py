"""The thread policy (csrc/threads.h, issue 9 item 2): how many threads mlpfast's parallel
regions may use, and who decides. Behaviour only (no timing): each case runs in a fresh
interpreter whose environment is set before libgomp and mlpfast load.

- default: joblib's cpu_count() (loky: CPU affinity, cgroup quotas, LOKY_MAX_CPU_COUNT), no more
  than OpenMP's own default;
- OMP_NUM_THREADS and threadpoolctl's threadpool_limits override it;
- threadpoolctl.threadpool_info() reports the count mlpfast uses;
- a forked child, and a call inside another parallel region, use one thread.
"""

import os
import sys

import pytest
from _subprocess_util import CORE_IMPORT, expect_clean_exit, run_script

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork, POSIX environment")

PROLOGUE = """
import os, sys
for name in ("OMP_NUM_THREADS", "LOKY_MAX_CPU_COUNT"):
    os.environ.pop(name, None)
os.environ.update({env!r})
import numpy as np
import joblib
import threadpoolctl
import mlpfast
from mlpfast import _core as core

def check(what, got, want):
    if got != want:
        print(f"{{what}}: got {{got}}, want {{want}}")
        sys.exit(1)

def reported():
    # what threadpoolctl reads for mlpfast's OpenMP runtime: omp_get_max_threads() of the
    # libgomp the core is linked to (found through the core's own symbol lookup; scikit-learn's
    # wheel vendors a second libgomp, which threadpool_info lists too)
    import ctypes
    n = ctypes.CDLL(core.__file__).omp_get_max_threads()
    infos = threadpoolctl.threadpool_info()
    listed = [i["num_threads"] for i in infos if i["user_api"] == "openmp"]
    check("listed by threadpool_info", n in listed, True)
    return n
"""


def run(body, env=None):
    script = PROLOGUE.format(env=env or {}) + body
    out = run_script(script, timeout=120)
    expect_clean_exit(out, "thread policy")


OPENMP_DEFAULT = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def test_default_is_joblibs_cpu_count_and_threadpoolctl_overrides_it():
    run(
        """
n = joblib.cpu_count(only_physical_cores=False)
check("default", core.max_threads(), n)
check("threadpool_info", reported(), n)
with threadpoolctl.threadpool_limits(limits=1):
    check("threadpool_limits(1)", core.max_threads(), 1)
check("after the limit", core.max_threads(), n)
"""
    )


def test_loky_limit_lowers_the_default():
    # LOKY_MAX_CPU_COUNT stands in for an affinity mask or a cgroup quota (loky applies all of
    # them the same way); OpenMP's own default is the whole machine
    run(
        """
check("default", core.max_threads(), 1)
check("threadpool_info", reported(), 1)
with threadpoolctl.threadpool_limits(limits=1):
    check("threadpool_limits(1)", core.max_threads(), 1)
""",
        env={"LOKY_MAX_CPU_COUNT": "1"},
    )


def test_other_python_threads_get_the_default_too():
    run(
        """
import threading
got = []
t = threading.Thread(target=lambda: got.append(core.max_threads()))
t.start(); t.join()
check("another thread", got, [1])
""",
        env={"LOKY_MAX_CPU_COUNT": "1"},
    )


def test_omp_num_threads_overrides_the_default():
    run(
        """
check("OMP_NUM_THREADS", core.max_threads(), 3)
""",
        env={"OMP_NUM_THREADS": "3", "LOKY_MAX_CPU_COUNT": "1"},
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_forked_child_runs_one_thread():
    run(
        """
a = np.ones((300, 300), np.float32)
core.gemm(a, a)  # the parent's OpenMP team exists now
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, str(core.max_threads()).encode())
    os._exit(0)
os.waitpid(pid, 0)
check("child", int(os.read(r, 10)), 1)
check("parent", core.max_threads(), 2)
""",
        env={"OMP_NUM_THREADS": "2"},
    )


# --- the load adaptation (csrc/threads.h) ---------------------------------------------------
# Its decision is fed by RegionTimer with three times per parallel region: its start, its latest
# helper's arrival, its end. _core._note_region feeds the same function directly, so the rules
# can be checked without a machine in a given state; the timestamps are placed a minute ahead
# of the clock, so a pause they start is still running when the test asks about it.

CORE_PROLOGUE = (
    """
import os, sys
import numpy as np

def check(what, got, want):
    if got != want:
        print(f"{what}: got {got}, want {want}")
        sys.exit(1)
"""
    + CORE_IMPORT
)


def run_core(body, env):
    """The script in a fresh interpreter that loads the core alone (no scikit-learn: fast)."""
    out = run_script(CORE_PROLOGUE + body, timeout=120, env=env)
    expect_clean_exit(out, "load adaptation")


RULES = """
MS = 1_000_000
t = core._now_ns() + 60_000 * MS
def region(gap_ms, late_ms, length_ms=1.0):
    # a 2-thread region starting gap_ms after the previous one ended
    global t
    start = t + int(gap_ms * MS)
    t = start + int(length_ms * MS)
    core._note_region(2, start, start + int(late_ms * MS), t)
def stats():
    return core.thread_stats()
"""


def test_adaptation_judges_helper_arrival_not_the_callers_wait():
    run_core(
        RULES
        + """
check("enabled", stats()["load_adaptation"], True)
region(0, 5.0)  # the first region of a thread (libgomp creates its helpers): not judged
check("first region", (stats()["team_regions"], stats()["judged"], stats()["late"]), (1, 0, 0))
# helpers on time in regions of 5 ms (in which the caller may wait for almost all of it, as
# when the team has fewer tasks than threads on an idle machine): no pause
for _ in range(20):
    region(0.05, 0.02, length_ms=5.0)
check("on time", (stats()["judged"], stats()["late"], core._region_threads()), (20, 0, 2))
# a helper 2 ms late in a region that follows the previous one closely: paused
region(0.05, 2.0)
check("late helper", (stats()["late"], core._region_threads()), (1, 1))
solo = stats()["solo"]
check("solo counted", solo >= 1, True)
""",
        env={"OMP_NUM_THREADS": "2"},
    )


def test_adaptation_is_lenient_after_a_gap_and_recovers():
    run_core(
        RULES
        + """
region(0, 0)
# 1 ms late, but 5 ms after the previous region: its helpers may have been asleep, and waking
# them is not load (up to 2 ms is allowed then)
region(5.0, 1.0)
check("cold region", (stats()["judged"], stats()["late"], core._region_threads()), (1, 0, 2))
region(5.0, 4.0)  # 4 ms late even so: a loaded machine
check("cold and late", (stats()["late"], core._region_threads()), (1, 1))
for _ in range(2):
    region(0.05, 1.0)  # late twice more in a row: the pause grows 4x (10, 40, 160 ms)
check("paused", (stats()["late"], core._region_threads()), (3, 1))
for _ in range(6):
    region(0.05, 0.01)  # on time: the pause halves each time, 160 -> 80 -> ... -> 2.5 ...
check("still paused", core._region_threads(), 1)  # one probe on time is not a quiet machine
region(0.05, 0.01)  # ... -> 0
check("recovered", core._region_threads(), 2)
""",
        env={"OMP_NUM_THREADS": "2"},
    )


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="lists threads through /proc")
def test_a_pause_ends_the_helpers():
    # a spinning helper would share a core with the other process for ~10 ms after each region
    run_core(
        RULES
        + """
import os
def threads():
    return len(os.listdir("/proc/self/task"))
a = np.ones((512, 512))
core.gemm(a, a)  # a team of 2: libgomp creates one helper
with_helper = threads()
region(0, 0)
region(0.05, 3.0)  # late: a pause starts
# libgomp's helper leaves through pthread_exit after the pause's last barrier: the pause has
# returned before the thread is gone, so wait for it (on a loaded machine that may take a while)
import time
deadline = time.monotonic() + 30
while threads() >= with_helper and time.monotonic() < deadline:
    time.sleep(0.01)
check("helper ended", (core._region_threads(), threads()), (1, with_helper - 1))
""",
        env={"OMP_NUM_THREADS": "2"},
    )


def test_load_adaptation_kill_switch():
    run_core(
        RULES
        + """
check("enabled", stats()["load_adaptation"], False)
region(0, 0)
for _ in range(5):
    region(0.05, 5.0)
check("never paused", (stats()["team_regions"], stats()["late"], core._region_threads()),
      (0, 0, 2))
""",
        env={"OMP_NUM_THREADS": "2", "MLPFAST_LOAD_ADAPTATION": "0"},
    )


EPOCH = """
import time
units = (784, 500, 500, 10)
rng = np.random.default_rng(0)
X = rng.standard_normal((1000, 784)).astype(np.float32)
Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 1000)]
order = rng.permutation(1000)
npar = sum(a * b + b for a, b in zip(units[:-1], units[1:]))
p0 = (rng.standard_normal(npar) * 0.05).astype(np.float32)

def epochs(n):
    p, st, t = p0.copy(), np.zeros(2 * npar, np.float32), 0
    for _ in range(n):
        _, t = core.train_epoch(p, st, units, "relu", "softmax", X, Y, None, order, 100,
                                solver="adam", alpha=1e-4, learning_rate=1e-3, t=t)
    return p
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="lists threads through /proc")
def test_teams_keep_their_threads():
    # every region runs on the whole team: libgomp would end threads at each smaller team and
    # create them again at the next larger one (threads.h)
    run_core(
        EPOCH
        + """
def tids():
    return set(os.listdir("/proc/self/task"))
epochs(1)
for n in (600, 240, 100):  # products of very different sizes
    a = np.ones((n, n), np.float32)
    core.gemm(a, a)
before = tids()
epochs(1)
for n in (240, 600, 100, 240):
    a = np.ones((n, n), np.float32)
    core.gemm(a, a)
check("threads", tids(), before)
check("team", len(before) >= 4, True)
""",
        env={"OMP_NUM_THREADS": "4", "MLPFAST_LOAD_ADAPTATION": "0"},
    )


def test_busy_machine_sends_regions_to_one_thread_and_results_do_not_change():
    # two processes spinning on the 2+ cores of the test machine (bounded by their own clock,
    # killed at the end): our 2-thread team's helper is often off its core, and the adaptation
    # must notice; the weights stay those of one thread
    run_core(
        EPOCH
        + """
import subprocess
spin = "import time\\nend = time.time() + 60\\nwhile time.time() < end:\\n    pass\\n"
n_busy = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(n_busy)]
try:
    time.sleep(0.2)
    deadline = time.time() + 30
    p = epochs(1)
    while core.thread_stats()["solo"] == 0 and time.time() < deadline:
        p = epochs(1)
finally:
    for b in busy:
        b.kill()
        b.wait()
s = core.thread_stats()
check("late regions seen", s["late"] > 0, True)
check("regions sent to one thread", s["solo"] > 0, True)
import threadpoolctl
with threadpoolctl.threadpool_limits(limits=1):
    check("bitwise as one thread", bool(np.array_equal(p, epochs(1))), True)
""",
        env={"OMP_NUM_THREADS": "2"},
    )
