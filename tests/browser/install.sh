#!/usr/bin/env bash
# Installs playwright-core (no browser download: the test drives Debian's chromium)
# into tests/browser/node_modules from the committed package-lock.json.
set -euo pipefail
cd "$(dirname "$0")"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund
