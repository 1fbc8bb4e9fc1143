#!/usr/bin/env bash
# The main job on an embedded default: mine this machine's Python -> tokenizer -> Code CLM shards -> train the tiny
# model on CPU -> evaluate on HumanEval (and MBPP when present) -> export to PyTorch and check parity.
# Usage: bash scripts/demo.sh [--fresh] [--minutes N] [--workdir DIR] [--mbpp-path FILE]
#        bash scripts/demo.sh --grid [--grid-steps N] [--eval-limit N]   (the paper's 12-cell grid, small budget)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import pangu_codeclm, mindspore, mindformers, torch" >/dev/null 2>&1; then
  echo "[demo] installing pangu-codeclm and its dependencies (first run: a few minutes)"
  "$PYTHON" -m pip install --disable-pip-version-check -q -e ".[torch]" "torch==2.13.0"
fi
export GLOG_v="${GLOG_v:-3}"
exec "$PYTHON" -m pangu_codeclm.cli demo "$@"
