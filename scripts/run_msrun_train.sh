#!/usr/bin/env bash
# Data-parallel / semi-auto-parallel training with msrun (Ascend, or CPU data parallel).
# Usage: bash scripts/run_msrun_train.sh CONFIG WORKER_NUM [LOCAL_WORKER_NUM MASTER_ADDR MASTER_PORT NODE_RANK]
#        [-- extra train.py flags, e.g. --device_target CPU --output_dir runs/x --resume]
# One node, 8 workers:   bash scripts/run_msrun_train.sh configs/pangu_codeclm_300m_none.yaml 8
# Two nodes (16):        node 0: ... CONFIG 16 8 <node0-ip> 8118 0    node 1: ... CONFIG 16 8 <node0-ip> 8118 1
# Logs: OUTPUT_DIR/msrun_log/worker_<r>.log (OUTPUT_DIR from --output_dir, else ./runs/msrun).
# Python: $PYTHON (default python3) runs msrun and every worker; it needs no activated environment.
set -euo pipefail
usage() { sed -n '2,8p' "$0" >&2; exit 2; }
die() { echo "run_msrun_train.sh: $*" >&2; exit 2; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

positional=()
while [[ $# -gt 0 && "$1" != "--" ]]; do positional+=("$1"); shift; done
[[ $# -gt 0 ]] && shift
extra=("$@")
[[ ${#positional[@]} -ge 2 && ${#positional[@]} -le 6 ]] || usage

CONFIG="${positional[0]}"
WORKER_NUM="${positional[1]}"
LOCAL_WORKER_NUM="${positional[2]:-$WORKER_NUM}"
MASTER_ADDR="${positional[3]:-127.0.0.1}"
MASTER_PORT="${positional[4]:-8118}"
NODE_RANK="${positional[5]:-0}"

[[ -f "$CONFIG" ]] || die "CONFIG '$CONFIG' is not a file"
for v in WORKER_NUM LOCAL_WORKER_NUM MASTER_PORT NODE_RANK; do
  is_uint "${!v}" || die "$v must be a non-negative integer, got '${!v}'"
done
(( WORKER_NUM >= 1 )) || die "WORKER_NUM must be >= 1"
(( LOCAL_WORKER_NUM >= 1 && LOCAL_WORKER_NUM <= WORKER_NUM )) || die "LOCAL_WORKER_NUM must be in 1..WORKER_NUM ($WORKER_NUM)"
(( MASTER_PORT >= 1024 && MASTER_PORT <= 65535 )) || die "MASTER_PORT must be in 1024..65535, got $MASTER_PORT"
(( NODE_RANK * LOCAL_WORKER_NUM < WORKER_NUM )) || die "NODE_RANK $NODE_RANK too large for $WORKER_NUM workers ($LOCAL_WORKER_NUM per node)"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUTPUT_DIR="runs/msrun"
for ((i = 0; i < ${#extra[@]}; i++)); do
  [[ "${extra[$i]}" == "--output_dir" ]] && OUTPUT_DIR="${extra[$((i + 1))]:-$OUTPUT_DIR}"
done

# One interpreter for the launcher and its workers: $PYTHON (a name on PATH or a path; default python3), resolved to
# its sys.executable, so an environment that is not activated (PYTHON=/path/venv/bin/python) works as well.
PYTHON="${PYTHON:-python3}"
PY_EXE="$("$PYTHON" -c 'import sys; print(sys.executable)' 2>/dev/null)" || die "PYTHON='$PYTHON' does not run"
[[ -x "$PY_EXE" ]] || die "PYTHON='$PYTHON': cannot find its interpreter (sys.executable is '$PY_EXE')"
"$PY_EXE" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("mindspore") is None)' \
  || die "$PY_EXE has no MindSpore (msrun ships with it): install the project into that Python"
mkdir -p "$OUTPUT_DIR"
# msrun starts every worker as `python SCRIPT ...`, looked up on PATH: a private directory first on PATH holds a
# `python` that runs exactly $PY_EXE (a wrapper, not a symlink: a venv's python finds its pyvenv.cfg by its own path).
SHIM_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pangu_msrun_python.XXXXXX")"
trap 'rm -rf "$SHIM_DIR"' EXIT
printf '#!/bin/sh\nexec "%s" "$@"\n' "$PY_EXE" >"$SHIM_DIR/python"
chmod 755 "$SHIM_DIR/python"
export PATH="$SHIM_DIR:$PATH"

echo "msrun: $WORKER_NUM workers ($LOCAL_WORKER_NUM here, node $NODE_RANK, master $MASTER_ADDR:$MASTER_PORT), config $CONFIG, python $PY_EXE"
"$PY_EXE" -m mindspore.parallel.cluster.run --worker_num="$WORKER_NUM" --local_worker_num="$LOCAL_WORKER_NUM" \
  --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" --node_rank="$NODE_RANK" \
  --log_dir="$OUTPUT_DIR/msrun_log" --join=True --cluster_time_out=600 \
  "$ROOT/train.py" --config "$CONFIG" --output_dir "$OUTPUT_DIR" "${extra[@]}"
