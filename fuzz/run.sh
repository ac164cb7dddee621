#!/usr/bin/env bash
# Runs every fuzz target (or the named ones) for SECONDS each under ASan + UBSan, after
# replaying fuzz/regressions/<target>/ (inputs that once crashed). Seeds are generated from
# the CSIC 2010 data by fuzz_seeds into <build>/fuzz/work/seeds; the growing corpus stays in
# <build>/fuzz/work/corpus/<target>, crash inputs go to <build>/fuzz/work/artifacts/.
# Prints executions per target; exits 1 if any target found something.
# Usage: fuzz/run.sh <fuzz build folder> <seconds per target> [target ...]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
secs=$2
shift 2
bin=$build/fuzz
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(call_records feature_vector alarm plan dashboard_records dashboard_api csic config directive directive_batch)
fi
datasets=${IMMUNIZER_DATASETS:-$root/../shared/datasets}
work=$bin/work
mkdir -p "$work/artifacts"
if ! "$bin/fuzz_seeds" "$datasets" "$work/seeds" 300; then
  echo "fuzz: no seeds from real data (datasets at $datasets?); the targets start from their regressions" >&2
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
failed=()
summary=()
for t in "${targets[@]}"; do
  exe=$bin/fuzz_$t
  corpus=$work/corpus/$t
  mkdir -p "$corpus" "$work/seeds/$t"
  regress=$root/fuzz/regressions/$t
  log=$work/$t.log
  # Inputs that once crashed must not crash again (each is run once).
  if [[ -d $regress ]] && compgen -G "$regress/*" >/dev/null; then
    if ! "$exe" "$regress"/* >"$log.regress" 2>&1; then
      tail -40 "$log.regress"
      failed+=("$t (regression)")
      summary+=("$(printf '%-18s regression input crashed again (see %s)' "$t" "$log.regress")")
      continue
    fi
  fi
  dirs=("$corpus" "$work/seeds/$t")
  [[ -d $regress ]] && dirs+=("$regress")
  "$exe" -max_total_time="$secs" -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/$t-" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  units=$(find "$corpus" -type f | wc -l)
  if ((rc != 0)); then
    grep -E "ERROR|runtime error|SUMMARY|==ERROR|Test unit written" "$log" | head -8
    failed+=("$t")
    summary+=("$(printf '%-18s FOUND A PROBLEM after %s executions (log %s)' "$t" "${execs:-?}" "$log")")
  else
    summary+=("$(printf '%-18s %9s executions in %s s (%s/s), coverage %s, corpus %s' "$t" "$execs" "$secs" "$rate" "$cov" "$units")")
  fi
done
echo "fuzz: ${#targets[@]} targets, ${secs} s each (ASan + UBSan)"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  echo "fuzz: problems in: ${failed[*]} (crash inputs in $work/artifacts)" >&2
  exit 1
fi
