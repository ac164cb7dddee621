# Shared by the shell e2e tests (sourced, bash): a work folder, the processes they start, and
# the start-up of the stack as docs/integrate.md describes it. Usage:
#   source "$(dirname "$0")/../../tests/lib/stack.sh"   # path relative to the script
#   stack_init "$work"                 # fresh folder; every process of stack_start is stopped
#                                      # on exit (newest first, SIGTERM, SIGKILL after 20 s)
#   stack_up "$bin"                    # `immunizer up` on free ports; sets STACK_BASE (service
#                                      # i listens on STACK_BASE+i: 1 monitor .. 4 execute,
#                                      # +5 execute's gRPC), STACK_DASHBOARD_PORT, STACK_PORT (a
#                                      # further free port for the app), STACK_STATE, and exports
#                                      # IMMUNIZER_KAFKA_BOOTSTRAP and IMMUNIZER_EXECUTE_ADDRESS
#   stack_issue_effector "$bin" orders # an effector certificate for app "orders", then
#   stack_effector_env "$STACK_STATE" orders  # the IMMUNIZER_EFFECTOR_* variables of that app
#   stack_ops_env "$STACK_STATE"       # the IMMUNIZER_OPS_TLS_* variables of the operator CLI
#   stack_up_app "$bin" orders         # the three above for app "orders", IMMUNIZER_APP=orders
#   stack_example_up "$bin" "$work" orders  # an example's live test: stack_init, cd to the
#                                      # work folder, stack_up_app
#   stack_start app.log "$bin/app" --port "$STACK_PORT"   # in the background, output in work/
#   stack_start_app "$bin" orders '^orders service' "$bin/app" --port "$STACK_PORT"
#                                      # an example service (work/service.log): waits for its
#                                      # start-up line, then (stack_ops_env) for its effector
#   wait_for "$work/app.log" '^listening' 30 || fail "the app did not start"
#   retry 10 "$bin/immunizer" list     # a command every 0.1 s until it succeeds (10 s at most)
#   metric http://127.0.0.1:PORT/metrics NAME   # the sum of a metric's samples
#   stack_attack_with_bystander "$bin" client   # attacker mallory blocked, a bystander never
#   stack_expect_one_incident mallory  # the dashboard lists exactly one incident for the
#                                      # principal, session:mallory (waits up to 20 s)
# fail MESSAGE prints the message and the tail of every work/*.log and exits 1.

stack_work=""
stack_pids=()

