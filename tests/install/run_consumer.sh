#!/usr/bin/env bash
# Out-of-tree consumer test. MODE install: `cmake --install` of BUILD into a temporary prefix;
# MODE deb: the .deb packages CPack makes from BUILD, unpacked with dpkg -x into a temporary
# root. Then, against that tree only: a separate CMake project (tests/install/consumer) with
# find_package(Immunizer CONFIG REQUIRED) links both agents (shared, static, C), the C
# example is also built with the C compiler and pkg-config alone, and each program runs
# against the installed embedded broker and execute: its records must reach the calls topic
# and a block issued with the installed `immunizer block` must reach its effector.
#   run_consumer.sh MODE BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
mode=$1 build=$2 src=$3 work=$4
source "$(dirname "${BASH_SOURCE[0]}")/../lib/stack.sh"
stack_init "$work"

case $mode in
  install)
    cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
    prefix=$work/prefix
    ;;
  deb)
    # dpkg-shlibdeps (the packages' Depends) takes minutes on a loaded machine and is not
    # what this test checks; release packages keep it (cmake/Install.cmake).
    cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/debs" -D CPACK_DEBIAN_PACKAGE_SHLIBDEPS=OFF \
      >"$work/cpack.log" 2>&1 || fail "cpack"
    for pkg in immunizer-agents immunizer-agents-dev immunizer-services; do
      deb=$(ls "$work"/debs/${pkg}_*.deb 2>/dev/null | head -n 1)
      [[ -n $deb ]] || fail "no $pkg package in $work/debs"
      dpkg-deb --field "$deb" Package Version Depends | sed "s|^|$pkg: |"
      dpkg -x "$deb" "$work/root"
    done
    prefix=$work/root/usr
    ;;
  *) echo "usage: $0 install|deb BUILD_DIR SOURCE_DIR WORK_DIR" >&2; exit 2 ;;
esac

config=$(find "$prefix" -name ImmunizerConfig.cmake | head -n 1)
[[ -n $config ]] || fail "no ImmunizerConfig.cmake under $prefix"
libdir=$(dirname "$(dirname "$(dirname "$config")")")
for f in "$libdir"/libimmunizer-sensor.so.* "$libdir"/libimmunizer-effector.a "$libdir/pkgconfig/immunizer-sensor.pc" \
         "$libdir/pkgconfig/immunizer-effector.pc" "$prefix/include/immunizer/effector.h" \
         "$prefix/include/immunizer/version.hpp" "$prefix/bin/immunizer-execute"; do
  [[ -e $f ]] || fail "missing $f"
done
readelf -d "$libdir/libimmunizer-effector.so" | grep -q "SONAME.*libimmunizer-effector.so.[0-9]" || fail "no SONAME"

# --- build the consumers against the installed tree only ------------------------------------
cmake -S "$src/tests/install/consumer" -B "$work/consumer" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$work/consumer-configure.log" 2>&1 ||
  fail "consumer configure"
grep -q "Immunizer .* from $prefix" "$work/consumer-configure.log" || fail "Immunizer not found in $prefix"
cmake --build "$work/consumer" -j2 >"$work/consumer-build.log" 2>&1 || fail "consumer build"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c99 -o "$work/c_pkgconfig" "$src/examples/c_effector/main.c" \
  $(pkg-config --cflags --libs immunizer-sensor immunizer-effector) >"$work/pkgconfig-build.log" 2>&1 ||
  fail "C example with pkg-config"
[[ $(pkg-config --modversion immunizer-effector) == "$(sed -n 's/^#define IMMUNIZER_VERSION "\(.*\)"/\1/p' "$prefix/include/immunizer/version.hpp")" ]] ||
  fail "pkg-config version differs from version.hpp"

