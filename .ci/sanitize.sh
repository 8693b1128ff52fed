#!/usr/bin/env bash
# The C++ core built with AddressSanitizer + UndefinedBehaviorSanitizer and the tests run against
# it; a report fails the run (issue 9, item 5). A step of .ci/run (the fast mode).
#
#   .ci/sanitize.sh                  # fast: every test file that calls the core (see FAST)
#   .ci/sanitize.sh --full           # the whole suite (~15 min on 2 cores)
#   .ci/sanitize.sh -k gemm -x       # further arguments go to pytest (after --full, if given)
#
# Python: the active interpreter (in CI, .ci/run's venv, which holds the test dependencies);
# cmake, ninja and pybind11 are pip-installed into it when missing. The build is not installed:
# build/asan (ignored, reused, so a rerun compiles only what changed) holds the sanitized _core,
# and build/asan/site/mlpfast the package around it, first on PYTHONPATH; the tests' child
# interpreters inherit PYTHONPATH, LD_PRELOAD and the options below, so they run sanitized too.
#
# Why each setting:
# - -fsanitize=address,undefined on every object of the core, the kernels of all ISA levels
#   included (test_gemm.py and the hostile-input properties run each level the CPU has).
# - -O1 on every object (CMAKE_CXX_COMPILE_OBJECT puts it after CMakeLists.txt's -O3): ASan
#   compiles the -O3 kernels ~3.5x slower (46 s against 13 s of CPU for one level's GEMM); at
#   -O1 the whole build is ~1 min of CPU. -g1: line tables, enough for the reports' stacks.
# - -fno-sanitize-recover=all and halt_on_error=1: UBSan aborts at its first report instead of
#   printing and continuing, so a report is a failing run, not a line lost in the output.
# - abort_on_error=1: a report in a child interpreter is a SIGABRT, which the subprocess tests
#   count as a Crash (tests/_subprocess_util.py also looks for the reports' text).
# - detect_leaks=0: CPython (not built with ASan) keeps interned strings, module state and its
#   object arenas until exit by design, and frees none of them at exit: LeakSanitizer reports
#   thousands of such blocks per interpreter, every stack through the python binary, so no
#   suppression can tell a leak of _core's apart. The core's memory is owned by C++ containers
#   (RAII); memory held past a call is measured by tests/test_memory.py in the normal suite.
# - allocator_may_return_null=1: an allocation too large to make returns NULL (numpy's
#   MemoryError, C++'s std::bad_alloc) as it does without ASan, instead of an ASan abort; the
#   hostile-input properties pass huge (zero-stride) shapes.
# - LD_PRELOAD libasan (+ libstdc++): the interpreter is not instrumented, so the ASan runtime
#   must be loaded first; libstdc++ so that its operator new is the intercepted one from the start.
# - OMP_NUM_THREADS=2: the parallel paths run (the default on 2 cores; fixed so that a bigger
#   machine does not spend its time on teams).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS

full=0
if [ "${1:-}" = "--full" ]; then
  full=1
  shift
fi

# Fast mode: the files that call the core directly (kernels at every ISA level, the network,
# the hostile-input properties, the crash and Ctrl-C children) and the estimators' own tests
# (fit / partial_fit / predict through train_epoch, loss_grad and predict_forward). Not here:
# the scikit-learn parity and compatibility suites (the same core calls, many more of them),
# the deploy formats (skops, ONNX, to_sklearn), test_openmp_runtimes.py (needs PyTorch),
# test_memory.py (skips itself under ASan: its quarantine keeps freed memory resident) and
# test_fork.py (strict xfails of issue 9 item 1 today: children that hang until a timeout).
FAST=(
  tests/test_bindings.py
  tests/test_core_activations_losses.py
  tests/test_core_crashes.py
  tests/test_core_errors.py
  tests/test_core_gradcheck.py
  tests/test_core_hostile.py
  tests/test_core_hostile_sparse.py
  tests/test_core_threads_isa.py
  tests/test_core_training.py
  tests/test_gemm.py
  tests/test_fast_predict.py
  tests/test_estimators.py
  tests/test_estimators_main.py
  tests/test_sparse.py  # the sparse kernels (first-layer products, the scattered gradient)
  # compiles the kernel sources with the release flags and reads their symbols: it tests no
  # code of the sanitized build, and is the slowest test file (~80 s of compiler CPU)
  --deselect "tests/test_gemm.py::test_kernel_objects_have_no_vague_symbols"
)

py="$(command -v python)"
"$py" -c "import cmake, ninja, pybind11" 2>/dev/null ||
  "$py" -m pip install --quiet cmake ninja pybind11
libasan="$(gcc -print-file-name=libasan.so)"
libstdcxx="$(gcc -print-file-name=libstdc++.so)"
if [ ! -e "$libasan" ]; then
  echo "sanitize.sh: libasan.so not found (apt-get install libasan8 or the gcc package)" >&2
  exit 2
fi

build="$PWD/build/asan"
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g1"
# CXX=g++: GCC's libasan is the runtime preloaded below (read at the first configure only)
CXX=g++ "$py" -m cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_CXX_FLAGS="$san" \
  -DCMAKE_CXX_COMPILE_OBJECT="<CMAKE_CXX_COMPILER> <DEFINES> <INCLUDES> <FLAGS> -O1 -o <OBJECT> -c <SOURCE>" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DPython_EXECUTABLE="$py" -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" >/dev/null
"$py" -m ninja -C "$build" _core
rm -rf "$build/site"
mkdir -p "$build/site"
cp -r python/mlpfast "$build/site/mlpfast"
cp "$build"/_core.*.so "$build/site/mlpfast/"
built=$SECONDS

export PYTHONPATH="$build/site${PYTHONPATH:+:$PYTHONPATH}"
export LD_PRELOAD="$libasan $libstdcxx"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export OMP_NUM_THREADS=2
"$py" -c "
import mlpfast._core as c
assert c.__file__.startswith('$build/site/'), c.__file__
print('sanitized core:', c.__file__, '; ISA levels', c.available_isas())"

selection=("${FAST[@]}")
[ "$full" = 1 ] && selection=()
set +e
# -v: if a report aborts pytest itself, the last test named is the one that ran into it.
# --capture=sys: pytest must not capture file descriptor 2, or the report of a process that
# aborts is lost with the capture file. -p no:cacheprovider: nothing written into the tree.
"$py" -m pytest -v --capture=sys -p no:cacheprovider "${selection[@]}" "$@"
rc=$?
set -e
echo "sanitize.sh: build $((built - t0)) s, tests $((SECONDS - built)) s, pytest exit $rc"
exit $rc
