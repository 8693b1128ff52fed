#!/usr/bin/env bash
# Checks that csrc/ is formatted with the repository's .clang-format, with the pinned
# clang-format (installed into the active Python environment when absent or another version).
# Usage, from anywhere: .ci/format-check.sh     (a few seconds; exit status 1 on a difference)
set -euo pipefail
VERSION=23.1.3
cd "$(dirname "$0")/.."
installed=$(clang-format --version 2>/dev/null || true)
if [[ "$installed" != *"version $VERSION"* ]]; then
  python -m pip install -q "clang-format==$VERSION"
fi
clang-format --version
clang-format --dry-run -Werror csrc/*
echo "csrc/ is formatted (clang-format $VERSION)"
