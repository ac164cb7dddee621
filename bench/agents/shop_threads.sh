#!/usr/bin/env bash
# Where the CPU of recording every call goes: the demo shop recording every call
# (IMMUNIZER_SENSOR_CPU_BUDGET=1) under a bounded wrk load on loopback, CPU time per request
# of each of its threads by name (/proc/<pid>/task/*/schedstat) and of the embedded broker
# process. Extra KEY=VALUE arguments go to the shop's environment, to compare settings:
#   bench/agents/shop_threads.sh build/release/bin IMMUNIZER_SENSOR_LINGER_MS=5
# (env: DURATION=6 CONNECTIONS=16)
set -euo pipefail
BIN=${1:-build/release/bin}
shift || true
DURATION=${DURATION:-6}
CONNECTIONS=${CONNECTIONS:-16}
# shellcheck source=bench/agents/lib.sh
. "$(dirname "$0")/lib.sh"

"$BIN/immunizer" broker > "$WORK/broker.log" 2>&1 & pids+=($!)
BROKER=${pids[-1]}
for _ in $(seq 100); do grep -q bootstrap= "$WORK/broker.log" && break; sleep 0.1; done
export IMMUNIZER_KAFKA_BOOTSTRAP=$(sed -n 's/^bootstrap=//p' "$WORK/broker.log")
# No execute: the effector stays disconnected (fail-open), allows() answers locally.
"$BIN/immunizer" pki --state-dir "$WORK/state" init > /dev/null
export IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS="$WORK/state/keys/execute.pub" IMMUNIZER_EFFECTOR_TLS=none
export IMMUNIZER_EXECUTE_ADDRESS=127.0.0.1:1 IMMUNIZER_APP=shop
export IMMUNIZER_LOG_LEVEL=warn IMMUNIZER_SENSOR_CPU_BUDGET=1
PORT=$(free_port)
env "$@" "$BIN/immunizer-shop" --port "$PORT" > "$WORK/shop.log" 2>&1 & pids+=($!)
SHOP=${pids[-1]}
wait_http "$PORT"
URL="http://127.0.0.1:$PORT/tienda1/publico/anadir.jsp?id=3&nombre=Vino+Rioja&precio=100&cantidad=55&B1=A%F1adir+al+carrito"

threads() { for t in /proc/"$SHOP"/task/*; do echo "$(basename "$t")|$(cat "$t/comm")|$(awk '{print $1}' "$t/schedstat")"; done | sort; }
broker_ticks() { awk '{print $14 + $15}' /proc/"$BROKER"/stat; }
wrk -t2 -c"$CONNECTIONS" -d2s "$URL" > /dev/null  # warm-up: connections, producer, model keys
threads > "$WORK/before"; b0=$(broker_ticks)
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "$URL" > "$WORK/wrk.txt"
threads > "$WORK/after"; b1=$(broker_ticks)
req=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
echo "shop recording every call, wrk -t2 -c$CONNECTIONS -d${DURATION}s: $req requests ($(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt") req/s) ${*:-(default settings)}"
echo "CPU per request:"
join -t'|' "$WORK/before" "$WORK/after" |
  awk -F'|' -v n="$req" '{d[$2] += $5 - $3} END {for (k in d) printf "  %-18s %9.0f ns\n", k, d[k] / n}' | sort -k2 -n -r
hz=$(getconf CLK_TCK)
awk -v t=$((b1 - b0)) -v hz="$hz" -v n="$req" 'BEGIN {printf "  %-18s %9.0f ns\n", "(broker process)", t * 1e9 / hz / n}'
