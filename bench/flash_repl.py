"""Flashing over the raw REPL: bytes on the wire per firmware byte, and time, edgectl against mpremote.

Both install the same compiled bundle on the simulated stock MicroPython board in one run:
``edgectl board flash`` (base64 chunks, sha256 verified on the board, atomic switch) and mpremote's
own ``fs cp`` of the same files (repr chunks, no verification). The simulated board counts the bytes
it receives; a pseudo-terminal has no baud rate, so "at 115200 baud" is the wire bytes divided by the
line rate (10 bits per byte). Run: ``python bench/flash_repl.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware.sim.stock_board import StockBoard  # noqa: E402
from tools.edgectl import main as edgectl  # noqa: E402

BAUD = 115200


def source(folder: Path) -> Path:
    (folder / "drivers").mkdir(parents=True)
    (folder / "main.py").write_text("import app\napp.run()\n")
    (folder / "app.py").write_text(
        "".join(f"def f{i}(x):\n    return x * {i} + {i * 7}\n\n" for i in range(300))
    )
    for name in ("pms5003", "sht3x", "adxl345", "noise", "water"):
        body = "".join(
            f"def parse{i}(frame):\n    return (frame[{i % 8}] << 8) | frame[{(i + 1) % 8}]\n\n"
            for i in range(80)
        )
        (folder / "drivers" / f"{name}.py").write_text(body)
    return folder


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        bundle = tmpdir / "bundle"
        assert (
            edgectl(
                ["firmware", "build", str(source(tmpdir / "src")), "--version", "1.0.0", "--out", str(bundle)]
            )
            == 0
        )
        files = sorted(p for p in bundle.rglob("*") if p.is_file())
        payload = sum(p.stat().st_size for p in files)

        with StockBoard(tmpdir / "flash-a") as board:
            board.booted.wait(10)
            start_bytes, t0 = board.received, time.perf_counter()
            assert (
                edgectl(["board", "flash", str(bundle), "--port", board.port, "--quiet", "--no-reboot"]) == 0
            )
            ours_s, ours_wire = time.perf_counter() - t0, board.received - start_bytes

        with StockBoard(tmpdir / "flash-b") as board:
            board.booted.wait(10)
            start_bytes, t0 = board.received, time.perf_counter()
            cmd = [sys.executable, "-m", "mpremote", "connect", board.port, "fs", "mkdir", ":drivers"]
            for path in files:
                cmd += ["+", "fs", "cp", str(path), ":" + path.relative_to(bundle).as_posix()]
            subprocess.run(cmd, check=True, capture_output=True)
            theirs_s, theirs_wire = time.perf_counter() - t0, board.received - start_bytes

    print(f"bundle: {len(files)} files, {payload} bytes")
    print("| tool | wire bytes | wire / payload | at 115200 baud | wall time on the pty |")
    print("|---|---|---|---|---|")
    for name, wire, seconds in (
        ("edgectl board flash (base64, verified, atomic)", ours_wire, ours_s),
        ("mpremote fs cp (repr, unverified)", theirs_wire, theirs_s),
    ):
        print(f"| {name} | {wire} | {wire / payload:.2f} | {wire * 10 / BAUD:.1f} s | {seconds:.1f} s |")
    print(f"edgectl / mpremote wire bytes: {ours_wire / theirs_wire:.2f}")


if __name__ == "__main__":
    main()
