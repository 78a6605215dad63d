"""The HIL suite as QA runs it (`pytest hil_tests ...` in its own process): a wrong port is one
session-level error naming the port and the cause; --target picks the board family's setup; measured
figures reach JUnit XML as numbers named with their units."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def hil(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "hil_tests", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_a_missing_port_is_one_session_error_naming_it() -> None:
    started = time.monotonic()
    run = hil("--board", "/dev/ttyUSB-not-here")
    took = time.monotonic() - started
    out = run.stdout + run.stderr
    assert run.returncode == 4, out
    assert out.count("--board /dev/ttyUSB-not-here: no such serial port") == 1, out
    assert "AssertionError" not in out and "edgectl board list" in out
    assert took < 60, f"{took:.0f} s before saying so"


def test_a_port_with_no_board_behind_it_is_one_session_error_with_the_cause() -> None:
    controller, peripheral = os.openpty()  # a serial port with nothing on it, as a laptop's ttyS0
    port = os.ttyname(peripheral)
    try:
        run = hil("--board", port, "hil_tests/test_board.py")
    finally:
        os.close(controller)
        os.close(peripheral)
    out = run.stdout + run.stderr
    assert run.returncode == 4, out  # edgectl's exit code: no board answered
    assert out.count(f"--board {port}: flashing the bench board failed: {port}: could not enter") == 1, out
    assert "AssertionError" not in out


def test_a_real_board_under_parallel_workers_is_refused_before_anything_touches_it() -> None:
    controller, peripheral = os.openpty()
    port = os.ttyname(peripheral)
    try:
        run = hil("--board", port, "-n", "2", "hil_tests/test_board.py")
    finally:
        os.close(controller)
        os.close(peripheral)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert f"--board {port}: one real board cannot serve parallel workers; run without -n" in out, out
    assert "flashing the bench board failed" not in out, "it tried the port first"


def test_a_setup_for_another_family_than_the_target_is_refused() -> None:
    run = hil(
        "--target", "rp2040", "--board-setup", "firmware/sim/street-setup.toml", "hil_tests/test_flash.py"
    )
    out = run.stdout + run.stderr
    assert run.returncode == 4, out
    assert "street-setup.toml is for esp32 boards, the bench is --target rp2040" in out


def test_markers_skip_what_the_bench_cannot_run(tmp_path: Path) -> None:
    """Tests marked for the simulator, for hardware or for one target, under the HIL plugin."""
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\n")
    (tmp_path / "conftest.py").write_text("from hil_tests.plugin import *  # noqa: F403\n")
    (tmp_path / "test_marked.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.sim\ndef test_on_sim(): pass\n\n"
        "@pytest.mark.hardware\ndef test_on_hardware(): pass\n\n"
        "@pytest.mark.rp2040\ndef test_on_pico(): pass\n\n"
        "def test_anywhere(): pass\n"
    )

    def outcomes(*args: str) -> dict[str, str]:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-c", "pytest.ini", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert run.returncode in (0, 5), run.stdout + run.stderr
        return dict(re.findall(r"::(test_\w+) (PASSED|SKIPPED)", run.stdout))

    assert outcomes() == {
        "test_on_sim": "PASSED",
        "test_on_hardware": "SKIPPED",
        "test_on_pico": "SKIPPED",
        "test_anywhere": "PASSED",
    }
    assert outcomes("--board", "/dev/ttyACM0", "--target", "rp2040") == {
        "test_on_sim": "SKIPPED",
        "test_on_hardware": "PASSED",
        "test_on_pico": "PASSED",
        "test_anywhere": "PASSED",
    }
    assert outcomes("-m", "not sim") == {
        "test_on_hardware": "SKIPPED",
        "test_on_pico": "SKIPPED",
        "test_anywhere": "PASSED",
    }


def test_rp2040_target_on_the_simulator_with_figures_in_junit(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    run = hil("--target", "rp2040", "-k", "readings_arrive", f"--junitxml={junit}", "hil_tests/test_board.py")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "xunit2" not in out and "PytestWarning" not in out
    case = next(c for c in ET.parse(junit).iter("testcase") if "readings_arrive" in c.get("name", ""))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert set(props) == {"readings", "sample_to_mqtt_median_ms"}, props
    assert int(props["readings"]) > 0 and 0 <= abs(float(props["sample_to_mqtt_median_ms"])) < 2000
    assert "passed" in out.split("HIL summary")[1]