# --- run them against the installed broker and execute ---------------------------------------
bin=$prefix/bin
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
stack_start broker.log "$bin/immunizer" broker
wait_for "$work/broker.log" '^bootstrap=' 30 || fail "broker did not start"
export IMMUNIZER_KAFKA_BOOTSTRAP=$(sed -n 's/^bootstrap=//p' "$work/broker.log" | head -n 1)
grpc_port=$(free_port)
export IMMUNIZER_EXECUTE_ADDRESS=127.0.0.1:$grpc_port
# Keys and certificates as `immunizer up` makes them: mutual TLS, Ed25519 directive and plan keys.
S=$work/state
"$bin/immunizer" pki --state-dir "$S" init --effector consumer >/dev/null || fail "immunizer pki init"
export IMMUNIZER_EXECUTE_PLAN_PUBLIC_KEYS=$S/keys/plan.pub IMMUNIZER_EXECUTE_DIRECTIVE_SIGNING_KEY_FILE=$S/keys/execute.key
export IMMUNIZER_EXECUTE_TLS_CA_FILE=$S/tls/ca.crt IMMUNIZER_EXECUTE_TLS_CERT_FILE=$S/tls/execute-execute.crt
export IMMUNIZER_EXECUTE_TLS_KEY_FILE=$S/tls/execute-execute.key
stack_ops_env "$S"
stack_effector_env "$S" consumer
http_port=$(free_port)
IMMUNIZER_EXECUTE_GRPC_LISTEN=127.0.0.1:$grpc_port IMMUNIZER_HTTP_LISTEN=127.0.0.1 IMMUNIZER_HTTP_PORT=$http_port \
  stack_start execute.log "$bin/immunizer-execute"
retry 30 "$bin/immunizer" list || fail "execute not answering at $IMMUNIZER_EXECUTE_ADDRESS"

# `immunizer status`: execute ready, its loss counters and version; a dead port is reported.
execute_status() { "$bin/immunizer" status --service execute=http://127.0.0.1:$http_port >"$work/status.log" 2>&1; }
retry 10 execute_status || true
grep -Eq "^execute +ready .* lag [0-9]+ .*version [0-9]" "$work/status.log" || fail "immunizer status: $(cat "$work/status.log")"
if "$bin/immunizer" status --service gone=http://127.0.0.1:1 >"$work/status-dead.log" 2>&1 ||
   ! grep -q "gone .*unreachable" "$work/status-dead.log"; then
  fail "immunizer status did not report an unreachable service"
fi
echo "status: $(head -n 1 "$work/status.log")"

calls_messages() { "$bin/immunizer" topics | awk '$1 == "immunizer.calls" { print $3 }'; }

# run_one NAME PROGRAM ARGS...: records, waits for a block from execute.
run_one() {
  local name=$1
  shift
  local before after id rc=0
  before=$(calls_messages)
  # Every call must arrive (exit 3 otherwise), so no CPU-budget sampling: the consumers do
  # nothing but record, and on a loaded machine (ctest -j2 beside other builds) the sensor's
  # share of their CPU can pass the default 2% budget, which then samples calls out.
  CONSUMER_CALLS=40 IMMUNIZER_SENSOR_CPU_BUDGET=0 stack_start "$name.log" "$@"
  local pid=$STACK_PID
  wait_for "$work/$name.log" '^(requests|recorded)=' 40 || fail "$name: no records sent"
  id=$("$bin/immunizer" block --user mallory --ttl-ms 60000 --reason "install test: $name") || fail "$name: block"
  wait "$pid" || rc=$?
  [[ $rc == 0 ]] || fail "$name exited $rc"
  grep -q '^blocked' "$work/$name.log" || fail "$name: block did not arrive"
  after=$(calls_messages)
  ((after > before)) || fail "$name: no new messages on immunizer.calls ($before -> $after)"
  "$bin/immunizer" unblock "$id" >/dev/null || fail "$name: unblock $id"
  echo "$name: $(grep -E '^(requests|recorded)=' "$work/$name.log"); immunizer.calls $before -> $after; $(grep '^blocked' "$work/$name.log")"
}
run_one consumer "$work/consumer/consumer"
run_one consumer_static "$work/consumer/consumer_static"
[[ -x "$work/consumer/consumer_httplib" ]] || fail "consumer_httplib (Immunizer::httplib_middleware) was not built"
run_one consumer_httplib "$work/consumer/consumer_httplib"
# The C example says hello as app "c-effector-example": it needs a certificate of that name
# (execute refuses an effector whose hello differs from its certificate).
"$bin/immunizer" pki --state-dir "$S" issue effector c-effector-example >/dev/null || fail "immunizer pki issue"
stack_effector_env "$S" c-effector-example
run_one consumer_c "$work/consumer/consumer_c" 40 --wait-block 60
run_one c_pkgconfig "$work/c_pkgconfig" 40 --wait-block 60
echo "OK ($mode): consumer, consumer_static, consumer_httplib, consumer_c and c_pkgconfig built against $prefix, records arrived, blocks reached them"
