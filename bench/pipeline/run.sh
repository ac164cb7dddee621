#!/usr/bin/env bash
# The pipeline benchmark with the default shape (1 partition, one monitor, one analyze, all
# defaults), then scaled out (2 partitions, two of each). Figures go to docs/evaluation.md by
# hand, with the command. Usage: bench/pipeline/run.sh [BUILD_DIR] [extra pipeline_bench args]
#   env RECORDS (default 300000), WARMUP (default 40000), QUICK=1 (30000 / 20000)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$(cd "${1:-$ROOT/build/release}" && pwd)"
shift || true
RECORDS=${RECORDS:-300000}
WARMUP=${WARMUP:-40000}
if [[ "${QUICK:-0}" == 1 ]]; then RECORDS=30000; WARMUP=20000; fi
B="$BUILD/bench/pipeline_bench"
echo "--- 1 partition, 1 monitor, 1 analyze"
"$B" --records "$RECORDS" --warmup "$WARMUP" "$@"
echo
echo "--- 2 partitions, 2 monitors, 2 analyzers (one consumer group each)"
"$B" --records "$RECORDS" --warmup "$WARMUP" --partitions 2 --monitors 2 --analyzers 2 --port-base 23900 "$@"
