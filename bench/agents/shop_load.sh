#!/usr/bin/env bash
# Demo shop throughput with and without the microagents, side by side in one run, under a
# bounded loopback load from wrk (Debian's wrk): requests per second of
#   baseline      immunizer-shop --no-sensor --no-effector
#   agents        sensor + effector (connected to execute, no active directive: the
#                 allows() fast path; BM_EffectorAllows measures it with 100 blocks),
#                 sensor at its default CPU budget (2%)
#   agents-all    the same, recording every call (IMMUNIZER_SENSOR_CPU_BUDGET=1)
# Rounds alternate (and rotate their order) so machine noise spreads evenly; the median per
# variant is reported.
# Usage: bench/agents/shop_load.sh [BIN_DIR]   (env: DURATION=10 CONNECTIONS=16 ROUNDS=3)
set -euo pipefail
BIN=${1:-build/release/bin}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
ROUNDS=${ROUNDS:-3}
# PIN=1: the shops on CPU 0, wrk (and broker, execute) on the other CPUs, so that each shop's
# throughput is its own CPU cost per request rather than a share of cores it fights wrk for.
PIN=${PIN:-0}
PIN_SHOP=""; PIN_LOAD=""; WRK_THREADS=2
if [ "$PIN" = 1 ]; then
  NCPU=$(nproc)
  [ "$NCPU" -ge 2 ] || { echo "PIN=1 needs 2 CPUs" >&2; exit 2; }
  PIN_SHOP="taskset -c 0"; PIN_LOAD="taskset -c 1-$((NCPU - 1))"; WRK_THREADS=$((NCPU - 1))
fi
# shellcheck source=bench/agents/lib.sh
. "$(dirname "$0")/lib.sh"

$PIN_LOAD "$BIN/immunizer" broker > "$WORK/broker.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q bootstrap= "$WORK/broker.log" && break; sleep 0.1; done
export IMMUNIZER_KAFKA_BOOTSTRAP=$(sed -n 's/^bootstrap=//p' "$WORK/broker.log")
# Keys and certificates as `immunizer up` makes them; execute and the shops use mutual TLS.
S="$WORK/state"
"$BIN/immunizer" pki --state-dir "$S" init > /dev/null
GRPC=$(free_port); EXEC_HTTP=$(free_port)
IMMUNIZER_EXECUTE_GRPC_LISTEN=127.0.0.1:$GRPC IMMUNIZER_HTTP_PORT=$EXEC_HTTP \
  IMMUNIZER_EXECUTE_DIRECTIVE_SIGNING_KEY_FILE="$S/keys/execute.key" IMMUNIZER_EXECUTE_PLAN_PUBLIC_KEYS="$S/keys/plan.pub" \
  IMMUNIZER_EXECUTE_TLS_CA_FILE="$S/tls/ca.crt" IMMUNIZER_EXECUTE_TLS_CERT_FILE="$S/tls/execute-execute.crt" \
  IMMUNIZER_EXECUTE_TLS_KEY_FILE="$S/tls/execute-execute.key" \
  $PIN_LOAD "$BIN/immunizer-execute" > "$WORK/execute.log" 2>&1 & pids+=($!)
wait_http "$EXEC_HTTP"
export IMMUNIZER_EXECUTE_ADDRESS=127.0.0.1:$GRPC IMMUNIZER_APP=shop IMMUNIZER_LOG_LEVEL=warn
export IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS="$S/keys/execute.pub" IMMUNIZER_EFFECTOR_TLS_CA_FILE="$S/tls/ca.crt"
export IMMUNIZER_EFFECTOR_TLS_CERT_FILE="$S/tls/effector-shop.crt" IMMUNIZER_EFFECTOR_TLS_KEY_FILE="$S/tls/effector-shop.key"

start_shop() {  # name port extra-args... ; env comes from the caller
  local name=$1 port=$2; shift 2
  $PIN_SHOP "$BIN/immunizer-shop" --port "$port" "$@" > "$WORK/$name.log" 2>&1 & pids+=($!)
  wait_http "$port"
}
BROKER_PID=${pids[0]}
declare -A PID_OF PORT_OF
start_variant() {  # variant: a fresh shop process on a fresh port
  local v=$1 port
  port=$(free_port)
  case $v in
    baseline) start_shop baseline "$port" --no-sensor --no-effector;;
    agents) start_shop agents "$port";;
    agents-all) IMMUNIZER_SENSOR_CPU_BUDGET=1 start_shop agents-all "$port";;
  esac
  PID_OF[$v]=${pids[-1]}; PORT_OF[$v]=$port
}
stop_variant() { kill "${PID_OF[$1]}" 2>/dev/null || true; wait "${PID_OF[$1]}" 2>/dev/null || true; }

