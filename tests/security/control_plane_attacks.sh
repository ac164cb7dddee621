#!/bin/bash
# The control-plane attacks of issue 10, tried as an attacker on the network would, against
# the release binaries started the way users start them (`immunizer up`, its generated state
# folder). Each line says what the attack got; any attack that succeeds fails the test.
#   control_plane_attacks.sh BIN_DIR WORK_DIR [PORT_BASE [FORGE_PLAN]]
# Needs curl. FORGE_PLAN (tests/security/forge_plan.cpp) writes forged Plans to the plans
# topic as anyone with Kafka write access could. The forged-effector-hello case is covered by
# ControlServerTest.ForgedEffectorHelloGetsNothing (it needs a gRPC client this script lacks).
set -uo pipefail
BIN="$1"; WORK="$2"; BASE="${3:-23500}"; FORGE="${4:-}"
DASH=$((BASE + 9)); GRPC=$((BASE + 5)); EXEC_HTTP=$((BASE + 4))
rm -rf "$WORK"; mkdir -p "$WORK"
STATE="$WORK/state"
"$BIN/immunizer" up --port-base "$BASE" --dashboard-port "$DASH" --state-dir "$STATE" > "$WORK/up.log" 2>&1 &
up=$!
cleanup() { for p in "${slow_pids[@]:-}"; do kill "$p" 2>/dev/null; done; kill -INT $up 2>/dev/null; wait $up 2>/dev/null; }
trap cleanup EXIT
for _ in $(seq 1 900); do
  grep -q "Immunizer is up" "$WORK/up.log" && break
  kill -0 $up 2>/dev/null || { echo "FAIL immunizer up exited:"; tail -30 "$WORK/up.log"; exit 1; }
  sleep 0.1
done
grep -q "Immunizer is up" "$WORK/up.log" || { echo "FAIL not up within 90 s"; tail -30 "$WORK/up.log"; exit 1; }

fails=0
D="http://127.0.0.1:$DASH"
# expect NAME WANTED_CODES ACTUAL_CODE: an attack is refused when its HTTP status is one wanted.
expect() {
  if [[ " $2 " == *" $3 "* ]]; then echo "refused  $1 -> HTTP $3"; else echo "FAIL     $1 -> HTTP $3 (wanted one of: $2)"; fails=$((fails + 1)); fi
}
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }

# 1. The dashboard's block/unblock/feedback without credentials, with a cross-site Origin and
#    a text/plain body (a CSRF-shaped form post), and with credentials but no CSRF token.
body='{"field":"ip","value":"203.0.113.9","ttl_ms":99999999999}'
expect "POST /api/block, no credentials, text/plain, Origin evil.example" "401 403 415" \
  "$(code -XPOST "$D/api/block" -H 'Content-Type: text/plain' -H 'Origin: http://evil.example' -d "$body")"
expect "POST /api/unblock, no credentials" "401 403" \
  "$(code -XPOST "$D/api/unblock" -H 'Content-Type: application/json' -d '{"action_id":"x"}')"
expect "POST /api/feedback, no credentials, analyst in the body" "401 403" \
  "$(code -XPOST "$D/api/feedback" -H 'Content-Type: application/json' -d '{"alarm_id":"a","verdict":"false_positive","analyst":"admin"}')"
creds=$(cat "$STATE/dashboard.credentials")
jar="$WORK/cookies"
login=$(code -c "$jar" -XPOST "$D/api/login" -H 'Content-Type: application/json' -H "Origin: $D" \
  -d "{\"user\":\"${creds%%:*}\",\"password\":\"${creds#*:}\"}")
[[ "$login" == 200 ]] || { echo "FAIL the operator cannot sign in (HTTP $login)"; fails=$((fails + 1)); }
expect "POST /api/block with the session cookie but no CSRF token" "403" \
  "$(code -b "$jar" -XPOST "$D/api/block" -H 'Content-Type: application/json' -H "Origin: $D" -d "$body")"
expect "POST /api/block with the session cookie from Origin evil.example" "403" \
  "$(code -b "$jar" -XPOST "$D/api/block" -H 'Content-Type: application/json' -H 'Origin: http://evil.example' -d "$body")"
expect "POST /api/block, operator credentials, text/plain body" "403 415" \
  "$(code -u "$creds" -XPOST "$D/api/block" -H 'Content-Type: text/plain' -d "$body")"
