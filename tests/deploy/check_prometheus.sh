#!/bin/bash
# Alerting rules: `promtool check rules` on docker/prometheus/rules.yml, its unit tests
# (prometheus_rules_test.yml), the Helm chart's copy being the same file, and the compose
# Prometheus config loading it. Needs promtool (Debian package prometheus).
# Usage: check_prometheus.sh REPO_ROOT
set -uo pipefail
ROOT="$(cd "${1:-$(dirname "$0")/../..}" && pwd)"
if ! command -v promtool >/dev/null; then
  echo "FAIL promtool not found: apt-get install prometheus (scripts/deps.sh installs it)"
  exit 1
fi
fails=0
run() {
  local what="$1"; shift
  if out=$("$@" 2>&1); then echo "ok   $what"; else echo "FAIL $what"; echo "$out"; fails=$((fails + 1)); fi
}
run "promtool check rules docker/prometheus/rules.yml" promtool check rules "$ROOT/docker/prometheus/rules.yml"
run "promtool test rules (tests/deploy/prometheus_rules_test.yml)" \
  bash -c "cd '$ROOT/tests/deploy' && promtool test rules prometheus_rules_test.yml"
chart_rules="$ROOT/deploy/helm/immunizer/files/prometheus-rules.yml"
if [[ "$(readlink -f "$chart_rules")" == "$(readlink -f "$ROOT/docker/prometheus/rules.yml")" ]]; then
  echo "ok   the chart's PrometheusRule is docker/prometheus/rules.yml"
else
  echo "FAIL $chart_rules is not a link to docker/prometheus/rules.yml"; fails=$((fails + 1))
fi
# The compose config names the rules at their mounted path; check it against the real file.
tmp=$(mktemp -d)
sed "s|/etc/prometheus/rules.yml|$ROOT/docker/prometheus/rules.yml|" "$ROOT/docker/prometheus/prometheus.yml" > "$tmp/prometheus.yml"
run "promtool check config docker/prometheus/prometheus.yml" promtool check config "$tmp/prometheus.yml"
rm -rf "$tmp"
echo "prometheus checks: $fails failure(s)"
exit $((fails > 0))
