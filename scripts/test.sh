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
# Two workers (pytest-xdist), each test module on one of them: most tests wait on brokers, boards,
# agents and clocks rather than on the CPU, so 2 cores run the suite in about 14 minutes instead of 22.
# A real HIL board takes one process: `.venv/bin/pytest hil_tests --board PORT` (docs/hil.md).
python -m pytest -n 2 --dist loadscope --junitxml=reports/junit.xml "$@"
