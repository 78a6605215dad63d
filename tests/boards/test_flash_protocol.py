"""`edgectl board flash` on a board that runs our firmware: over the protocol's file transfer, no REPL;
verified, switched atomically, rebooted, and answering HELLO with the new version."""

from __future__ import annotations

from pathlib import Path

from agent.boards.install import LOADER
from firmware.sim.board import SimulatedBoard
from firmware.sim.scenarios import STREET_SETUP
from tools.board_cli.board_setup import load_setup
from tools.board_cli.proto import probe_hello
from tools.edgectl import main as edgectl
from tools.errors import DOWNGRADE

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


def build(tmp_path: Path, version: str) -> Path:
    out = tmp_path / f"bundle-{version}"
    assert edgectl(["firmware", "build", str(FIRMWARE), "--version", version, "--out", str(out)]) == 0
    return out


def test_flash_over_the_protocol_installs_reboots_and_answers_with_the_new_version(
    tmp_path: Path, capsys
) -> None:
    setup = load_setup(STREET_SETUP).document()
    with SimulatedBoard(setup, flash=tmp_path / "flash") as board:
        before = probe_hello(board.port)
        assert before is not None and before["fw"] == "1.0.0"
        bundle = build(tmp_path, "1.2.0")
        assert edgectl(["board", "flash", str(bundle), "--port", board.port, "--quiet"]) == 0
        out = capsys.readouterr().out
        assert "firmware 1.2.0 installed" in out and "rebooted and running it" in out
        flash = tmp_path / "flash"
        assert (flash / "fw" / "current").read_text() == "1.2.0\n"
        assert (flash / "main.py").read_bytes() == LOADER
        for name in ("streetfw/app.mpy", "streetfw/wire.mpy", "streetfw/drivers/pms5003.mpy", "main.py"):
            assert (flash / "fw" / "1.2.0" / name).read_bytes() == (bundle / name).read_bytes()
        assert not list(flash.rglob("*.part")) and not list(flash.rglob("*.tmp"))
        assert board.boots == 2, "rebooted once"
        after = probe_hello(board.port)
        assert after is not None and after["fw"] == "1.2.0"
        # An older bundle is refused without touching the board.
        older = build(tmp_path, "1.1.0")
        assert edgectl(["board", "flash", str(older), "--port", board.port, "--quiet"]) == DOWNGRADE
        assert "older than the installed 1.2.0" in capsys.readouterr().err
        assert (flash / "fw" / "current").read_text() == "1.2.0\n"


def test_flash_over_the_raw_repl_of_our_firmware_on_request(tmp_path: Path, capsys) -> None:
    """`board flash --repl`: our firmware hands the REPL back, the bundle goes over the raw REPL, and
    the board reboots into the new version and answers HELLO with it."""
    setup = load_setup(STREET_SETUP).document()
    with SimulatedBoard(setup, flash=tmp_path / "flash") as board:
        bundle = build(tmp_path, "1.3.0")
        assert edgectl(["board", "flash", str(bundle), "--port", board.port, "--repl", "--quiet"]) == 0, (
            capsys.readouterr().err
        )
        assert "firmware 1.3.0 installed" in capsys.readouterr().out
        assert board.repl_requests >= 1
        after = probe_hello(board.port)
        assert after is not None and after["fw"] == "1.3.0" and after["id"] == setup["board_id"]
