#!/bin/bash
# `promtool check metrics` on the /metrics exposition of every service, started the way users
# start them (`immunizer up` with the embedded broker), once they are ready and have served a
# scrape. Lint findings (names, types, units, help) fail the test.
# Usage: check_metrics_exposition.sh BIN_DIR WORK_DIR PORT_BASE
set -uo pipefail
BIN="$1"; WORK="$2"; BASE="${3:-23400}"
DASH=$((BASE + 9))
command -v promtool >/dev/null || { echo "FAIL promtool not found (apt-get install prometheus)"; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK"
state_args=()
if "$BIN/immunizer" up --help 2>&1 | grep -q -- '--state-dir'; then state_args=(--state-dir "$WORK/state"); fi
"$BIN/immunizer" up --port-base "$BASE" --dashboard-port "$DASH" "${state_args[@]}" > "$WORK/up.log" 2>&1 &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null' EXIT
for _ in $(seq 1 900); do
  grep -q "Immunizer is up" "$WORK/up.log" && break
  kill -0 $up 2>/dev/null || { echo "FAIL immunizer up exited:"; tail -30 "$WORK/up.log"; exit 1; }
  sleep 0.1
done
grep -q "Immunizer is up" "$WORK/up.log" || { echo "FAIL not up within 90 s"; tail -30 "$WORK/up.log"; exit 1; }
auth=()
creds="$WORK/state/dashboard.credentials"
[[ -f "$creds" ]] && auth=(-u "$(cat "$creds")")
fails=0
for svc in monitor:$((BASE + 1)) analyze:$((BASE + 2)) plan:$((BASE + 3)) execute:$((BASE + 4)) dashboard:$DASH; do
  name=${svc%%:*}; port=${svc##*:}
  if ! curl -sf "${auth[@]}" "http://127.0.0.1:$port/metrics" > "$WORK/$name.prom"; then
    echo "FAIL $name: GET /metrics on port $port"; fails=$((fails + 1)); continue
  fi
  if out=$(promtool check metrics < "$WORK/$name.prom" 2>&1); then
    echo "ok   $name: $(grep -c '^# TYPE' "$WORK/$name.prom") metric families, promtool check metrics clean"
  else
    echo "FAIL $name: promtool check metrics"; echo "$out" | head -20; fails=$((fails + 1))
  fi
done
echo "metrics exposition: $fails failure(s)"
exit $((fails > 0))