expect "GET /api/alarms without credentials" "401" "$(code "$D/api/alarms")"

# 2. execute's gRPC: plaintext, then TLS without a client certificate, then with a
#    certificate of the wrong role (an effector's calling Operations).
tls="$STATE/tls"
out=$("$BIN/immunizer" list --execute "127.0.0.1:$GRPC" 2>&1); rc=$?
if ((rc != 0)); then echo "refused  plaintext gRPC Operations/ListActive -> exit $rc: $(echo "$out" | tail -1)";
else echo "FAIL     plaintext gRPC Operations/ListActive answered: $out"; fails=$((fails + 1)); fi
out=$("$BIN/immunizer" block --execute "127.0.0.1:$GRPC" --ip 203.0.113.9 2>&1); rc=$?
if ((rc != 0)); then echo "refused  plaintext gRPC Operations/Block -> exit $rc: $(echo "$out" | tail -1)";
else echo "FAIL     plaintext gRPC Operations/Block succeeded: $out"; fails=$((fails + 1)); fi
eff_cert=$(ls "$tls"/effector*.crt 2>/dev/null | head -1)
if [[ -n "$eff_cert" ]]; then
  out=$("$BIN/immunizer" list --execute "127.0.0.1:$GRPC" --tls-ca "$tls/ca.crt" --tls-cert "$eff_cert" \
        --tls-key "${eff_cert%.crt}.key" 2>&1); rc=$?
  if ((rc != 0)) && grep -q "gRPC code 7" <<< "$out"; then echo "refused  Operations/ListActive with an effector's certificate -> $(echo "$out" | tail -1)";
  else echo "FAIL     Operations/ListActive with an effector's certificate (exit $rc): $out"; fails=$((fails + 1)); fi
fi
# The positive controls: the operator, authenticated, may block (dashboard API with Basic
# auth on loopback) and list (ops CLI with the operator certificate) - the refusals above are
# not a broken control plane.
c=$(code -u "$creds" -XPOST "$D/api/block" -H 'Content-Type: application/json' -d '{"field":"ip","value":"203.0.113.7","ttl_ms":60000}')
if [[ "$c" == 200 ]]; then echo "allowed  the operator's block through the dashboard API -> HTTP 200";
else echo "FAIL     the operator's block through the dashboard API -> HTTP $c"; fails=$((fails + 1)); fi
# Bounded even for the operator: a TTL over execute.max_ttl_ms (30 days) is refused, not
# clamped or accepted (the 99999999999 ms of the original attack).
expect "POST /api/block, operator credentials, ttl_ms 99999999999" "400" \
  "$(code -u "$creds" -XPOST "$D/api/block" -H 'Content-Type: application/json' -d "$body")"
out=$("$BIN/immunizer" block --execute "127.0.0.1:$GRPC" --tls-ca "$tls/ca.crt" --tls-cert "$tls/operator-cli.crt" \
      --tls-key "$tls/operator-cli.key" --ip 203.0.113.9 --ttl-ms 99999999999 2>&1); rc=$?
if ((rc != 0)) && grep -q "exceeds execute.max_ttl_ms" <<< "$out"; then echo "refused  immunizer block --ttl-ms 99999999999 -> $(echo "$out" | tail -1)";
else echo "FAIL     immunizer block --ttl-ms 99999999999 (exit $rc): $out"; fails=$((fails + 1)); fi
out=$("$BIN/immunizer" list --execute "127.0.0.1:$GRPC" --tls-ca "$tls/ca.crt" --tls-cert "$tls/operator-cli.crt" --tls-key "$tls/operator-cli.key" 2>&1); rc=$?
if ((rc == 0)) && grep -q "203.0.113.7" <<< "$out"; then echo "allowed  immunizer list with the operator certificate shows that block";
else echo "FAIL     immunizer list with the operator certificate (exit $rc): $out"; fails=$((fails + 1)); fi
refused=$(curl -s "http://127.0.0.1:$EXEC_HTTP/metrics" | grep '^immunizer_execute_grpc_refused_total' | tr '\n' ' ')
echo "         execute counted: ${refused:-nothing}"

