#!/usr/bin/env bash
# Lists functions longer than N lines (default 80) and source files longer than M lines
# (default 700) outside tests, benchmarks, examples and fuzz targets, as issue 12 asks.
# Function extents come from universal-ctags (line:/end:), so lambdas count toward the
# function that holds them. Usage: scripts/long_functions.sh [N] [M]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
max_fn=${1:-80}
max_file=${2:-700}
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.cc' |
  grep -Ev '(^|/)(tests?|bench|examples|fuzz)/|_test\.cpp$')
ctags --languages=C++ --kinds-C++=f --fields=+ne --extras=-F -o - "${files[@]}" |
  awk -F'\t' -v max="$max_fn" '{
    line = ""; end = "";
    for (i = 4; i <= NF; i++) {
      if ($i ~ /^line:/) line = substr($i, 6);
      if ($i ~ /^end:/) end = substr($i, 5);
    }
    if (line != "" && end != "" && end - line + 1 > max)
      printf "function %4d lines  %s:%s  %s\n", end - line + 1, $2, line, $1;
  }' | sort -k2,2nr
wc -l "${files[@]}" | awk -v max="$max_file" '$2 != "total" && $1 > max {
  printf "file     %4d lines  %s\n", $1, $2 }' | sort -k2,2nr
