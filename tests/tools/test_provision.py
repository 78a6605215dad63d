"""`edgectl board provision`: setup validation, and the write / read back / compare round trip."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.sim.board import SimulatedBoard
from firmware.sim.scenarios import STREET_SETUP
from firmware.sim.stock_board import StockBoard
from tools.board_cli.board_setup import load_setup
from tools.board_cli.proto import probe_hello
from tools.edgectl import main as edgectl
from tools.errors import FAILED, USAGE

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "board-setup.toml"


@pytest.fixture
def board(tmp_path: Path) -> Iterator[StockBoard]:
    with StockBoard(tmp_path / "flash") as sim:
        yield sim


def test_the_documented_example_is_valid(capsys) -> None:
    assert edgectl(["board", "provision", str(EXAMPLE), "--port", "/dev/null", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "pole-0042-b1: 5 sensor(s), lamp on pin 25" in captured.out and "warning" not in captured.err


def test_dry_run_needs_no_board_and_warns_of_a_type_that_is_none_of_our_drivers(
    tmp_path: Path, capsys
) -> None:
    setup = tmp_path / "setup.toml"
    setup.write_text('board_id = "b1"\n[[sensors]]\ntype = "nosie"\npins = { adc = 34 }\n')
    # No --port and no board plugged in: the file alone is checked.
    assert edgectl(["board", "provision", str(setup), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "valid (b1: 1 sensor(s))" in captured.out
    assert "sensors.0.type 'nosie' is not one of our drivers" in captured.err
    assert "did you mean 'noise'?" in captured.err and "lib/nosie.py" in captured.err


def test_provision_round_trip_and_previous_kept(board: StockBoard, tmp_path: Path, capsys) -> None:
    assert edgectl(["board", "provision", "--port", board.port, "--show"]) == FAILED
    assert "no config yet" in capsys.readouterr().out
    assert edgectl(["board", "provision", str(EXAMPLE), "--port", board.port]) == 0
    assert "read back and verified" in capsys.readouterr().out
    stored = json.loads((board.flash / "config.json").read_text())
    assert stored["board_id"] == "pole-0042-b1" and stored["sensors"][2]["thresholds"] == {"tilt_deg": 15.0}
    assert stored["sensors"][1]["interval_s"] == 30 and stored["lamp"]["level"] == 0.8
    # The same file for the next board, with its own id: the first config is kept for rollback.
    assert (
        edgectl(["board", "provision", str(EXAMPLE), "--port", board.port, "--board-id", "pole-0043-b1"]) == 0
    )
    assert "previous config of pole-0042-b1 kept" in capsys.readouterr().out
    assert json.loads((board.flash / "config.prev.json").read_text())["board_id"] == "pole-0042-b1"
    assert edgectl(["board", "provision", "--port", board.port, "--show"]) == 0
    assert json.loads(capsys.readouterr().out)["board_id"] == "pole-0043-b1"
    assert not list(board.flash.glob("*.tmp"))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            'board_id = "b1"\n[[sensors]]\ntype = "sht3x"\npins = { sda = 21 }\n',
            "needs pins scl, sda; missing scl",
        ),
        (
            'board_id = "b1"\n[[sensors]]\ntype = "noise"\npins = { adc = 34, sda = 1 }\n',
            "has no pin named sda",
        ),
        (
            'board_id = "b1"\n[[sensors]]\ntype = "noise"\npins = { adc = 34 }\n[[sensors]]\ntype = "water_analog"\n'
            "pins = { adc = 34 }\n",
            "pin 34 is used twice",
        ),
        ('board_id = "b1"\n[[sensors]]\ntype = "Geiger counter"\npins = {}\n', "sensors.0.type"),
        ('board_id = "b 1"\n', "board_id"),
        ('board_id = "b1"\n[[sensors]]\ntype = "noise"\npins = { adc = 34 }\ninterval_s = 0\n', "interval_s"),
        ('board_id = "b1"\nsensors = [\n', "not valid TOML"),
    ],
)
def test_bad_setups_are_refused_before_the_board(tmp_path: Path, capsys, setup: str, message: str) -> None:
    path = tmp_path / "setup.toml"
    path.write_text(setup)
    assert edgectl(["board", "provision", str(path), "--port", "/dev/ttyUSB-none"]) == USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# -- our firmware on the simulated board (real pseudo-terminal, pyserial, the firmware under CPython) --------


def _sim(*extra: str, cwd: Path) -> tuple[subprocess.Popen[str], str]:
    """`edgectl board sim` as a technician starts it; returns the process and its port."""
    root = Path(__file__).resolve().parents[2]
    port = cwd / "ttyBOARD"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.edgectl", "board", "sim", "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "simulated board" in line, line + (proc.stderr.read() if proc.poll() is not None else "")
    return proc, str(port)


def test_the_simulated_board_is_provisioned_with_the_documented_example(tmp_path: Path, capsys) -> None:
    proc, port = _sim(cwd=tmp_path)
    try:
        assert edgectl(["board", "provision", str(EXAMPLE), "--port", port]) == 0, capsys.readouterr().err
        assert "provisioned pole-0042-b1: 5 sensor(s)" in capsys.readouterr().out
        hello = probe_hello(port)
        assert hello is not None and hello["id"] == "pole-0042-b1"
        # The example names its sensors by type; the simulator's own setup names two of them.
        assert [s["n"] for s in hello["sensors"]] == [
            "pms5003",
            "sht3x",
            "adxl345",
            "noise",
            "water_ultrasonic",
        ]
        assert (
            edgectl(["board", "provision", str(EXAMPLE), "--port", port, "--board-id", "pole-0043-b1"]) == 0
        )
        assert "previous config of pole-0042-b1 kept" in capsys.readouterr().out
        # --show reads the config over the protocol: the board keeps running and answers afterwards.
        for _ in range(2):
            assert edgectl(["board", "provision", "--show", "--port", port]) == 0
            shown = json.loads(capsys.readouterr().out)
            assert shown["board_id"] == "pole-0043-b1" and shown["sensors"][2]["thresholds"] == {
                "tilt_deg": 15.0
            }
            after = probe_hello(port)
            assert after is not None and after["id"] == "pole-0043-b1", "the board answers after --show"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_a_sensor_that_fails_to_start_is_reported_with_what_the_board_said(tmp_path: Path, capsys) -> None:
    setup = tmp_path / "setup.toml"
    setup.write_text(
        'board_id = "pole-0050-b1"\n[[sensors]]\ntype = "sht3x"\npins = { sda = 21, scl = 22 }\n'
        '[[sensors]]\ntype = "nosie"\npins = { adc = 34 }\n'
    )
    with SimulatedBoard(load_setup(STREET_SETUP).document(), flash=tmp_path / "flash") as board:
        assert edgectl(["board", "provision", str(setup), "--port", board.port]) == FAILED
        err = capsys.readouterr().err
        assert "pole-0050-b1 runs the new config, but the board says: nosie: " in err, err
        assert "Traceback" not in err
        assert json.loads((board.flash / "config.json").read_text())["board_id"] == "pole-0050-b1"


def test_show_on_a_firmware_without_config_says_so(tmp_path: Path, capsys) -> None:
    with SimulatedBoard({"board_id": "pole-0051-b1", "sensors": []}, flash=tmp_path / "flash") as board:
        (board.flash / "config.json").unlink()
        assert edgectl(["board", "provision", "--show", "--port", board.port]) == FAILED
        assert "no config yet" in capsys.readouterr().out
        assert probe_hello(board.port) is not None


def test_our_firmware_hands_the_repl_back_on_request_and_runs_again_after_it(tmp_path: Path) -> None:
    """As on a board: asked for the REPL, our firmware returns to MicroPython's; leaving the raw REPL
    (a soft reboot into main.py) starts the firmware again, so the board is never left silent."""
    from tools.board_cli.provision import read_config
    from tools.board_cli.repl_link import ReplBoard

    with SimulatedBoard({"board_id": "pole-0052-b1", "sensors": []}, flash=tmp_path / "flash") as board:
        with ReplBoard(board.port) as repl:
            assert repl.info()["version"] == "1.27.0"
            assert read_config(repl) == {"board_id": "pole-0052-b1", "sensors": []}
        assert board.repl_requests == 1
        hello = probe_hello(board.port)
        assert hello is not None and hello["id"] == "pole-0052-b1" and board.boots == 2
