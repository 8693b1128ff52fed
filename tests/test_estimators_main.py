"""`python -m mlpfast`, the digits demo, runs end to end and reports both libraries; the
package's version is pyproject.toml's."""

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import mlpfast
from mlpfast.__main__ import main

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_version_is_the_one_in_pyproject():
    assert mlpfast.__version__ == version("mlpfast")
    if not PYPROJECT.exists():
        pytest.skip("needs the source tree's pyproject.toml")
    project = PYPROJECT.read_text().split("[project]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^version = "([^"]+)"', project, re.M).group(1) == mlpfast.__version__


def test_main_trains_both_and_prints_the_table(capsys):
    assert main(["--epochs", "3", "--hidden", "8"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(
        r"^\s+(mlpfast|scikit-learn)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+\d+\s+([\d.]+)$", out, re.M
    )
    assert [r[0] for r in rows] == ["mlpfast", "scikit-learn"]
    assert all(r[1] == "3" for r in rows)
    assert rows[0][2] == rows[1][2]  # float64, same seed: the same network, the same accuracy
    diff = float(re.search(r"max \|predict_proba difference\| = (\S+)", out).group(1))
    assert diff < 1e-10


def test_module_entry_point_runs():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlpfast",
            "--epochs",
            "2",
            "--hidden",
            "4",
            "--no-sklearn",
            "--solver",
            "lbfgs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "test acc" in done.stdout and "scikit-learn" not in done.stdout.split("test acc")[1]
