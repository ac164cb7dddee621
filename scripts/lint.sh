#!/usr/bin/env bash
# Runs clang-tidy-14 with the checks of .clang-tidy over the production C++ sources (every .cpp
# outside tests, bench, examples and fuzz) in build/$PRESET/compile_commands.json; headers of
# the project are checked through the sources that include them. The build must have run
# (generated protobuf headers). Fails on any finding.
#   scripts/lint.sh                 every production source
#   scripts/lint.sh --changed [REV] only the sources changed since the merge base with REV
#                                   (default main; on REV itself, by its last commit), and the
#                                   sources of a changed header's component
# A source found clean is remembered in LINT_CACHE (default build/$PRESET/lint-cache; empty:
# none) under the hash of what clang-tidy reads for it: the source preprocessed with its
# compile command (every header it includes, line markers kept), .clang-tidy and the
# clang-tidy version. A later run skips it until one of those changes (docs/testing.md, "Lint").
# Environment: PRESET (release), JOBS (2), CLANG_TIDY (clang-tidy-14), LINT_CACHE.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
preset=${PRESET:-release}
jobs=${JOBS:-2}
tidy=${CLANG_TIDY:-clang-tidy-14}
db=build/$preset/compile_commands.json
cache=${LINT_CACHE-build/$preset/lint-cache}
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

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$SECONDS
# "<source> <key>" per source: the key hashes its preprocessed text (clang++-14 -E with the
# compile command's flags), .clang-tidy and the clang-tidy version. No cache: key "-".
printf '%s\n' "${compiled[@]}" | python3 -c '
import concurrent.futures, hashlib, json, os, shlex, subprocess, sys
db, tidy, cache, jobs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
files = sys.stdin.read().split()
if not cache:
    for f in files: print(f, "-")
    sys.exit(0)
root = os.getcwd()
cmds = {}
for e in json.load(open(db)):
    cmds[os.path.relpath(os.path.normpath(os.path.join(e["directory"], e["file"])), root)] = e
salt = hashlib.sha256(open(".clang-tidy", "rb").read() +
                      subprocess.run([tidy, "--version"], capture_output=True).stdout).digest()
def key(f):
    e = cmds[f]
    args = shlex.split(e["command"]) if "command" in e else list(e["arguments"])
    out, skip = ["clang++-14"], False
    for a in args[1:]:
        if skip: skip = False; continue
        if a == "-o": skip = True; continue
        if a == "-c": continue
        out.append(a)
    p = subprocess.run(out + ["-E", "-Wno-unknown-warning-option"], cwd=e["directory"],
                       capture_output=True)
    if p.returncode != 0: return "-"  # cannot tell: lint it
    return hashlib.sha256(salt + f.encode() + b"\0" + p.stdout).hexdigest()
with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
    for f, k in zip(files, ex.map(key, files)): print(f, k)
' "$db" "$tidy" "$cache" "$jobs" >"$work/keys"
[[ -z $cache ]] || mkdir -p "$cache"
todo=() cached=0
while read -r f k; do
  if [[ $k != - && -e $cache/$k ]]; then cached=$((cached + 1)); else todo+=("$f $k"); fi
done <"$work/keys"

# One source: its findings in work/<n>.out; remembered as clean when it has none.
export tidy preset cache work
lint_one() {
  local f=$1 k=$2 o
  o=$work/$(echo "$f" | tr / _).out
  if "$tidy" -p "build/$preset" --quiet "$f" >"$o" 2>/dev/null && ! grep -qE '(warning|error):' "$o"; then
    [[ $k == - || -z $cache ]] || : >"$cache/$k"
  else
    echo "$f" >"$o.failed"
  fi
}
export -f lint_one
((${#todo[@]} == 0)) || printf '%s\n' "${todo[@]}" | xargs -P "$jobs" -L 1 bash -c 'lint_one "$0" "$1"'
cat "$work"/*.out 2>/dev/null | grep -E '(warning|error):' | sort -u || true
failed=$( (cat "$work"/*.failed 2>/dev/null || true) | wc -l)
summary="${#compiled[@]} sources, ${#todo[@]} checked, $cached unchanged since a clean run ($((SECONDS - start)) s)"
if ((failed)); then
  echo "lint: findings in $failed of $summary; see above" >&2
  exit 1
fi
echo "lint: clean: $summary"
