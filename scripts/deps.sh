#!/usr/bin/env bash
# Installs what Immunizer needs to build, test and run the demo, from Debian only.
# Idempotent: packages already present are skipped; apt-get update runs only when
# something is missing. Usage: scripts/deps.sh [--with-browser]
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config ninja-build git ca-certificates
  librdkafka-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  prometheus-cpp-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libeigen3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libssl-dev zlib1g-dev
  libcpp-httplib-dev libyaml-cpp-dev libcli11-dev libsqlite3-dev
  python3 python3-sklearn python3-numpy python3-yaml python3-jsonschema
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev
  docker-compose curl procps wrk bc prometheus
  clang-14 libclang-rt-14-dev clang-format-14 clang-tidy-14 libjs-chart.js
)
# Browser-test tools (Debian's chromium, node and npm), only where the commands are missing:
# a machine may already have node/npm from elsewhere, and Debian's npm would conflict.
BROWSER=()
if [[ "${1:-}" == "--with-browser" ]]; then
  command -v chromium >/dev/null || BROWSER+=(chromium)
  command -v node >/dev/null || BROWSER+=(nodejs)
  command -v npm >/dev/null || BROWSER+=(npm)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
if ((${#missing[@]} == 0 && ${#BROWSER[@]} == 0)); then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi
$SUDO apt-get update -qq
if ((${#missing[@]} > 0)); then
  echo "deps: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ((${#BROWSER[@]} > 0)); then
  # Best effort: without them the browser tests say SKIPPED and the rest still runs.
  echo "deps: installing browser-test tools ${BROWSER[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${BROWSER[@]}" ||
    echo "deps: could not install ${BROWSER[*]}; browser tests will be skipped" >&2
fi
