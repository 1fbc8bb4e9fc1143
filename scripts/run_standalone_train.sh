#!/usr/bin/env bash
# Single-process training (CPU or one Ascend device).
# Usage: bash scripts/run_standalone_train.sh CONFIG [extra train.py flags, e.g. --device_target CPU --resume]
set -euo pipefail
[[ $# -ge 1 ]] || { sed -n '2,3p' "$0" >&2; exit 2; }
CONFIG="$1"; shift
[[ -f "$CONFIG" ]] || { echo "run_standalone_train.sh: CONFIG '$CONFIG' is not a file" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
exec "${PYTHON:-python3}" "$ROOT/train.py" --config "$CONFIG" "$@"
