#!/usr/bin/env bash
# Ascend 910 distributed training with an HCCL rank table: one process per device of this node.
# Usage: bash scripts/run_distribute_train.sh RANK_TABLE_FILE CONFIG [DEVICE_NUM] [RANK_START] [-- extra train.py flags]
#   DEVICE_NUM  devices to start on this node (default: this node's devices in the table, or all for one server)
#   RANK_START  rank of this node's first device (default 0; the second node of a 16p table uses 8)
# Each device d runs in OUTPUT/device_<d>/ with RANK_TABLE_FILE, RANK_ID, DEVICE_ID, RANK_SIZE set; log: train.log there.
# OUTPUT = ./runs/distribute (override with OUTPUT=...). DRY_RUN=1 prints what would start and starts nothing.
set -euo pipefail
usage() { sed -n '2,7p' "$0" >&2; exit 2; }
die() { echo "run_distribute_train.sh: $*" >&2; exit 2; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

positional=()
while [[ $# -gt 0 && "$1" != "--" ]]; do positional+=("$1"); shift; done
[[ $# -gt 0 ]] && shift
extra=("$@")
[[ ${#positional[@]} -ge 2 && ${#positional[@]} -le 4 ]] || usage

RANK_TABLE_FILE="$(realpath -m "${positional[0]}")"
CONFIG="$(realpath -m "${positional[1]}")"
[[ -f "$RANK_TABLE_FILE" ]] || die "RANK_TABLE_FILE '${positional[0]}' is not a file"
[[ -f "$CONFIG" ]] || die "CONFIG '${positional[1]}' is not a file"
PYTHON="${PYTHON:-python3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# Validate the table (names the bad field) and read its size before anything starts.
read -r RANK_SIZE SERVER_DEVICES < <("$PYTHON" - "$RANK_TABLE_FILE" <<'PY'
import sys
from pangu_codeclm.train.rank_table import RankTableError, load_rank_table
try:
    _, n, per_server = load_rank_table(sys.argv[1])
except RankTableError as exc:
    print(f"invalid rank table: {exc}", file=sys.stderr)
    sys.exit(3)
print(n, ",".join(map(str, per_server)))
PY
) || die "rank table check failed"

DEFAULT_NUM="${SERVER_DEVICES%%,*}"
DEVICE_NUM="${positional[2]:-$DEFAULT_NUM}"
RANK_START="${positional[3]:-0}"
is_uint "$DEVICE_NUM" && (( DEVICE_NUM >= 1 && DEVICE_NUM <= 16 )) || die "DEVICE_NUM must be in 1..16, got '$DEVICE_NUM'"
is_uint "$RANK_START" || die "RANK_START must be a non-negative integer, got '$RANK_START'"
(( RANK_START + DEVICE_NUM <= RANK_SIZE )) || \
  die "ranks $RANK_START..$((RANK_START + DEVICE_NUM - 1)) exceed the table's $RANK_SIZE ranks"

OUTPUT="$(realpath -m "${OUTPUT:-runs/distribute}")"
export PANGU_CODECLM_WORKDIR="$PWD"   # relative paths in CONFIG are resolved against the launch directory
echo "rank table $RANK_TABLE_FILE: $RANK_SIZE ranks (servers: $SERVER_DEVICES); starting ranks" \
     "$RANK_START..$((RANK_START + DEVICE_NUM - 1)) here; output $OUTPUT"
for ((i = 0; i < DEVICE_NUM; i++)); do
  rank=$((RANK_START + i))
  dir="$OUTPUT/device_$i"
  cmd=("$PYTHON" "$ROOT/train.py" --config "$CONFIG" --device_target Ascend --output_dir "$OUTPUT" "${extra[@]}")
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    echo "DEVICE_ID=$i RANK_ID=$rank RANK_SIZE=$RANK_SIZE cd $dir && ${cmd[*]} > $dir/train.log"
    continue
  fi
  mkdir -p "$dir"
  (
    cd "$dir"
    export RANK_TABLE_FILE RANK_SIZE DEVICE_ID="$i" RANK_ID="$rank"
    nohup "${cmd[@]}" > "$dir/train.log" 2>&1 &
    echo "rank $rank on device $i: pid $!, log $dir/train.log"
  )
done
