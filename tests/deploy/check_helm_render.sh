#!/bin/bash
# Renders the chart without helm: builds tests/deploy/helmrender (Go text/template + sprig,
# Debian packages golang-go, golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v2-dev)
# and checks what the templates produce:
#   1. ci/test-values.yaml (every option on) renders and the manifests pass check_manifests.py
#   2. default values fail with a "... is required" message (the dashboard's credentials)
#   3. secrets.existingSecret renders no Secret and points the workloads at that Secret
#   4. analyze.autoscaling.maxReplicas above the partition count fails with the bound message
#   5. monitor without HPA and replicaCount above the partition count fails likewise
# Usage: check_helm_render.sh REPO_ROOT WORK_DIR
set -uo pipefail
ROOT="$(cd "${1:-$(dirname "$0")/../..}" && pwd)"
WORK="${2:-$(mktemp -d)}"
CHART="$ROOT/deploy/helm/immunizer"
PY=/usr/bin/python3
mkdir -p "$WORK"
fails=0; passes=0
ok()   { echo "ok   $*"; passes=$((passes + 1)); }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

if ! command -v go >/dev/null; then
  echo "FAIL go not found: install golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev"
  exit 1
fi
mkdir -p "$WORK/src/helmrender"
cp "$ROOT/tests/deploy/helmrender/main.go" "$WORK/src/helmrender/"
if ! (cd "$WORK/src/helmrender" && GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE="$WORK/gocache" \
      GOFLAGS= go build -o "$WORK/helmrender" . ); then
  echo "FAIL helmrender does not build (needs golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev)"
  exit 1
fi
R="$WORK/helmrender"

# 1
if "$R" "$CHART" -f "$CHART/ci/test-values.yaml" --notes > "$WORK/ci.yaml" 2> "$WORK/ci.err"; then
  ok "render with ci/test-values.yaml ($(grep -c '^kind:' "$WORK/ci.yaml") objects)"
  if $PY "$ROOT/tests/deploy/check_manifests.py" "$WORK/ci.yaml"; then ok "manifests (ci values) pass check_manifests.py"
  else fail "manifests (ci values) fail check_manifests.py"; fi
else
  fail "render with ci/test-values.yaml: $(cat "$WORK/ci.err")"
fi

# 2
if "$R" "$CHART" > /dev/null 2> "$WORK/default.err"; then
  fail "default values rendered although the required secrets are empty"
elif grep -q "is required" "$WORK/default.err"; then
  ok "default values refused: $(grep -o '[a-zA-Z.]* is required' "$WORK/default.err" | head -1)"
else
  fail "default values failed for another reason: $(cat "$WORK/default.err")"
fi

# 3
cat > "$WORK/existing.yaml" <<'VALUES'
secrets:
  existingSecret: immunizer-keys
VALUES
if "$R" "$CHART" -f "$WORK/existing.yaml" > "$WORK/existing.out" 2> "$WORK/existing.err"; then
  if $PY "$ROOT/tests/deploy/check_manifests.py" --no-secret --existing-secret immunizer-keys "$WORK/existing.out"; then
    ok "existingSecret: no Secret rendered, workloads use immunizer-keys"
  else fail "existingSecret manifests"; fi
else
  fail "existingSecret render: $(cat "$WORK/existing.err")"
fi

# 4, 5
cat > "$WORK/too-many.yaml" <<'VALUES'
secrets: {dashboardUser: x, dashboardPassword: x}
analyze:
  autoscaling: {maxReplicas: 8}
VALUES
cat > "$WORK/too-many-static.yaml" <<'VALUES'
secrets: {dashboardUser: x, dashboardPassword: x}
monitor:
  replicaCount: 9
  autoscaling: {enabled: false}
VALUES
for f in too-many too-many-static; do
  if "$R" "$CHART" -f "$WORK/$f.yaml" > /dev/null 2> "$WORK/$f.err"; then
    fail "$f: replicas above the partition count rendered"
  elif grep -q "exceeds kafka.topics.modelKeyedPartitions" "$WORK/$f.err"; then
    ok "$f: refused ($(grep -o '[a-z]*\.[a-zA-Z.]* ([0-9]*) exceeds [a-zA-Z.]* ([0-9]*)' "$WORK/$f.err"))"
  else
    fail "$f: failed for another reason: $(cat "$WORK/$f.err")"
  fi
done

echo "helm render: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
