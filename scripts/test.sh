#!/usr/bin/env bash
# Sets everything up, then runs lint and the whole test suite (unit, integration and the HIL suite
# against the simulated board). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
export PATH="$PWD/.venv/bin:/usr/sbin:$PATH"
echo "== lint"
ruff check .
ruff format --check .
echo "== types (agent/, strict; config in pyproject.toml)"
mypy
echo "== tests"
mkdir -p reports
python -m pytest --junitxml=reports/junit.xml "$@"
