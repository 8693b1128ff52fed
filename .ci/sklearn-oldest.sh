#!/usr/bin/env bash
# CI: mlpfast on the OLDEST scikit-learn it supports (pyproject: scikit-learn>=1.7,<1.10), so
# both ends of the range are tested (the main CI run installs the newest).
# A fresh venv with the newest 1.7.x, the package built and installed as README says, then
# every test that involves scikit-learn: the estimators against scikit-learn 1.7's,
# scikit-learn 1.7's own test_mlp.py on mlpfast (test_estimators_sklearn_suite.py), its
# estimator checks, the fence's checks (test_sklearn_compat.py), to_sklearn (which writes
# scikit-learn's private attributes), the Perceptron against 1.7's (whose stopping test is the
# older one: the summed loss), python -m mlpfast.
# Left to the main run: test_gemm.py and test_core_*.py, which do not import scikit-learn.
# Takes about 3 minutes on 2 busy cores (the compile is half of it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
t0=$SECONDS
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
pipq() { python -m pip -q --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
pipq install --upgrade pip
pipq install "scikit-learn==1.7.*" "pytest>=7" "hypothesis>=6" "threadpoolctl>=3"
pipq install "scikit-build-core>=0.10" "pybind11>=2.12"
python -m pip install -q --no-build-isolation ".[test]" > "$work/install.log" 2>&1 \
  || { cat "$work/install.log"; exit 1; }
version=$(python -c "import sklearn; print(sklearn.__version__)")
case $version in 1.7.*) ;; *) echo "expected scikit-learn 1.7.x, got $version"; exit 1 ;; esac
echo "== scikit-learn $version, mlpfast built in $((SECONDS - t0)) s"
cp -r "$root/tests" "$work/tests" && cp "$root/pyproject.toml" "$work/"
cp -r "$root/examples" "$work/examples"  # test_perceptron.py runs the lecture's example
cd "$work"
python -m mlpfast --epochs 5
python -m pytest -q -p no:cacheprovider tests/test_sklearn_compat.py \
  tests/test_estimators.py tests/test_estimators_main.py tests/test_estimators_sklearn_suite.py \
  tests/test_sklearn_checks.py tests/test_to_sklearn.py tests/test_openmp_runtimes.py \
  tests/test_perceptron.py
echo "sklearn-oldest: passed with scikit-learn $version in $((SECONDS - t0)) s"
