#!/usr/bin/env bash
# Evaluate a checkpoint on HumanEval and MBPP (greedy, paper and corrected modes), as in the paper.
# Usage: bash scripts/run_eval.sh MODEL_DIR [OUT_DIR] [DEVICE_TARGET] [extra eval.py flags...]
#   e.g. bash scripts/run_eval.sh runs/ckpt runs/eval Ascend --n-samples 200 --temperature 0.95 --top-p 0.8
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:?usage: run_eval.sh MODEL_DIR [OUT_DIR] [DEVICE_TARGET] [flags...]}"
OUT="${2:-runs/eval}"
DEVICE="${3:-CPU}"
shift $(( $# < 3 ? $# : 3 ))
MBPP="${MBPP_PATH:-../shared/data/mbpp/mbpp.jsonl}"
PYTHON="${PYTHON:-python3}"
export GLOG_v="${GLOG_v:-3}"
for dataset in humaneval mbpp; do
  for mode in paper corrected; do
    extra=()
    [ "$dataset" = mbpp ] && extra+=(--mbpp-path "$MBPP")
    "$PYTHON" eval.py --device_target "$DEVICE" --model "$MODEL" --dataset "$dataset" --mode "$mode" \
      --out "$OUT/$dataset-$mode" --resume "${extra[@]}" "$@"
  done
done
