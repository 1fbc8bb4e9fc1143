#!/usr/bin/env bash
# Install the project with its test and torch extras into the current Python, then run the CPU test suite.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
# torch==2.13.0 is the CPU build; an unpinned torch from PyPI pulls several GB of CUDA libraries.
"$PYTHON" -m pip install --disable-pip-version-check -q -e ".[test,torch]" "torch==2.13.0"
export GLOG_v="${GLOG_v:-3}"
"$PYTHON" -m pytest -q -p no:cacheprovider tests "$@"
