"""The two command lines answer --help, and `edgectl events decode` prints events as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"


def run(module: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", module, *args], input=stdin, capture_output=True, cwd=ROOT, env=env
    )


def test_help_of_both_commands() -> None:
    out = run("tools.edgectl", "--help")
    assert out.returncode == 0 and b"config" in out.stdout and b"events" in out.stdout
    out = run("agent", "--help")
    assert out.returncode == 0 and b"--config" in out.stdout


def test_decode_file_and_stdin_print_the_vector_json() -> None:
    expected = json.loads((VECTORS / "alarm_cover_start.json").read_text())
    out = run("tools.edgectl", "events", "decode", str(VECTORS / "alarm_cover_start.msgpack"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == expected
    out = run("tools.edgectl", "events", "decode", stdin=(VECTORS / "alarm_cover_start.msgpack").read_bytes())
    assert out.returncode == 0 and json.loads(out.stdout) == expected


def test_decode_rejects_bad_payload_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(b"\x81\xa1v\x07")
    out = run("tools.edgectl", "events", "decode", str(bad))
    assert out.returncode == 2
    assert b"unsupported schema version 7" in out.stderr and b"Traceback" not in out.stderr
    out = run("tools.edgectl", "events", "decode", str(tmp_path / "missing.msgpack"))
    assert out.returncode == 2 and b"cannot read" in out.stderr


def test_agent_refuses_an_invalid_config_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[device]\nid = "p1"\ncolour = "red"\n')
    out = run("agent", "--config", str(cfg))
    assert out.returncode == 2 and b"device.colour: unknown key" in out.stderr


def test_agent_refuses_a_device_key_others_can_read_naming_the_file(tmp_path: Path) -> None:
    key = tmp_path / "device.key"
    key.write_text("not even a key\n")
    key.chmod(0o644)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[device]\nid = "p1"\nkey_file = "{key}"\n[outbox]\npath = "{tmp_path / "o.sqlite"}"\n'
        '[uplink]\nurl = "mqtt://127.0.0.1:9"\n'
    )
    out = run("agent", "--config", str(cfg))
    assert out.returncode == 1, out.stderr
    assert f"the device key {key} cannot be used" in out.stderr.decode() and b"chmod 600" in out.stderr
    assert b"Traceback" not in out.stderr
