#!/usr/bin/env bash
# `make bench`: every benchmark under bench/, each printing its own figures (with the
# reference beside it where one exists). Benchmarks never pass or fail on a figure; the script
# fails only when a benchmark cannot run.
# Usage: bench/run_all.sh [BUILD_DIR]
#   env QUICK=1     shorter runs (fewer seeds, short load rounds): a smoke of every benchmark
#   env ONLY="a b"  run only these: agents effector_replay shop_handle monitor models shop_load
#                   pipeline mitigation
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$(cd "${1:-$ROOT/build/release}" && pwd)"
DATASETS="${IMMUNIZER_DATASETS:-$ROOT/../shared/datasets}"
QUICK="${QUICK:-0}"
ONLY="${ONLY:-agents effector_replay shop_handle monitor models shop_load pipeline mitigation}"
min_time=1.0
seeds=10
if [[ "$QUICK" == 1 ]]; then min_time=0.2; seeds=2; fi
failed=()
want() { [[ " $ONLY " == *" $1 "* ]]; }
section() { printf '\n=== %s ===\n%s\n\n' "$1" "$2"; }
run() {
  local name="$1"; shift
  if ! "$@"; then echo "bench: $name did not run to the end" >&2; failed+=("$name"); fi
}
# needs PATH: whether PATH exists; says the section is skipped when it does not.
needs() { [[ -e $1 ]] || { echo "skipped: $1 not found"; return 1; }; }
# run, for the benchmarks that drive their load with wrk: skipped (said so) without it.
run_with_wrk() {
  if command -v wrk >/dev/null; then run "$@"; else echo "skipped: wrk not installed (scripts/deps.sh installs it)"; fi
}
if want agents; then
  section "agents" "sensor record cost and effector allows() (targets: 250 ns, 30 ns; docs/evaluation.md)"
  run agents "$BUILD/bench/agents_bench" --benchmark_min_time="$min_time"
fi
if want effector_replay; then
  section "effector_replay" "effector applying a replay of 10,000 signed directives (targets: < 1 s; a new block during it < 100 ms)"
  rounds=3
  if [[ "$QUICK" == 1 ]]; then rounds=1; fi
  run effector_replay "$BUILD/bench/effector_replay_bench" --directives 10000 --rounds "$rounds"
fi
if want shop_handle; then
  section "shop_handle" "demo shop handler with and without recording (CPU per request)"
  run shop_handle "$BUILD/bench/shop_handle_bench" --benchmark_min_time="$min_time"
fi
if want monitor; then
  section "monitor" "feature extraction on CSIC 2010 records (records/s on one core)"
  # It reads real requests.
  needs "$DATASETS/csic2010" && run monitor "$BUILD/bench/bench_monitor_features" --benchmark_min_time="$min_time"
fi
if want dashboard; then
  section "dashboard" "incident engine on SQLite (WAL): alarms/s into incidents, filtered list"
  run dashboard "$BUILD/bench/bench_dashboard_incidents" --benchmark_min_time="$min_time"
fi
if want models; then
  section "models" "isolation forest + autoencoder on the ODDS sets, beside scikit-learn and the paper"
  if needs "$DATASETS/odds"; then
    sk=(--python /usr/bin/python3)
    /usr/bin/python3 -c 'import sklearn' 2>/dev/null || sk=(--no-sklearn)
    run models "$BUILD/bench/bench_models" --datasets "$DATASETS/odds" --seeds "$seeds" "${sk[@]}"
  fi
fi
if want shop_load; then
  section "shop_load" "demo shop requests/s under wrk, without agents vs with them"
  if [[ "$QUICK" == 1 ]]; then export DURATION=${DURATION:-2} ROUNDS=${ROUNDS:-1}; fi
  run_with_wrk shop_load bash "$ROOT/bench/agents/shop_load.sh" "$BUILD/bin"
fi
if want pipeline; then
  section "pipeline" "records through sensor -> embedded broker -> monitor -> analyze"
  run pipeline bash "$ROOT/bench/pipeline/run.sh" "$BUILD"
fi
if want mitigation; then
  section "mitigation" "first attack request -> first 403 under wrk load on the demo stack (target p99 <= 250 ms at 10k req/s)"
  if [[ "$QUICK" == 1 ]]; then export RATE=${RATE:-2000} ROUNDS=${ROUNDS:-3}; fi
  run_with_wrk mitigation bash "$ROOT/bench/mitigation/run.sh" "$BUILD/bin"
fi
if ((${#failed[@]})); then
  echo "bench: failed to run: ${failed[*]}" >&2
  exit 1
fi
echo "bench: all figures above; docs/evaluation.md says what each one is compared with"
