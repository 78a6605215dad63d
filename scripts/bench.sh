#!/usr/bin/env bash
# Runs every benchmark in bench/, one after the other. Figures go in docs/benchmarks.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:/usr/sbin:$PATH"
for script in bench/*.py; do
    echo "== $script"
    python "$script"
done
