#!/usr/bin/env bash
# CTest entry of the browser test: prints "SKIPPED: ..." and exits 0 when node, chromium
# or playwright-core are missing (apt-get install chromium nodejs npm; tests/browser/install.sh installs playwright-core and axe-core).
#   [BROWSER_TEST=incidents.test.mjs] run.sh <immunizer-dashboard> <dashboard-testbed> <artifact dir>
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
command -v node >/dev/null || { echo "SKIPPED: node not found (apt-get install nodejs npm)"; exit 0; }
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { echo "SKIPPED: chromium not found (apt-get install chromium)"; exit 0; }
if [ ! -d "$here/node_modules/playwright-core" ] || [ ! -d "$here/node_modules/axe-core" ]; then
  if ! command -v npm >/dev/null || ! bash "$here/install.sh" >/dev/null 2>&1; then
    echo "SKIPPED: playwright-core not installed and 'npm ci' failed (run tests/browser/install.sh)"
    exit 0
  fi
fi
cd "$here" && exec node "${BROWSER_TEST:-dashboard.test.mjs}" "$@"