# 2b. The Kafka writer: forged Plans on the plans topic (unsigned DISABLE_CALL http.request,
#     a block signed by a key nobody trusts, a signed plan altered afterwards, garbage).
if [[ -n "$FORGE" ]]; then
  kafka=$(sed -n 's/.*Immunizer is up\.  Kafka: \([^ ]*\).*/\1/p' "$WORK/up.log" | head -1)
  refused_before=$(curl -s "http://127.0.0.1:$EXEC_HTTP/metrics" | awk '/^immunizer_execute_plans_refused_total/ {s += $2} END {print s + 0}')
  if out=$("$FORGE" --bootstrap "$kafka" --ip 203.0.113.99 2>&1); then
    refused_after=$refused_before
    for _ in $(seq 1 100); do  # execute reads them within its poll interval; at most 10 s
      refused_after=$(curl -s "http://127.0.0.1:$EXEC_HTTP/metrics" | awk '/^immunizer_execute_plans_refused_total/ {s += $2} END {print s + 0}')
      (( ${refused_after%.*} - ${refused_before%.*} >= 3 )) && break
      sleep 0.1
    done
    out=$("$BIN/immunizer" list --execute "127.0.0.1:$GRPC" --tls-ca "$tls/ca.crt" --tls-cert "$tls/operator-cli.crt" --tls-key "$tls/operator-cli.key" 2>&1)
    if (( ${refused_after%.*} - ${refused_before%.*} >= 3 )) && ! grep -q -E "203\.0\.113\.99|http\.request" <<< "$out"; then
      echo "refused  3 forged Plans on the plans topic: none enforced, execute dead-lettered $(( ${refused_after%.*} - ${refused_before%.*} )) ($(curl -s "http://127.0.0.1:$EXEC_HTTP/metrics" | grep '^immunizer_execute_plans_refused_total' | tr '\n' ' '))"
    else
      echo "FAIL     forged Plans on the plans topic: refused counter $refused_before -> $refused_after; active actions: $out"; fails=$((fails + 1))
    fi
  else
    echo "FAIL     could not write the forged Plans: $out"; fails=$((fails + 1))
  fi
fi

# 3. A 50 MB body to the dashboard and to a service's /metrics port; 10 slow-header sockets.
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
dash_pid=$(pgrep -f "immunizer-dashboard" | head -1)
before=$(rss "$dash_pid")
head -c 50000000 /dev/zero > "$WORK/big"
c=$(code -u "$creds" -XPOST "$D/api/feedback" -H 'Content-Type: application/json' --data-binary @"$WORK/big")
after=$(rss "$dash_pid")
expect "50 MB body to POST /api/feedback (dashboard RSS ${before} -> ${after} kB)" "413 400" "$c"
(( after - before < 8192 )) || { echo "FAIL     the dashboard grew by $(( (after - before) / 1024 )) MB on a refused body"; fails=$((fails + 1)); }
expect "50 MB body to execute's /metrics" "413 405 404 400" \
  "$(code -XPOST "http://127.0.0.1:$EXEC_HTTP/metrics" --data-binary @"$WORK/big")"
slow_pids=()
for _ in $(seq 1 10); do
  (exec 3<>"/dev/tcp/127.0.0.1/$EXEC_HTTP"; printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n' >&3; sleep 30) &
  slow_pids+=($!)
done
sleep 0.5
t0=$(date +%s%N)
c=$(code --max-time 1 "http://127.0.0.1:$EXEC_HTTP/healthz")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [[ "$c" == 200 ]]; then echo "refused  10 slow-header sockets: /healthz still answered in $ms ms";
else echo "FAIL     10 slow-header sockets: /healthz answered HTTP $c after $ms ms"; fails=$((fails + 1)); fi

# 4. Listeners: nothing beyond loopback by default.
wide=$(ss -ltnH 2>/dev/null | awk '{print $4}' | grep -E ":($BASE|$((BASE+1))|$((BASE+2))|$((BASE+3))|$EXEC_HTTP|$GRPC|$DASH)$" | grep -vE '^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]|\[::1\]):' || true)
if [[ -z "$wide" ]]; then echo "refused  listeners bound beyond loopback: none";
else echo "FAIL     listeners beyond loopback: $wide"; fails=$((fails + 1)); fi

echo "control-plane attacks: $fails succeeded"
exit $((fails > 0))
