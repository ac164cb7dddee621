#!/bin/bash
# `helm lint --strict` and `helm template` on deploy/helm/immunizer when helm is on the
# PATH; prints "SKIPPED: helm not on PATH" and exits 0 otherwise (the chart is then
# covered by check_helm_chart.py and check_helm_render.sh).
# Usage: check_helm.sh REPO_ROOT WORK_DIR
set -uo pipefail
ROOT="$(cd "${1:-$(dirname "$0")/../..}" && pwd)"
WORK="${2:-$(mktemp -d)}"
CHART="$ROOT/deploy/helm/immunizer"
if ! command -v helm >/dev/null; then
  echo "SKIPPED: helm not on PATH"
  exit 0
fi
mkdir -p "$WORK"
fails=0
helm version --short
if helm lint --strict "$CHART" -f "$CHART/ci/test-values.yaml"; then echo "ok   helm lint --strict"; else echo "FAIL helm lint"; fails=$((fails + 1)); fi
if helm template test "$CHART" --namespace immunizer -f "$CHART/ci/test-values.yaml" > "$WORK/helm-template.yaml"; then
  echo "ok   helm template"
  /usr/bin/python3 "$ROOT/tests/deploy/check_manifests.py" "$WORK/helm-template.yaml" || fails=$((fails + 1))
else
  echo "FAIL helm template"; fails=$((fails + 1))
fi
if helm template test "$CHART" -f "$CHART/ci/test-values.yaml" --set analyze.autoscaling.maxReplicas=8 >/dev/null 2>&1; then
  echo "FAIL helm template accepted analyze maxReplicas above the partition count"; fails=$((fails + 1))
else
  echo "ok   helm template refuses analyze maxReplicas above the partition count"
fi
if helm template test "$CHART" >/dev/null 2>&1; then
  echo "FAIL helm template rendered without the required secrets"; fails=$((fails + 1))
else
  echo "ok   helm template refuses to render without the required secrets"
fi
echo "helm: $fails failure(s)"
[[ $fails -eq 0 ]]