stack_stop_all() {
  local i j p
  for ((i = ${#stack_pids[@]} - 1; i >= 0; i--)); do kill -TERM "${stack_pids[i]}" 2>/dev/null || true; done
  for p in "${stack_pids[@]}"; do
    for ((j = 0; j < 200; j++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}

# stack_init WORK_DIR: an empty WORK_DIR; the processes started later are stopped on exit.
stack_init() {
  stack_work=$1
  rm -rf "$stack_work"
  mkdir -p "$stack_work"
  stack_pids=()
  trap stack_stop_all EXIT
}

fail() {
  echo "FAIL: $*" >&2
  local f
  for f in "$stack_work"/*.log; do [[ -e $f ]] && { echo "--- $f"; tail -n 25 "$f"; }; done >&2
  exit 1
}

# stack_start LOG COMMAND...: COMMAND in the background, its output in WORK_DIR/LOG; its pid
# in STACK_PID.
stack_start() {
  local log=$1
  shift
  "$@" >"$stack_work/$log" 2>&1 &
  STACK_PID=$!
  stack_pids+=("$STACK_PID")
}

# wait_for FILE REGEX SECONDS: whether a line of FILE matches REGEX within SECONDS.
wait_for() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -Eq "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# retry SECONDS COMMAND...: COMMAND (output discarded) every 0.1 s until it succeeds; its
# status the last time.
retry() {
  local i n=$(($1 * 10))
  shift
  for ((i = 1; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  "$@" >/dev/null 2>&1
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

metric() {  # URL NAME: the sum of a metric's samples
  curl -sf "$1" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}

# stack_up BIN_DIR [ARGS of immunizer up...]: the embedded broker and the five services on a
# port base whose +1..+8 are free (below the ephemeral range); waits until they are up.
stack_up() {
  local bin=$1
  shift
  read -r STACK_BASE STACK_DASHBOARD_PORT STACK_PORT < <(python3 - <<'EOF'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    b = random.randrange(20000, 30000, 10)
    if all(free(b + k) for k in range(1, 9)):
        print(b, b + 7, b + 8); break
EOF
  )
  [[ -n ${STACK_PORT:-} ]] || fail "no free ports"
  STACK_STATE=$stack_work/state
  stack_start up.log "$bin/immunizer" up --port-base "$STACK_BASE" --dashboard-port "$STACK_DASHBOARD_PORT" \
    --state-dir "$STACK_STATE" "$@"
  wait_for "$stack_work/up.log" 'Immunizer is up' 120 || fail "immunizer up did not come up"
  IMMUNIZER_KAFKA_BOOTSTRAP=$(sed -n 's/.*Kafka: \([^ ]*\).*/\1/p' "$stack_work/up.log" | head -n 1)
  [[ -n $IMMUNIZER_KAFKA_BOOTSTRAP ]] || fail "no Kafka address in up's output"
  export IMMUNIZER_KAFKA_BOOTSTRAP IMMUNIZER_EXECUTE_ADDRESS=127.0.0.1:$((STACK_BASE + 5))
}

# stack_issue_effector BIN_DIR APP: an effector certificate for APP in STACK_STATE (execute
# accepts an effector only under its certificate's name).
stack_issue_effector() {
  "$1/immunizer" pki --state-dir "$STACK_STATE" issue effector "$2" >/dev/null || fail "pki issue effector $2"
}

# stack_effector_env STATE_DIR APP: the effector's variables for APP's certificate.
stack_effector_env() {
  export IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS=$1/keys/execute.pub IMMUNIZER_EFFECTOR_TLS_CA_FILE=$1/tls/ca.crt
  export IMMUNIZER_EFFECTOR_TLS_CERT_FILE=$1/tls/effector-$2.crt IMMUNIZER_EFFECTOR_TLS_KEY_FILE=$1/tls/effector-$2.key
}

# stack_ops_env STATE_DIR: the operator CLI's certificate (immunizer list/block/unblock).
stack_ops_env() {
  export IMMUNIZER_OPS_TLS_CA_FILE=$1/tls/ca.crt IMMUNIZER_OPS_TLS_CERT_FILE=$1/tls/operator-cli.crt
  export IMMUNIZER_OPS_TLS_KEY_FILE=$1/tls/operator-cli.key
}

# stack_up_app BIN_DIR APP: stack_up, then an effector certificate for APP, the effector's
# variables for it (stack_effector_env) and IMMUNIZER_APP=APP exported, as docs/integrate.md
# sets up an app before starting it.
stack_up_app() {
  stack_up "$1"
  stack_issue_effector "$1" "$2"
  stack_effector_env "$STACK_STATE" "$2"
  export IMMUNIZER_APP=$2
}

# stack_example_up BIN_DIR WORK_DIR APP: how an example's live test starts: a fresh WORK_DIR
# (stack_init) as the current folder, then stack_up_app BIN_DIR APP.
stack_example_up() {
  stack_init "$2"
  cd "$2"
  stack_up_app "$1" "$3"
}

# stack_start_app BIN_DIR APP BANNER COMMAND...: the instrumented service COMMAND in the
# background (output in WORK_DIR/service.log); waits until a line matches BANNER (30 s), sets
# the operator CLI's variables (stack_ops_env) and waits until execute lists an effector of APP
# (30 s).
stack_start_app() {
  local bin=$1 app=$2 banner=$3
  shift 3
  stack_start service.log "$@"
  wait_for "$stack_work/service.log" "$banner" 30 || fail "the service did not start"
  stack_ops_env "$STACK_STATE"
  retry 30 stack_app_connected "$bin" "$app" || fail "the service's effector did not connect to execute"
}
stack_app_connected() { "$1/immunizer" list 2>/dev/null | grep -q "^  $2/"; }

# stack_attack_with_bystander BIN_DIR CLIENT: the example's load client CLIENT (a command or
# shell function taking the client's flags) as a bystander session (normal, 10/s for 45 s) and
# at the same time as attacker session mallory (attack, 20/s, until denied or 40 s); fails
# unless mallory was denied, the bystander never, and execute lists a block on session
# mallory. Their result lines in WORK_DIR/attacker.log and bystander.log.
stack_attack_with_bystander() {
  local bin=$1 client=$2 by
  "$client" --session bystander --ip 198.51.100.20 --kind normal --count 100000 --rate 10 --seconds 45 \
    --seed 99 >"$stack_work/bystander.log" &
  by=$!
  "$client" --session mallory --ip 203.0.113.7 --kind attack --count 2000 --rate 20 --seconds 40 \
    --stop-when-denied >"$stack_work/attacker.log" || fail "attacker client"
  wait "$by" || fail "bystander client"
  echo "attacker: $(cat "$stack_work/attacker.log")"
  echo "bystander: $(cat "$stack_work/bystander.log")"
  grep -Eq 'denied=[1-9]' "$stack_work/attacker.log" || fail "the attacker was never denied (no automatic block)"
  grep -q ' denied=0 ' "$stack_work/bystander.log" || fail "the bystander was denied"
  "$bin/immunizer" list >"$stack_work/list.log"
  grep -Eq 'block_principal session=mallory' "$stack_work/list.log" ||
    fail "no active block on session mallory: $(cat "$stack_work/list.log")"
}

# The dashboard (of stack_up) lists exactly one incident, for session NAME: prints it, or fails.
stack_expect_one_incident() {
  local name=$1 creds out="$stack_work/incidents.json" i
  creds=$(cat "$STACK_STATE/dashboard.credentials")
  for ((i = 0; i < 100; i++)); do
    curl -sf -u "$creds" "http://127.0.0.1:$STACK_DASHBOARD_PORT/api/incidents?principal=$name" >"$out" &&
      python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["total"] >= 1 else 1)' \
        "$out" && break
    sleep 0.2
  done
  python3 - "$out" "$name" <<'EOF' || fail "dashboard incidents for $name: $(cat "$out")"
import json, sys
j, name = json.load(open(sys.argv[1])), sys.argv[2]
keys = [i["principal_key"] for i in j["incidents"]]
assert keys == ["session:" + name], keys
i = j["incidents"][0]
print(f"dashboard: incident {i['id']} session:{name}, {i['alarms']} alarms, {i['actions']} actions, severity {i['severity']}")
EOF
}
