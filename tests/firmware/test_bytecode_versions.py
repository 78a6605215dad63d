"""The shipped firmware builds for every bytecode version edgectl offers (the guide's fix for exit 10
is a bundle built with --mpy 5 for an old MicroPython), with the real mpy-cross compilers."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.trust.bundle import load_bundle
from tools.edgectl import main as edgectl
from tools.firmware_build import _MPY_FLAGS

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


@pytest.mark.parametrize("mpy", sorted(_MPY_FLAGS))
def test_the_shipped_firmware_builds_for_each_bytecode_version(tmp_path: Path, capsys, mpy: int) -> None:
    out = tmp_path / f"bundle-v{mpy}"
    build = ["firmware", "build", str(FIRMWARE), "--version", "1.0.1", "--out", str(out), "--mpy", str(mpy)]
    assert edgectl(build) == 0, capsys.readouterr().err
    bundle = load_bundle(out)
    assert bundle.mpy_major == mpy
    compiled = sorted(out.rglob("*.mpy"))
    assert any(p.name == "sensor.mpy" for p in compiled) and len(compiled) >= 10
    assert all(p.read_bytes()[:2] == b"M" + bytes([mpy]) for p in compiled)
