"""Flashing a board that runs only MicroPython, over its raw REPL, on the simulated stock board.

The simulated board speaks the REPL byte protocol (raw REPL, raw paste, soft reboot, a busy main.py,
a boot delay that swallows the first Ctrl-C); the official mpremote tool is run against it first, to
show it is faithful.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.boards.install import LOADER
from firmware.sim.stock_board import StockBoard
from tools.board_cli import repl_link
from tools.edgectl import main as edgectl
from tools.errors import BYTECODE, DOWNGRADE, FLASH, NO_BOARD, USAGE


def firmware_source(folder: Path, version: str) -> Path:
    (folder / "drivers").mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(f"import app\napp.run({version!r})\n")
    (folder / "app.py").write_text(
        f"VERSION = {version!r}\n\n\ndef run(v):\n    return v\n"
        + "".join(f"\n\ndef f{i}():\n    return {i} * 3\n" for i in range(60))
    )
    for name in ("pms5003", "sht3x", "adxl345"):
        (folder / "drivers" / f"{name}.py").write_text(
            f"NAME = {name!r}\n"
            + "".join(f"\n\ndef parse{i}(frame):\n    return frame[{i}]\n" for i in range(40))
        )
    return folder


@pytest.fixture
def bundles(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for version in ("1.2.0", "1.3.0"):
        src = firmware_source(tmp_path / f"src-{version}", version)
        out[version] = tmp_path / f"bundle-{version}"
        assert edgectl(["firmware", "build", str(src), "--version", version, "--out", str(out[version])]) == 0
    return out


@pytest.fixture
def flash_dir(tmp_path: Path) -> Path:
    return tmp_path / "board-flash"


@pytest.fixture
def board(flash_dir: Path) -> Iterator[StockBoard]:
    with StockBoard(flash_dir) as sim:
        yield sim


def on_board(flash_dir: Path, path: str) -> bytes:
    return (flash_dir / path.lstrip("/")).read_bytes()


def test_official_mpremote_lists_and_copies_files(board: StockBoard, tmp_path: Path) -> None:
    # mpremote itself does not wait out a board's boot (on a pty it would wait forever): give it a booted board.
    assert board.booted.wait(10)
    local = tmp_path / "hello.txt"
    local.write_bytes(b"street pole 42\n" * 100)
    mpremote = [sys.executable, "-m", "mpremote", "connect", board.port]
    run = lambda *args: subprocess.run([*mpremote, *args], capture_output=True, text=True, timeout=60)  # noqa: E731
    assert run("fs", "mkdir", ":lib").returncode == 0
    assert run("fs", "cp", str(local), ":lib/hello.txt").returncode == 0
    listing = run("fs", "ls", ":lib")
    assert listing.returncode == 0 and "1500 hello.txt" in listing.stdout
    digest = run("fs", "sha256sum", ":lib/hello.txt")
    assert hashlib.sha256(local.read_bytes()).hexdigest() in digest.stdout
    back = tmp_path / "back.txt"
    assert run("fs", "cp", ":lib/hello.txt", str(back)).returncode == 0
    assert back.read_bytes() == local.read_bytes()
    missing = run("fs", "cat", ":nope.txt")
    assert missing.returncode != 0 and "No such file" in missing.stderr


def test_flash_from_scratch_then_update_keeps_the_previous(
    bundles, board: StockBoard, flash_dir: Path, capsys
) -> None:
    assert edgectl(["board", "flash", str(bundles["1.2.0"]), "--port", board.port, "--quiet"]) == 0
    assert "firmware 1.2.0 installed" in capsys.readouterr().out
    assert on_board(flash_dir, "/fw/current") == b"1.2.0\n"
    assert on_board(flash_dir, "/main.py") == LOADER
    for name in ("app.mpy", "drivers/sht3x.mpy", "main.py"):
        assert on_board(flash_dir, f"/fw/1.2.0/{name}") == (bundles["1.2.0"] / name).read_bytes()
    resets = board.resets
    assert edgectl(["board", "flash", str(bundles["1.3.0"]), "--port", board.port, "--quiet"]) == 0
    assert "was 1.2.0, kept for rollback" in capsys.readouterr().out
    assert board.resets > resets, "the board was rebooted into the new version"
    assert (
        on_board(flash_dir, "/fw/current") == b"1.3.0\n" and on_board(flash_dir, "/fw/previous") == b"1.2.0\n"
    )
    assert (flash_dir / "fw" / "1.2.0" / "app.mpy").is_file(), "the previous version stays for rollback"
    assert not list(flash_dir.rglob("*.tmp")) and not list(flash_dir.rglob("*.part"))
    assert board.paste_overruns == 0, "raw-paste flow control was respected"


def test_downgrade_is_refused_unless_allowed(bundles, board: StockBoard, flash_dir: Path, capsys) -> None:
    assert edgectl(["board", "flash", str(bundles["1.3.0"]), "--port", board.port, "--quiet"]) == 0
    assert edgectl(["board", "flash", str(bundles["1.2.0"]), "--port", board.port, "--quiet"]) == DOWNGRADE
    assert "older than the installed 1.3.0" in capsys.readouterr().err
    assert on_board(flash_dir, "/fw/current") == b"1.3.0\n"
    args = ["board", "flash", str(bundles["1.2.0"]), "--port", board.port, "--quiet", "--allow-downgrade"]
    assert edgectl(args) == 0
    assert on_board(flash_dir, "/fw/current") == b"1.2.0\n"


def test_interrupted_flash_keeps_the_old_firmware_and_a_second_run_completes(
    bundles, flash_dir: Path, capsys
) -> None:
    with StockBoard(flash_dir) as first:
        assert edgectl(["board", "flash", str(bundles["1.2.0"]), "--port", first.port, "--quiet"]) == 0
    capsys.readouterr()
    # The cable is pulled in the middle of the transfer of 1.3.0.
    with StockBoard(flash_dir, unplug_after=12_000) as pulled:
        code = edgectl(["board", "flash", str(bundles["1.3.0"]), "--port", pulled.port, "--quiet"])
        assert pulled.unplugged.is_set()
    err = capsys.readouterr().err
    assert code == NO_BOARD and "Traceback" not in err
    assert on_board(flash_dir, "/fw/current") == b"1.2.0\n", "the old firmware still boots"
    assert (flash_dir / "fw" / "1.2.0" / "app.mpy").is_file()
    partial = list((flash_dir / "fw" / "1.3.0.part").rglob("*"))
    assert partial, "the transfer was under way when the cable was pulled"
    # Replugged (a new port): the second run reuses what was verified and completes.
    with StockBoard(flash_dir) as again:
        assert edgectl(["board", "flash", str(bundles["1.3.0"]), "--port", again.port, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "firmware 1.3.0 installed" in out and " 0 reused" not in out
    assert on_board(flash_dir, "/fw/current") == b"1.3.0\n"
    for name in ("app.mpy", "drivers/pms5003.mpy", "drivers/adxl345.mpy", "main.py", "bundle.json"):
        assert on_board(flash_dir, f"/fw/1.3.0/{name}") == (bundles["1.3.0"] / name).read_bytes()


def test_wrong_bytecode_version_is_refused_before_writing(bundles, flash_dir: Path, capsys) -> None:
    with StockBoard(flash_dir, mpy=5) as old_board:
        assert (
            edgectl(["board", "flash", str(bundles["1.2.0"]), "--port", old_board.port, "--quiet"])
            == BYTECODE
        )
    err = capsys.readouterr().err
    assert "bytecode v5" in err and "--mpy 5" in err
    assert not (flash_dir / "fw").exists()


def test_a_port_with_no_micropython_behind_it(monkeypatch, capsys) -> None:
    import os

    monkeypatch.setattr(repl_link, "ENTER_PAUSES_S", (0.0, 0.1))
    controller, peripheral = os.openpty()
    try:
        assert edgectl(["board", "flash", "/nonexistent-bundle", "--port", os.ttyname(peripheral)]) != 0
        assert "no such bundle folder" in capsys.readouterr().err
        board = repl_link.ReplBoard(os.ttyname(peripheral))
        with pytest.raises(
            repl_link.EdgectlError, match="could not enter the MicroPython raw REPL"
        ) as caught:
            board.enter_raw_repl()
        board.close()
        assert caught.value.exit_code == NO_BOARD
    finally:
        os.close(controller)
        os.close(peripheral)


def test_a_port_with_nothing_behind_it_shows_each_attempt_and_a_short_error(
    bundles, monkeypatch, capsys
) -> None:
    """As on a serial port with no board (a laptop's /dev/ttyS0): the terminal is never blank."""
    import os

    monkeypatch.setattr(repl_link, "ENTER_PAUSES_S", (0.0, 0.1, 0.2))
    controller, peripheral = os.openpty()
    port = os.ttyname(peripheral)
    try:
        assert edgectl(["board", "flash", str(bundles["1.2.0"]), "--port", port]) == NO_BOARD
    finally:
        os.close(controller)
        os.close(peripheral)
    err = capsys.readouterr().err
    progress, error = err.splitlines()[0], err.splitlines()[-1]
    assert progress == f"{port}: connecting: our firmware ...... no answer; raw REPL ... no answer", err
    assert error.startswith(f"edgectl: {port}: could not enter the MicroPython raw REPL (3 tries); press")
    assert len(error) < 250, error


def test_flashing_the_installed_version_again_sends_nothing(
    bundles, board: StockBoard, flash_dir: Path, capsys
) -> None:
    assert (
        edgectl(["board", "flash", str(bundles["1.2.0"]), "--port", board.port, "--quiet", "--no-reboot"])
        == 0
    )
    capsys.readouterr()
    assert (
        edgectl(["board", "flash", str(bundles["1.2.0"]), "--port", board.port, "--quiet", "--no-reboot"])
        == 0
    )
    out = capsys.readouterr().out
    assert "(0 file(s) sent, 6 reused; it was already installed and intact)" in out
    assert on_board(flash_dir, "/fw/current") == b"1.2.0\n" and not (flash_dir / "fw" / "previous").exists()


def test_board_sim_stock_command_serves_mpremote(tmp_path: Path) -> None:
    import os
    import signal

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    sim = subprocess.Popen(
        [sys.executable, "-m", "tools.edgectl", "board", "sim", "--stock", "--flash", str(tmp_path / "f")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert sim.stdout is not None
        port = sim.stdout.readline().split(" on ")[1].split(" ")[0]
        out = subprocess.run(
            [sys.executable, "-m", "mpremote", "connect", port, "exec", "print(6 * 7)"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.stdout.strip() == "42"
    finally:
        sim.send_signal(signal.SIGINT)
        assert sim.wait(10) == 0


def test_a_source_folder_is_compiled_for_the_bytecode_the_board_reports(
    tmp_path: Path, flash_dir: Path, capsys
) -> None:
    src = firmware_source(tmp_path / "src", "2.0.0")
    with StockBoard(flash_dir, mpy=5) as old_board:  # MicroPython 1.12-1.18: bytecode v5
        assert edgectl(["board", "flash", str(src), "--port", old_board.port, "--quiet"]) == USAGE
        assert "give --version" in capsys.readouterr().err
        args = [
            "board",
            "flash",
            str(src),
            "--version",
            "2.0.0",
            "--port",
            old_board.port,
            "--no-reboot",
        ]
        assert edgectl(args) == 0
    assert "compiled street-board 2.0.0 for bytecode v5" in capsys.readouterr().out
    assert on_board(flash_dir, "/fw/2.0.0/app.mpy")[:2] == b"M\x05"
    assert on_board(flash_dir, "/fw/current") == b"2.0.0\n"


def test_a_full_board_is_refused_before_writing(bundles, flash_dir: Path, capsys) -> None:
    with StockBoard(flash_dir, capacity=8 * 1024) as small:
        assert edgectl(["board", "flash", str(bundles["1.2.0"]), "--port", small.port, "--quiet"]) == FLASH
    err = capsys.readouterr().err
    assert "KB free and the bundle needs" in err and "keeps firmware (none)" in err
    assert not (flash_dir / "main.py").exists()


def test_rollback_to_the_kept_version_only_switches_and_reflash_keeps_it(
    bundles, board: StockBoard, flash_dir: Path, capsys
) -> None:
    for version in ("1.2.0", "1.3.0", "1.3.0"):  # the second 1.3.0 must not drop 1.2.0
        assert (
            edgectl(["board", "flash", str(bundles[version]), "--port", board.port, "--quiet", "--no-reboot"])
            == 0
        )
    assert (flash_dir / "fw" / "1.2.0" / "app.mpy").is_file()
    capsys.readouterr()
    args = [
        "board",
        "flash",
        str(bundles["1.2.0"]),
        "--port",
        board.port,
        "--quiet",
        "--no-reboot",
        "--allow-downgrade",
    ]
    assert edgectl(args) == 0
    assert "(0 file(s) sent, 6 reused; was 1.3.0, kept for rollback)" in capsys.readouterr().out
    assert (
        on_board(flash_dir, "/fw/current") == b"1.2.0\n" and on_board(flash_dir, "/fw/previous") == b"1.3.0\n"
    )
