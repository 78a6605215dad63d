"""`edgectl board provision`: setup validation, and the write / read back / compare round trip."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.board_cli.repl_sim import StockBoard
from tools.edgectl import main as edgectl
from tools.errors import FAILED, USAGE

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "board-setup.toml"


@pytest.fixture
def board(tmp_path: Path) -> Iterator[StockBoard]:
    with StockBoard(tmp_path / "flash") as sim:
        yield sim


def test_the_documented_example_is_valid(capsys) -> None:
    assert edgectl(["board", "provision", str(EXAMPLE), "--port", "/dev/null", "--dry-run"]) == 0
    assert "pole-0042-b1: 5 sensor(s), lamp on pin 25" in capsys.readouterr().out


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
