#!/usr/bin/env bash
# Live test of examples/httplib_service (the notes service), following docs/integrate.md step
# by step: `immunizer up` (embedded broker and the five services), an effector certificate for
# the app (`notes`), the service started with the documented IMMUNIZER_* variables, normal
# requests (GET /notes/:id, GET /search?q=, POST /notes with JSON) from 30 sessions until
# analyze has learnt every model key of the app, then
#   1. automatic: an attacker session sends attack requests (SQL injection, XSS, traversal,
#      command injection, oversized and malformed values, tampered parameters) until the
#      pipeline (monitor -> analyze -> plan -> execute -> the effector) blocks it: 403 from the
#      middleware, while a bystander session sending normal requests at the same time is never
#      denied, and the dashboard shows one incident for the attacker;
#   2. manual: `immunizer block --session` of another session denies it (curl, as in the
#      docs) within seconds and `immunizer unblock` lets it through again.
#   live_test.sh BIN_DIR WORK_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/lib/stack.sh"

# --- 1. Start the pipeline --------------------------------------------------------------------
# In the work folder, with the app's effector certificate and IMMUNIZER_EFFECTOR_* variables.
stack_example_up "$1" "$2" notes
bin=$1 work=$2 base=$STACK_BASE dash=$STACK_DASHBOARD_PORT svc=$STACK_PORT S=$STACK_STATE
echo "immunizer up at ${SECONDS}s"

# --- 2./3. Run the instrumented service with the documented variables ------------------------
# The session is the JSESSIONID cookie (the default of IMMUNIZER_PRINCIPAL_SESSION_COOKIES).
# Every client of this test is on loopback: as behind a proxy, each names its own address in
# X-Forwarded-For, honoured from 127.0.0.1 only (docs/integrate.md, "How principals are chosen").
export IMMUNIZER_PRINCIPAL_TRUSTED_PROXIES=127.0.0.1/32
# The toy service does little besides recording, so under the test's 400 requests/s the sensor's
# CPU budget (2% of the process) would sample its calls (records seen by analyze: 4,730 of
# 12,000 in one run, the route models never left their grace period): record every call.
export IMMUNIZER_SENSOR_CPU_BUDGET=0
stack_start_app "$bin" notes '^notes service' "$bin/immunizer-httplib-service" --port "$svc"

client() { "$bin/immunizer-httplib-client" --port "$svc" "$@"; }
sample() {  # URL NAME LABELS: the value of one sample of a metric
  curl -sf "$1" | awk -v k="$2{$3}" '$1 == k { s += $2 } END { print s + 0 }'
}
analyze=http://127.0.0.1:$((base + 2))/metrics

# Normal requests from 30 sessions until analyze scores every model key of the app: the outer
# http.request and the three routes (each learns analyze.grace_records vectors first). A round
# of 600 requests goes out once analyze has seen 90% of the records sent so far (two per
# request), or 30 s after the last one: on a loaded machine the pipeline lags, and piling up
# requests it has not read only delays the test.
sessions=0 sent=0 last_round=-100 deadline=$((SECONDS + 300))
while ((SECONDS < deadline)); do
  active=$(sample "$analyze" immunizer_analyze_models 'state="active"')
  learning=$(sample "$analyze" immunizer_analyze_models 'state="learning"')
  scored=$(metric "$analyze" immunizer_analyze_vectors_scored_total)
  seen=$(($(metric "$analyze" immunizer_analyze_vectors_learning_total | cut -d. -f1) + ${scored%.*}))
  ((${active%.*} >= 4 && ${learning%.*} == 0 && ${scored%.*} > 0)) && break
  if ((seen * 10 >= sent * 2 * 9 || SECONDS - last_round >= 30)); then
    for ((k = 0; k < 10; k++)); do
      client --session "user$((sessions % 30))" --ip "10.1.$((sessions % 3)).$((1 + sessions % 30))" \
        --seed "$sessions" --kind normal --count 60 --rate 400 >>"$work/normal.log"
      sessions=$((sessions + 1)) sent=$((sent + 60))
    done
    last_round=$SECONDS
  else
    sleep 1
  fi
done
((${active%.*} >= 4 && ${learning%.*} == 0)) ||
  fail "analyze: $active model keys active, $learning learning after $sent normal requests ($seen vectors)"
grep -Eq 'denied=[1-9]' "$work/normal.log" && fail "normal traffic was denied while learning"
grep -Eq 'other=[1-9]' "$work/normal.log" && fail "normal requests failed: $(grep -E 'other=[1-9]' "$work/normal.log" | head -n 3)"
echo "learning: $sent normal requests from 30 sessions; analyze: $active model keys scoring ($seen vectors, $scored scored) at ${SECONDS}s"

# --- automatic: an attacker blocked by the pipeline, a bystander never -------------------------
stack_attack_with_bystander "$bin" client
grep -q ' other=0 ' "$work/bystander.log" || fail "the bystander's requests failed"
# The block holds for the session's next requests, whatever they carry.
code=$(curl -s -o /dev/null -w '%{http_code}' -b JSESSIONID=mallory -H 'X-Forwarded-For: 203.0.113.7' \
  "http://127.0.0.1:$svc/search?q=rioja")
[[ $code == 403 ]] || fail "mallory's next normal request answered $code, not 403"
# The dashboard: one incident for the attacker's session.
stack_expect_one_incident mallory
creds=$(cat "$S/dashboard.credentials")
curl -sf -u "$creds" "http://127.0.0.1:$dash/api/incidents?principal=bystander" >"$work/bystander-incidents.json" ||
  fail "dashboard incidents for the bystander"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["total"] == 0 else 1)' \
  "$work/bystander-incidents.json" || echo "note: the bystander has an (unblocked) incident: $(cat "$work/bystander-incidents.json")"

# --- manual: immunizer block / unblock, checked with curl as in docs/integrate.md --------------
status() {  # PATH: carol's answer
  curl -s -o /dev/null -w '%{http_code}' -b JSESSIONID=carol -H 'X-Forwarded-For: 198.51.100.30' \
    "http://127.0.0.1:$svc$1"
}
[[ $(status '/search?q=rioja') == 200 ]] || fail "carol denied before the block"
id=$("$bin/immunizer" block --session carol --ttl-ms 60000 --reason "live test") || fail "immunizer block"
carol_gets() { [[ $(status /notes/7) == "$1" ]]; }  # CODE: carol's next answer is CODE
retry 10 carol_gets 403 || fail "carol not denied after immunizer block ($(status /notes/7))"
"$bin/immunizer" unblock "$id" >/dev/null || fail "immunizer unblock"
retry 10 carol_gets 200 || fail "carol still denied after immunizer unblock ($(status /notes/7))"
echo "manual: immunizer block --session carol denied her (403), unblock let her through (200) at ${SECONDS}s"
echo "OK"
