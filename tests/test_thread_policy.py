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
from _subprocess_util import expect_clean_exit, run_script

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
