"""The technician guide's board steps, walked as written: every `edgectl board ...` command of its shell
blocks runs against the simulated boards the guide's depot section starts, and must succeed. A
documented command that stops working fails this test, with the command in the message."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "technician-guide.md"
BOARD_PORT = "/dev/ttyUSB0"  # the port the guide's commands name


def guide_commands() -> list[list[str]]:
    """`edgectl board` command lines of the guide's ```sh blocks, in order, without comments."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S)
    lines = [line.split(" #", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line.startswith("edgectl board ")]


def run(args: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.edgectl", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def depot(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """What the technician brings (a signed bundle, its trust list, a setup file) and the simulators
    the guide starts; yields the folder and the simulated boards' ports."""
    key = run(["firmware", "keygen", "fw.pem"], tmp_path)
    assert key.returncode == 0, key.stderr
    build = ["firmware", "build", str(ROOT / "firmware"), "--version", "1.4.0", "--out", "firmware-1.4.0"]
    assert run([*build, "--key", "fw.pem"], tmp_path).returncode == 0
    (tmp_path / "trusted-keys").write_text(key.stdout.strip().splitlines()[-1] + "\n")
    (tmp_path / "board-setup.toml").write_text((ROOT / "docs/examples/board-setup.toml").read_text())
    sims, ports = [], []
    for command in guide_commands():
        if command[2] != "sim":
            continue
        sim = subprocess.Popen(
            [sys.executable, "-m", "tools.edgectl", *command[1:]],
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        sims.append(sim)
        assert sim.stdout is not None
        line = sim.stdout.readline()
        assert " on " in line, f"{shlex.join(command)} printed {line!r}"
        ports.append(line.split(" on ", 1)[1].split(" ", 1)[0])
    try:
        yield tmp_path, ports
    finally:
        for sim in sims:
            sim.send_signal(signal.SIGINT)
            assert sim.wait(10) == 0


def test_every_board_command_of_the_guide_works_on_the_simulated_boards(depot) -> None:
    folder, ports = depot
    assert len(ports) == 2, "the guide starts our firmware's and a stock MicroPython simulator"
    ran = 0
    for command in guide_commands():
        if command[2] == "sim":
            continue
        # A command for the technician's board runs on each simulated one: ours and a fresh one.
        for port in ports if BOARD_PORT in command else [None]:
            args = [port if a == BOARD_PORT and port else a for a in command[1:]]
            done = run(args, folder)
            assert done.returncode == 0, f"`{shlex.join(['edgectl', *args])}`: {done.stderr.strip()}"
            ran += 1
    assert ran >= 7, "the guide's board steps: list, flash, provision (dry run and real)"
    for port in ports:
        shown = run(["board", "provision", "--show", "--port", port], folder)
        assert '"board_id": "pole-0042-b1"' in shown.stdout, shown.stderr