URL_PATH='/tienda1/publico/anadir.jsp?id=3&nombre=Vino+Rioja&precio=100&cantidad=55&B1=A%F1adir+al+carrito'
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, clock ticks
TCK=$(getconf CLK_TCK)
run() {  # variant port -> "requests/s  cpu-µs-per-request (shop + broker)"
  local v=$1 port=$2 s0 b0 s1 b1 out
  s0=$(cpu_ticks "${PID_OF[$v]}"); b0=$(cpu_ticks "$BROKER_PID")
  out=$($PIN_LOAD wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -H 'Cookie: JSESSIONID=1F767F17239C9B670A39E9B10C3825F4' \
      -H 'User-Agent: Mozilla/5.0 (compatible; Konqueror/3.5; Linux) KHTML/3.5.8 (like Gecko)' \
      "http://127.0.0.1:$port$URL_PATH")
  s1=$(cpu_ticks "${PID_OF[$v]}"); b1=$(cpu_ticks "$BROKER_PID")
  echo "$out" | awk -v ds=$((s1 - s0)) -v db=$((b1 - b0)) -v tck="$TCK" '
    /requests in/ {n = $1} /Requests\/sec/ {rps = $2}
    END {printf "%s %.2f\n", rps, (ds + db) * 1e6 / tck / n}'
}
declare -A results cpu paired
VARIANTS=(baseline agents agents-all)
for r in $(seq "$ROUNDS"); do
  # The order rotates from round to round.
  # Every round starts fresh shop processes (in that order too): one long-lived process can
  # sit 5-10% above or below another running identical code, which no number of rounds
  # averages out.
  order=()
  for k in 0 1 2; do order+=("${VARIANTS[$(( (k + r - 1) % 3 ))]}"); done
  if [ "$r" -gt 1 ]; then for v in "${VARIANTS[@]}"; do stop_variant "$v"; done; fi
  for v in "${order[@]}"; do start_variant "$v"; done
  sleep 1
  declare -A this_round=()
  for v in "${order[@]}"; do
    read -r rps us <<< "$(run "$v" "${PORT_OF[$v]}")"
    results[$v]="${results[$v]:-} $rps"; cpu[$v]="${cpu[$v]:-} $us"
    echo "round $r  $v  $rps req/s  $us CPU-us/request (shop + broker)"
    this_round[$v]=$rps
  done
  for v in agents agents-all; do paired[$v]="${paired[$v]:-} $(echo "${this_round[$v]} / ${this_round[baseline]}" | bc -l)"; done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
B=$(echo "${results[baseline]}" | median); A=$(echo "${results[agents]}" | median); F=$(echo "${results[agents-all]}" | median)
CB=$(echo "${cpu[baseline]}" | median); CA=$(echo "${cpu[agents]}" | median); CF=$(echo "${cpu[agents-all]}" | median)
echo
if [ "$PIN" = 1 ]; then where="shops on CPU 0, wrk/broker/execute on the others"; else where="2-core machine, load generator on the same cores"; fi
echo "shop under wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s, median of $ROUNDS rounds ($where)"
echo "capacity = baseline CPU per request / variant CPU per request (shop process + broker process)"
echo "paired = median over rounds of (variant req/s / baseline req/s of the same round)"
printf '%-12s %12s %8s %8s %14s %9s\n' variant "req/s" ratio paired "CPU-us/req" capacity
printf '%-12s %12.0f %8s %8s %14.2f %9s\n' baseline "$B" "1.000" "1.000" "$CB" "1.000"
printf '%-12s %12.0f %8.3f %8.3f %14.2f %9.3f\n' agents "$A" "$(echo "$A / $B" | bc -l)" "$(echo "${paired[agents]}" | median)" "$CA" "$(echo "$CB / $CA" | bc -l)"
printf '%-12s %12.0f %8.3f %8.3f %14.2f %9.3f\n' agents-all "$F" "$(echo "$F / $B" | bc -l)" "$(echo "${paired[agents-all]}" | median)" "$CF" "$(echo "$CB / $CF" | bc -l)"
curl -fs "http://127.0.0.1:${PORT_OF[agents]}/metrics" | grep -E '^immunizer_sensor_(records_sent_total|sample_rate|records_dropped_total\{.*sampled)' || true
curl -fs "http://127.0.0.1:${PORT_OF[agents-all]}/metrics" | grep -E '^immunizer_sensor_(records_sent_total|records_dropped_total)' | grep -v ' 0$' || true
