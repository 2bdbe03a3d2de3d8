#!/usr/bin/env bash
# Installs what the benchmark baselines need, only when missing: sysbench, Miller and GNU time
# from Debian's packages, DuckDB's Node client from npm (a devDependency in package.json).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v sysbench >/dev/null 2>&1 || missing+=(sysbench)
command -v mlr >/dev/null 2>&1 || missing+=(miller)
[ -x /usr/bin/time ] || missing+=(time)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing from Debian: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! node -e "import('@duckdb/node-api').then(() => process.exit(0), () => process.exit(1))" 2>/dev/null; then
  echo "installing @duckdb/node-api from npm" >&2
  npm install --no-audit --no-fund --save-dev @duckdb/node-api >/dev/null
fi
