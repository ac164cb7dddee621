#!/usr/bin/env bash
# Applies .clang-format (clang-format-14) to every C/C++ file git tracks, or with --check
# lists the files that differ and fails. Usage: scripts/format.sh [--check]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
CF=${CLANG_FORMAT:-clang-format-14}
command -v "$CF" >/dev/null || { echo "format: $CF not found (scripts/deps.sh installs it)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.c' '*.cc')
if [[ "${1:-}" == "--check" ]]; then
  bad=0
  for f in "${files[@]}"; do
    if ! "$CF" --dry-run --Werror "$f" >/dev/null 2>&1; then echo "format: $f differs"; bad=1; fi
  done
  if ((bad)); then echo "format-check: run 'make format' to fix" >&2; exit 1; fi
  echo "format-check: ${#files[@]} files clean"
else
  "$CF" -i "${files[@]}"
  echo "format: ${#files[@]} files formatted"
fi
