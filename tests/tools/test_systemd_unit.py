"""The shipped systemd unit parses cleanly with systemd's own checker and keeps its hardening."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "edge-agent.service"


def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd (Debian's gateways run it)")
    agent = Path(sys.executable).with_name("edge-agent")
    assert agent.exists(), "the project is not installed in this environment"
    # the real path is /usr/local/bin; point it at this checkout's so verify can check the binary
    unit = tmp_path / "edge-agent.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/edge-agent", str(agent)))
    result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "edge-agent.service" in line]
    assert problems == [], problems


def test_the_unit_runs_as_its_own_user_with_a_state_directory_and_restarts() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(UNIT)
    service = parser["Service"]
    assert service["User"] == "edge-agent" and service["StateDirectory"] == "edge-agent"
    assert service["Restart"] == "always" and service["NoNewPrivileges"] == "yes"
    assert (
        service["ProtectSystem"] == "strict"
        and "--config /etc/edge-agent/config.toml" in service["ExecStart"]
    )
