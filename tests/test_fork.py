"""After a multi-threaded fit in the parent, a forked child that uses mlpfast (fit, predict,
_core.gemm) finishes with the parent's results (issue 9, item 1).

Without a fix the child hangs: libgomp's thread pool does not survive fork, and the child's first
parallel region waits forever for workers that do not exist; the core's pthread_atfork handler
(csrc/threads.h) keeps the child out of parallel regions. Each scenario therefore runs in
its own interpreter (tests/_subprocess_util.py) whose parent process waits for its forked child
at most CHILD_TIMEOUT seconds; the test kills the whole process group if even that parent does
not answer. The scenarios of this file start together (a module fixture) so that the suite pays
the hang timeout once, not once per test.

The parent's first mlpfast call must really start an OpenMP team (otherwise there is nothing
for the child to inherit): OMP_NUM_THREADS=2 is set, the product is far above the core's
threading threshold, and the script checks that the process gained threads during it.
"""

import pytest
from _subprocess_util import (
    Hang,
    WrongOutcome,
    expect_clean_exit,
    finish,
    start_script,
)

CHILD_TIMEOUT = 10  # a healthy child needs about 0.1 s; 10 s covers a heavily loaded machine
OUTER_TIMEOUT = 120  # the parent's own imports and fits, on a loaded 2-core machine

ENV = {
    "OMP_NUM_THREADS": "2",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONWARNINGS": "ignore",
}

# Common prologue: the workload and the check that the parent threads.
PROLOGUE = """
import hashlib, os, sys, warnings
import numpy as np

import mlpfast._core as core
from mlpfast import MLPClassifier, Perceptron

CHILD_TIMEOUT = {child_timeout}


def n_threads():
    return len(os.listdir("/proc/self/task"))


rng = np.random.default_rng(0)
A = rng.standard_normal((400, 300)).astype(np.float32)
B = rng.standard_normal((300, 500)).astype(np.float32)
X = rng.standard_normal((2000, 100)).astype(np.float32)
y = rng.integers(0, 3, 2000)
y20 = rng.integers(0, 20, 2000)


def work():
    '''gemm, fit, predict: the bytes of every result, hashed.'''
    h = hashlib.sha256()
    h.update(core.gemm(A, B).tobytes())
    clf = MLPClassifier(hidden_layer_sizes=(128,), batch_size=200, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    for c in clf.coefs_:
        h.update(c.tobytes())
    h.update(clf.predict_proba(X).tobytes())
    # the Perceptron's own parallel region (threads over groups of classes: 20 classes, 3 groups)
    h.update(Perceptron(n_jobs=2, max_iter=3, tol=None, random_state=0).fit(X, y20).coef_.tobytes())
    return h.hexdigest()


assert core.max_threads() == 2, core.max_threads()
expected = None
if {parent_first}:
    before = n_threads()
    core.gemm(A, B)  # 120 MFLOP: far above the threading threshold
    if n_threads() <= before:
        print("PRECONDITION: the parent's gemm did not start an OpenMP team")
        sys.exit(3)
    expected = work()  # the multi-threaded fit in the parent
"""

FORK_SCRIPT = (
    PROLOGUE
    + """
import select, signal

r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    signal.alarm(CHILD_TIMEOUT + 10)  # default action: the child dies even if stuck in C
    digest = work()
    os.write(w, digest.encode())
    os._exit(0)
os.close(w)
ready, _, _ = select.select([r], [], [], CHILD_TIMEOUT)
if not ready:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print("HANG: the forked child did not finish in", CHILD_TIMEOUT, "s")
    sys.exit(10)
got = os.read(r, 200).decode()
_, status = os.waitpid(pid, 0)
if expected is None:  # the control: the parent computes after its child
    expected = work()
if status != 0 or got != expected:
    print("MISMATCH: child status", status, "child", got, "parent", expected)
    sys.exit(1)
print("OK", got)
"""
)

POOL_SCRIPT = (
    PROLOGUE
    + """
import multiprocessing


def task(_):
    return work()


ctx = multiprocessing.get_context("fork")
pool = ctx.Pool(2)
try:
    got = pool.map_async(task, range(2)).get(timeout=CHILD_TIMEOUT)
except multiprocessing.TimeoutError:
    pool.terminate()
    print("HANG: the fork-context pool did not answer in", CHILD_TIMEOUT, "s")
    sys.exit(10)
pool.close()
pool.join()
if got != [expected, expected]:
    print("MISMATCH: children", got, "parent", expected)
    sys.exit(1)
# the parent still works after its children did
if work() != expected:
    print("MISMATCH: the parent after the pool")
    sys.exit(1)
print("OK", got)
"""
)

SCRIPTS = {"os.fork": FORK_SCRIPT, "multiprocessing-fork-pool": POOL_SCRIPT}


@pytest.fixture(scope="module")
def started():
    """All scenarios start at once; each test then waits for its own."""
    procs = {
        name: start_script(s.format(child_timeout=CHILD_TIMEOUT, parent_first=True), ENV)
        for name, s in SCRIPTS.items()
    }
    procs["control"] = start_script(
        FORK_SCRIPT.format(child_timeout=CHILD_TIMEOUT, parent_first=False), ENV
    )
    yield procs
    for p in procs.values():
        finish(p, 1)  # kills what a failed test left running


def check(started, name):
    outcome = finish(started[name], OUTER_TIMEOUT)
    if outcome.returncode == 10:
        raise Hang(f"{name}: {outcome.describe()}")
    expect_clean_exit(outcome, name)
    if "OK" not in outcome.stdout:
        raise WrongOutcome(outcome.describe())


@pytest.mark.parametrize(
    "scenario",
    [
        "os.fork",
        "multiprocessing-fork-pool",
        # the control forks before any parallel region, so that a failure of the two cases
        # above is about the parent's threads, not about fork or the scripts
        "control",
    ],
)
def test_forked_child_matches_parent(started, scenario):
    check(started, scenario)
