#!/usr/bin/env bash
# Builds bench/models, runs the project's detectors and scikit-learn's IsolationForest
# (Debian python3-sklearn, /usr/bin/python3, n_jobs=1) on every ODDS set and rewrites the
# generated table in docs/evaluation.md. Usage: bench/models/run.sh [BUILD_DIR] [DATASETS_DIR]
# Takes about two minutes on two cores.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build/models}"
DATASETS="${2:-$ROOT/../shared/datasets/odds}"
if [[ ! -x /usr/bin/python3 ]] || ! /usr/bin/python3 -c 'import sklearn' 2>/dev/null; then
  echo "run.sh: needs Debian's python3-sklearn (scripts/deps.sh)" >&2
  exit 1
fi
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target bench_models -j2 >/dev/null
"$BUILD/bench/bench_models" --datasets "$DATASETS" --out "$ROOT/docs/evaluation.md" \
  --command "bench/models/run.sh" --python /usr/bin/python3
