#!/usr/bin/env bash
# Lint and format check of the Python sources (python/, tests/, bench/, examples/), with the ruff
# version pinned in pyproject.toml's "lint" extra. Run from anywhere, inside the venv to use:
#   .ci/lint.sh          (a few seconds; installs the pinned ruff into the active venv if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
pin=$(python - <<'PY'
import re
text = open("pyproject.toml").read()
print(re.search(r'"(ruff==[^"]+)"', text).group(1))
PY
)
if [ "$(python -m ruff --version 2>/dev/null | awk '{print "ruff==" $2}')" != "$pin" ]; then
    if ! python -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
        echo "lint.sh: $pin is not installed and no virtual environment is active;" \
             "activate one (or pip install '$pin') and rerun" >&2
        exit 2
    fi
    python -m pip install -q "$pin"
fi
python -m ruff check .
python -m ruff format --check .
