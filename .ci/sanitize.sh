#!/usr/bin/env bash
# The test suite against an AddressSanitizer + UndefinedBehaviorSanitizer build of the C++ core
# (issue 9, item 5). Separate from .ci/run: it takes minutes, and the coordinator decides when
# to run it.
#
#   .ci/sanitize.sh                  # whole suite
#   .ci/sanitize.sh -k gemm -x       # extra arguments go to pytest
#
# Environment: MLPFAST_ASAN_VENV (default: .ci/.venv-asan, reused between runs; its build
# directory build/asan too, so a rerun only recompiles what changed).
#
# Why each setting:
# - -O1 -g -fno-omit-frame-pointer: readable stacks; -O1 keeps the suite's run time bearable.
#   (CMakeLists.txt still appends its -O3 to the kernel objects; ASan works at any level.)
# - -fno-sanitize-recover=undefined: UBSan aborts at the first report instead of printing and
#   continuing, so a report is a failing test, not a line lost in the output.
# - LD_PRELOAD=libasan.so: the interpreter itself is not instrumented, so the ASan runtime must
#   be loaded before anything else; libubsan comes with it (the -fsanitize=undefined part is
#   linked into _core as the shared libubsan).
# - detect_leaks=0: CPython keeps its interned objects and module state until exit by design.
#   The sanitizers do not check malloc'ed memory that NumPy hands out, only _core's own.
# - OMP_NUM_THREADS=2: the parallel paths run (the same as the default on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${MLPFAST_ASAN_VENV:-$PWD/.ci/.venv-asan}"
build_dir="$PWD/build/asan"  # ignored by .gitignore, like the venv
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"

start=$(date +%s)
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.12" cmake \
    ninja numpy scipy "scikit-learn>=1.9" pytest hypothesis threadpoolctl
fi
. "$venv/bin/activate"
python -m pip install --quiet --no-build-isolation --no-deps \
  -C build-dir="$build_dir" \
  -C cmake.build-type=RelWithDebInfo \
  -C "cmake.define.CMAKE_CXX_FLAGS=$san" \
  -C "cmake.define.CMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined" \
  -C "cmake.define.CMAKE_MODULE_LINKER_FLAGS=-fsanitize=address,undefined" \
  .
built=$(date +%s)

libasan="$(gcc -print-file-name=libasan.so)"
if [ ! -e "$libasan" ]; then
  echo "sanitize.sh: libasan.so not found (apt-get install libasan8 or the gcc package)" >&2
  exit 2
fi
# ASan must come first; libstdc++ too, or ASan's operator new interception misses C++ objects
# allocated by libraries loaded before _core.
libstdcxx="$(gcc -print-file-name=libstdc++.so)"
export LD_PRELOAD="$libasan $libstdcxx"
# abort_on_error makes a report in a child interpreter a SIGABRT, which the subprocess tests
# count as a crash.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export OMP_NUM_THREADS=2
# the subprocess tests inherit the environment, so they run under the sanitizers as well
python -c "import mlpfast._core as c; print('ASan/UBSan build; ISA:', c.isa(), c.available_isas())"
set +e
# -v: if a report aborts pytest itself, the last test named is the one that ran into it.
# --capture=sys: pytest must not capture file descriptor 2, or the report of a process that
# aborts is lost with the capture file.
python -m pytest -v --capture=sys -p no:cacheprovider "$@"
rc=$?
set -e
end=$(date +%s)
echo "sanitize.sh: build $((built - start)) s, tests $((end - built)) s, pytest exit $rc"
exit $rc
