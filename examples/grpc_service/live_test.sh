#!/usr/bin/env bash
# Live test of examples/grpc_service, following docs/integrate.md step by step: `immunizer up`
# (embedded broker and the five services), an effector certificate for the app, the service
# started with the documented IMMUNIZER_* variables, normal Order RPCs from several sessions
# until analyze has learnt the method, then
#   1. automatic: an attacker session sends attack RPCs (SQL injection, XSS, traversal, ...)
#      until the pipeline (monitor -> analyze -> plan -> execute -> the effector) blocks it:
#      PERMISSION_DENIED, while a bystander session sending normal orders at the same time is
#      never denied, and the dashboard shows one incident for the attacker;
#   2. manual: `immunizer block --session` of another session denies it within seconds and
#      `immunizer unblock` lets it through again.
#   live_test.sh BIN_DIR WORK_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/lib/stack.sh"

# --- 1. Start the pipeline --------------------------------------------------------------------
# In the work folder, with the app's effector certificate and IMMUNIZER_EFFECTOR_* variables.
stack_example_up "$1" "$2" orders
bin=$1 work=$2 base=$STACK_BASE dash=$STACK_DASHBOARD_PORT svc=$STACK_PORT S=$STACK_STATE

# --- 2./3. Run the instrumented service with the documented variables ------------------------
export IMMUNIZER_PRINCIPAL_SESSION_HEADERS=x-session
# Every client of this test is on loopback: as behind a proxy, each names its own address in
# x-forwarded-for, honoured from 127.0.0.1 only (docs/integrate.md, "How principals are chosen").
export IMMUNIZER_PRINCIPAL_TRUSTED_PROXIES=127.0.0.1/32
# The toy service does little besides recording, so at the test's 400 calls/s the sensor's CPU
# budget (2% of the process) may sample its calls away (two runs in a row at 3b5f546: analyze
# scored nothing after 24,000 calls, its model never left the grace period): record every call,
# as the httplib test does (docs/integrate.md, "The httplib example", explains the budget).
export IMMUNIZER_SENSOR_CPU_BUDGET=0
stack_start_app "$bin" orders '^orders service' "$bin/immunizer-grpc-service" --port "$svc"

client() { "$bin/immunizer-grpc-client" --target "127.0.0.1:$svc" "$@"; }
analyze=http://127.0.0.1:$((base + 2))/metrics

# Normal orders from 30 sessions until analyze scores the method (grace period, then fit).
sessions=0
for ((round = 0; round < 40; round++)); do
  for ((k = 0; k < 10; k++)); do
    client --session "user$((sessions % 30))" --ip "10.1.$((sessions % 3)).$((1 + sessions % 30))" \
      --seed "$sessions" --kind normal --count 60 --rate 400 \
      >>"$work/normal.log"
    sessions=$((sessions + 1))
  done
  scored=$(metric "$analyze" immunizer_analyze_vectors_scored_total)
  ((${scored%.*} > 0)) && break
  sleep 1
done
((${scored%.*} > 0)) || fail "analyze scored nothing after $((sessions * 60)) normal RPCs"
grep -q 'denied=[1-9]' "$work/normal.log" && fail "normal traffic was denied while learning"
echo "learning: $((sessions * 60)) normal RPCs from 30 sessions; analyze scoring ($scored scored)"

# --- automatic: an attacker blocked by the pipeline, a bystander never -------------------------
stack_attack_with_bystander "$bin" client
# The dashboard: one incident for the attacker's session.
stack_expect_one_incident mallory

# --- manual: immunizer block / unblock ---------------------------------------------------------
client --session carol --ip 198.51.100.30 --kind normal --count 5 --rate 50 | grep -q ' denied=0 ' || fail "carol denied before the block"
id=$("$bin/immunizer" block --session carol --ttl-ms 60000 --reason "live test") || fail "immunizer block"
carol_gets() {  # WORD: carol's next order is answered with WORD=1 (ok, denied)
  [[ $(client --session carol --ip 198.51.100.30 --kind normal --count 1) == *" $1=1 "* ]]
}
retry 10 carol_gets denied || fail "carol not denied after immunizer block"
"$bin/immunizer" unblock "$id" >/dev/null || fail "immunizer unblock"
retry 10 carol_gets ok || fail "carol still denied after immunizer unblock"
echo "manual: immunizer block --session carol denied her, unblock let her through"
echo "OK"
