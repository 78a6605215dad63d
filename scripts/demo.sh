#!/usr/bin/env bash
# Sets everything up, then runs the demo. Extra arguments go to `edgectl demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:/usr/sbin:$PATH"
exec edgectl demo "$@"
