"""Flash, provision, reboot: the board runs what was just built and keeps what was provisioned."""

from __future__ import annotations

import json
import time
from pathlib import Path

from firmware.streetfw import VERSION
from hil_tests.bench import ROOT
from tools.board_cli.proto import ProtocolBoard, probe_hello
from tools.edgectl import main as edgectl


def test_flash_provision_and_reboot_answer_hello_with_the_built_version(
    board, report, tmp_path: Path
) -> None:
    major, minor, patch = (int(x) for x in VERSION.split("."))
    version = f"{major}.{minor}.{patch + 1}"  # newer than what the board runs, so it is no downgrade
    bundle = tmp_path / "bundle"
    assert (
        edgectl(["firmware", "build", str(ROOT / "firmware"), "--version", version, "--out", str(bundle)])
        == 0
    )
    started = time.monotonic()
    assert edgectl(["board", "flash", str(bundle), "--port", board.port, "--quiet"]) == 0
    flashed_s = time.monotonic() - started
    hello = probe_hello(board.port)
    assert hello is not None and hello["fw"] == version, hello

    setup = tmp_path / "setup.json"
    setup.write_text(json.dumps({k: v for k, v in board.setup.items() if k != "profile"}))
    assert edgectl(["board", "provision", str(setup), "--port", board.port]) == 0
    with ProtocolBoard(board.port) as link:
        link.command("reboot")
    deadline = time.monotonic() + 30
    hello = None
    while time.monotonic() < deadline and hello is None:
        time.sleep(0.5)
        hello = probe_hello(board.port)
    assert hello is not None, "no HELLO after the reboot"
    assert hello["fw"] == version and hello["id"] == board.board_id
    assert [s["n"] for s in hello["sensors"]] == [s.get("id") or s["type"] for s in board.setup["sensors"]]
    report("flash", round(flashed_s, 1), "s")
