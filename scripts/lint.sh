#!/usr/bin/env bash
# Runs clang-tidy-14 with the checks of .clang-tidy over the production C++ sources (every .cpp
# outside tests, bench, examples and fuzz) in build/$PRESET/compile_commands.json; headers of
# the project are checked through the sources that include them. The build must have run
# (generated protobuf headers). Fails on any finding.
#   scripts/lint.sh                 every production source
#   scripts/lint.sh --changed [REV] only the sources changed since the merge base with REV
#                                   (default main; on REV itself, by its last commit), and the
#                                   sources of a changed header's component
# Environment: PRESET (release), JOBS (2), CLANG_TIDY (clang-tidy-14).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
preset=${PRESET:-release}
jobs=${JOBS:-2}
tidy=${CLANG_TIDY:-clang-tidy-14}
db=build/$preset/compile_commands.json
command -v "$tidy" >/dev/null || { echo "lint: $tidy not found (scripts/deps.sh installs it)" >&2; exit 2; }
[[ -f $db ]] || { echo "lint: $db missing: build first (make build)" >&2; exit 2; }

production='^(analyze|common|crypto|dashboard|effector|execute|integrations|monitor|plan|proto|sensor|tools)/.*\.cpp$'
excluded='(^|/)(tests?|bench|examples|fuzz)/|_test\.cpp$'
# Sources the build compiles (generated sources and files of other presets are not ours).
mapfile -t compiled < <(python3 -c '
import json, os, sys
root = os.getcwd() + "/"
for e in json.load(open(sys.argv[1])):
    f = os.path.normpath(os.path.join(e["directory"], e["file"]))
    if f.startswith(root): print(f[len(root):])' "$db" | sort -u | grep -E "$production" | grep -Ev "$excluded" || true)

if [[ "${1:-}" == "--changed" ]]; then
  # On a branch: what it changed since it left REV. On REV itself (CI's clone of main): the
  # last commit.
  base=$(git merge-base HEAD "${2:-main}" 2>/dev/null || git rev-parse HEAD)
  if [[ $base == "$(git rev-parse HEAD)" ]]; then base=$(git rev-parse HEAD~1 2>/dev/null || echo "$base"); fi
  mapfile -t changed < <(git diff --name-only "$base" -- '*.cpp' '*.hpp' '*.h'; git ls-files -o --exclude-standard -- '*.cpp' '*.hpp')
  dirs=$(printf '%s\n' "${changed[@]}" | grep -E '\.(hpp|h)$' | xargs -r -n1 dirname | sort -u || true)
  selected=()
  for f in "${compiled[@]}"; do
    if printf '%s\n' "${changed[@]}" | grep -qxF "$f"; then selected+=("$f"); continue; fi
    for d in $dirs; do
      # A changed public header include/immunizer/<c>/x.hpp belongs to <c>/src.
      comp=${d%%/*}
      if [[ $f == "$d"/* || ( $d == */include/* && $f == "$comp"/src/* ) ]]; then selected+=("$f"); break; fi
    done
  done
  compiled=("${selected[@]+"${selected[@]}"}")
fi
((${#compiled[@]})) || { echo "lint: no source to check"; exit 0; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$SECONDS
set +e
printf '%s\n' "${compiled[@]}" |
  xargs -P "$jobs" -n 1 "$tidy" -p "build/$preset" --quiet >"$out" 2>/dev/null
rc=$?
set -e
grep -E '(warning|error):' "$out" | sort -u || true
if ((rc != 0)) || grep -qE '(warning|error):' "$out"; then
  echo "lint: findings in ${#compiled[@]} sources ($((SECONDS - start)) s); see above" >&2
  exit 1
fi
echo "lint: ${#compiled[@]} sources clean ($((SECONDS - start)) s)"
