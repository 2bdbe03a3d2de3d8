#!/usr/bin/env bash
# Installs headless Chromium from Debian's packages for the Swagger UI browser test
# (test/docs/swaggerUi.test.ts drives /usr/bin/chromium with playwright-core). Needs root.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || true)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends chromium
/usr/bin/chromium --version
