#!/usr/bin/env bash
# CI: the core beyond GCC on x86-64 (issue 10, "Portable sources").
#   1. the C++ self-check (tests/cpp/selfcheck.cpp, no Python) built with Clang for x86-64
#      (generic, avx2, avx512 kernels) and run here;
#   2. the same built with Debian's aarch64 cross compiler (generic kernels, dispatch, training
#      core; static) and run under qemu-aarch64: right answers on an ARM64 CPU, and dispatch
#      picks the generic level there (x86 feature checks sit behind an x86-64 guard);
#   3. the Python package built with Clang (CC=clang CXX=clang++ pip install .) with
#      -Wall -Wextra, no warning allowed from our sources, and a fast subset of the tests.
# Every compile of our sources uses -Wall -Wextra -Werror. Installs what is missing with apt-get.
# Env: MLPFAST_CSRC=dir checks another copy of csrc/ in steps 1 and 2 (a patch under review);
#      MLPFAST_PORTABILITY_STEPS="selfcheck aarch64 clang" picks steps (default: all three).
# Takes about 3-4 minutes on 2 busy cores (most of it the Clang build of the package).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
csrc="${MLPFAST_CSRC:-$root/csrc}"
steps="${MLPFAST_PORTABILITY_STEPS:-selfcheck aarch64 clang}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

missing=()
command -v clang++ >/dev/null || missing+=(clang)
[ -e /usr/lib/llvm-14/lib/libomp.so ] || ls /usr/lib/llvm-*/lib/libomp.so >/dev/null 2>&1 \
  || missing+=(libomp-dev)
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

# The sources compiled once per level: CMakeLists.txt's MLPFAST_KERNEL_SOURCES (without .cpp)
mapfile -t kernel_sources < <(python3 - "$root/CMakeLists.txt" <<'EOF'
import re, sys
text = re.sub(r"#[^\n]*", "", open(sys.argv[1]).read())
for src in re.search(r"set\(MLPFAST_KERNEL_SOURCES([^)]*)\)", text).group(1).split():
    print(src.removeprefix("csrc/").removesuffix(".cpp"))
EOF
)

# build_selfcheck CXX OUT [LDFLAGS] -- LEVEL:FLAGS...  -> OUT/selfcheck
build_selfcheck() {
  local cxx=$1 out=$2 ldflags=$3
  shift 4
  local flags="-std=c++17 -O3 -ffp-contract=fast -fno-math-errno -fopenmp -Wall -Wextra -Werror"
  flags+=" -I$csrc"
  # Clang only: "loop not vectorized" (-Wpass-failed) where an `omp simd` loop calls exp()
  # (act_backward_row for softplus / logistic): a hint it cannot honour, the loop runs scalar.
  # The same flag is set for Clang in CMakeLists.txt; every other warning stays an error.
  [[ $cxx == clang* ]] && flags+=" -Wno-pass-failed"
  local objs=() levels="" spec name isa_flags src
  mkdir -p "$out"
  for spec in "$@"; do
    name=${spec%%:*}
    isa_flags=${spec#*:}
    for src in "${kernel_sources[@]}"; do
      # shellcheck disable=SC2086
      $cxx $flags $isa_flags -fvisibility=hidden -DMLPFAST_ISA_NS="$name" \
        -c "$csrc/$src.cpp" -o "$out/$src.$name.o" &
      objs+=("$out/$src.$name.o")
    done
    levels+=" X($name)"
  done
  # dispatch.cpp reads the compiled levels from CMake's generated isa_levels.h; write the same
  echo "#define MLPFAST_ISA_LEVELS(X)$levels" > "$out/isa_levels.h"
  # shellcheck disable=SC2086
  $cxx $flags -I"$out" -c "$csrc/dispatch.cpp" -o "$out/dispatch.o" &
  # shellcheck disable=SC2086
  $cxx $flags -c "$csrc/network.cpp" -o "$out/network.o" &
  # shellcheck disable=SC2086
  $cxx $flags -c "$csrc/threads.cpp" -o "$out/threads.o" &
  # shellcheck disable=SC2086
  $cxx $flags -c "$root/tests/cpp/selfcheck.cpp" -o "$out/selfcheck.o" &
  local job
  for job in $(jobs -p); do wait "$job"; done
  # shellcheck disable=SC2086
  $cxx -fopenmp $ldflags "${objs[@]}" "$out/dispatch.o" "$out/network.o" "$out/threads.o" \
    "$out/selfcheck.o" \
    -o "$out/selfcheck" 2> "$out/link.log" || { cat "$out/link.log"; return 1; }
  # static glibc + libgomp: the linker's note that libgomp's dlopen needs the same glibc at
  # run time is expected (a self-contained test binary), anything else is shown
  grep -v -e "dlopen" -e "in function" "$out/link.log" || true
}

t0=$SECONDS
if [[ " $steps " == *" selfcheck "* ]]; then
  echo "== self-check, clang++ x86-64 (every level of CMakeLists.txt), 2 threads"
  # every level CMakeLists.txt declares (its mlpfast_isa_level(name flags...) entries)
  mapfile -t levels < <(python3 - "$root/CMakeLists.txt" <<'EOF'
import re, sys
text = re.sub(r"#[^\n]*", "", open(sys.argv[1]).read())
for m in re.finditer(r"\bmlpfast_isa_level\(\s*(\w+)([^)]*)\)", text):
    print(m.group(1) + ":" + " ".join(m.group(2).split()))
EOF
  )
  build_selfcheck clang++ "$work/clang" "" -- "${levels[@]}"
  OMP_NUM_THREADS=2 "$work/clang/selfcheck"
  echo "   ($((SECONDS - t0)) s)"
fi

if [[ " $steps " == *" aarch64 "* ]]; then
  t1=$SECONDS
  echo "== self-check, aarch64-linux-gnu-g++ (generic), static, under qemu-aarch64, 2 threads"
  build_selfcheck aarch64-linux-gnu-g++ "$work/aarch64" "-static" -- "generic:"
  readelf -h "$work/aarch64/selfcheck" | grep -q "Machine:.*AArch64" || { echo "not an aarch64 binary"; exit 1; }
  OMP_NUM_THREADS=2 qemu-aarch64 "$work/aarch64/selfcheck" | tee "$work/aarch64.out"
  grep -q "1 ISA level(s) on this CPU, best generic" "$work/aarch64.out" \
    || { echo "dispatch did not choose the generic level on aarch64"; exit 1; }
  echo "   ($((SECONDS - t1)) s)"
fi

if [[ " $steps " == *" clang "* ]]; then
  t2=$SECONDS
  echo "== the package built with clang (-Wall -Wextra), fast test subset"
  python3 -m venv "$work/venv"
  # shellcheck disable=SC1091
  . "$work/venv/bin/activate"
  python -m pip install -q --upgrade pip
  python -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" numpy scipy \
    "scikit-learn>=1.7,<1.10" pytest hypothesis threadpoolctl
  CC=clang CXX=clang++ python -m pip install -v --no-build-isolation --no-deps \
    -Ccmake.define.CMAKE_CXX_FLAGS="-Wall -Wextra" -Cbuild-dir="$work/build" . \
    > "$work/clang-build.log" 2>&1 || { tail -50 "$work/clang-build.log"; exit 1; }
  grep -q "clang++" "$work/build/CMakeCache.txt" || { echo "not built with clang"; exit 1; }
  if grep -E "(warning|error):" "$work/clang-build.log"; then
    echo "clang build: warnings above"
    exit 1
  fi
  python -c "import mlpfast._core as c; print('clang build, ISA levels', c.available_isas(), \
'OpenMP threads', c.max_threads())"
  # The kernels and the core under every level (test_core_threads_isa), the estimators, the
  # GEMM at the shapes the estimators use; test_gemm.py's full sweep is left to the main run.
  (cd "$work" && cp -r "$root/tests" tests && python -m pytest -q -p no:cacheprovider -x \
    tests/test_core_training.py tests/test_core_gradcheck.py tests/test_core_errors.py \
    tests/test_core_threads_isa.py tests/test_estimators.py tests/test_sklearn_compat.py)
  deactivate
  echo "   ($((SECONDS - t2)) s)"
fi
echo "portability: all steps passed in $((SECONDS - t0)) s"
