"""`edgectl firmware build|verify|check`: real mpy-cross output, signatures, downgrade refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.trust.bundle import DowngradeRefused, check_upgrade, load_bundle
from tools.edgectl import main as edgectl
from tools.errors import BYTECODE, DOWNGRADE, FAILED, SIGNATURE, USAGE


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "firmware"
    (src / "drivers").mkdir(parents=True)
    (src / "tests").mkdir()
    (src / "main.py").write_text("import app\napp.run()\n")
    (src / "app.py").write_text("def run():\n    return 42\n")
    (src / "drivers" / "sht3x.py").write_text("def crc8(data):\n    return 0\n")
    (src / "tests" / "test_app.py").write_text("import app\n")
    return src


def keygen(tmp_path: Path, name: str, capsys) -> tuple[Path, str]:
    path = tmp_path / name
    assert edgectl(["firmware", "keygen", str(path)]) == 0
    return path, capsys.readouterr().out.strip().splitlines()[-1]


def test_build_compiles_lists_and_signs(source: Path, tmp_path: Path, capsys) -> None:
    key, public = keygen(tmp_path, "fw.pem", capsys)
    out = tmp_path / "bundle"
    assert (
        edgectl(
            ["firmware", "build", str(source), "--version", "1.4.0", "--out", str(out), "--key", str(key)]
        )
        == 0
    )
    assert "signed by key" in capsys.readouterr().out
    doc = json.loads((out / "bundle.json").read_text())
    assert set(doc["files"]) == {"main.py", "app.mpy", "drivers/sht3x.mpy"}  # tests left out
    assert (out / "main.py").read_text() == (source / "main.py").read_text()  # boot entry stays source
    header = (out / "app.mpy").read_bytes()[:2]
    assert header == b"M\x06" and doc["mpy"] == 6 and doc["version"] == "1.4.0"
    assert edgectl(["firmware", "verify", str(out), "--trust-key", public, "--installed", "1.3.9"]) == 0
    assert "1.4.0" in capsys.readouterr().out


def test_older_bytecode_version_for_old_boards(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "old"
    assert (
        edgectl(["firmware", "build", str(source), "--version", "1.0.0", "--out", str(out), "--mpy", "5"])
        == 0
    )
    assert (out / "app.mpy").read_bytes()[:2] == b"M\x05"
    assert load_bundle(out).mpy_major == 5


def test_build_errors_are_one_line(source: Path, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "b")
    assert edgectl(["firmware", "build", str(source), "--version", "1.4", "--out", out]) == USAGE
    assert "MAJOR.MINOR.PATCH" in capsys.readouterr().err
    assert (
        edgectl(["firmware", "build", str(source), "--version", "1.4.0", "--out", out, "--mpy", "9"])
        == BYTECODE
    )
    assert "bytecode version 9" in capsys.readouterr().err
    (source / "app.py").write_text("def run(:\n")
    assert edgectl(["firmware", "build", str(source), "--version", "1.4.0", "--out", out]) == BYTECODE
    err = capsys.readouterr().err
    assert "app.py, line 1: mpy-cross cannot compile it" in err and "Traceback" not in err
    assert not Path(out).exists(), "a failed build leaves no half bundle"


def test_verify_refuses_tampered_untrusted_and_downgrade(source: Path, tmp_path: Path, capsys) -> None:
    key, public = keygen(tmp_path, "fw.pem", capsys)
    _, other = keygen(tmp_path, "other.pem", capsys)
    out = tmp_path / "bundle"
    assert (
        edgectl(
            ["firmware", "build", str(source), "--version", "2.0.0", "--out", str(out), "--key", str(key)]
        )
        == 0
    )
    capsys.readouterr()
    assert edgectl(["firmware", "verify", str(out), "--trust-key", other]) == SIGNATURE
    assert "not in the trust list" in capsys.readouterr().err
    assert (
        edgectl(["firmware", "verify", str(out), "--trust-key", public, "--installed", "2.1.0"]) == DOWNGRADE
    )
    assert "--allow-downgrade" in capsys.readouterr().err
    assert (
        edgectl(
            [
                "firmware",
                "verify",
                str(out),
                "--trust-key",
                public,
                "--installed",
                "2.1.0",
                "--allow-downgrade",
            ]
        )
        == 0
    )
    (out / "app.mpy").write_bytes(b"M\x06tampered")
    capsys.readouterr()
    assert edgectl(["firmware", "verify", str(out), "--trust-key", public]) == SIGNATURE
    assert "app.mpy: changed" in capsys.readouterr().err


def test_unsigned_bundle_is_refused_when_keys_are_trusted(source: Path, tmp_path: Path, capsys) -> None:
    _, public = keygen(tmp_path, "fw.pem", capsys)
    out = tmp_path / "bundle"
    assert edgectl(["firmware", "build", str(source), "--version", "1.0.0", "--out", str(out)]) == 0
    assert "UNSIGNED" in capsys.readouterr().out
    assert edgectl(["firmware", "verify", str(out)]) == 0
    assert edgectl(["firmware", "verify", str(out), "--trust-key", public]) == SIGNATURE
    assert "not signed" in capsys.readouterr().err


def test_version_order() -> None:
    check_upgrade("1.9.0", "1.10.0")  # numeric, not text, order
    check_upgrade(None, "0.1.0")
    check_upgrade("dev-build", "0.1.0")
    with pytest.raises(DowngradeRefused):
        check_upgrade("1.10.0", "1.9.9")


def test_check_reports_syntax_errors_and_missing_port_apis(tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.py").write_text("def f(:\n")
    (tmp_path / "uses_cpython.py").write_text("import machine\nmachine.Pin(2).no_such_method()\n")
    (tmp_path / "good.py").write_text("import machine\nmachine.Pin(2).value(1)\n")
    assert edgectl(["firmware", "check", str(tmp_path), "--port", "esp32"]) == FAILED
    out = capsys.readouterr().out
    assert "FAIL  " + str(tmp_path / "bad.py") in out and "syntax error" in out
    assert "FAIL  " + str(tmp_path / "uses_cpython.py") in out and "no_such_method" in out
    assert "ok    " + str(tmp_path / "good.py") in out
    assert "1 of 3 file(s) fit esp32" in out


def test_our_firmware_fits_both_ports(capsys) -> None:
    firmware = Path(__file__).resolve().parents[2] / "firmware" / "streetfw"
    assert edgectl(["firmware", "check", str(firmware)]) == 0, capsys.readouterr().out
    assert "fit esp32, rp2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("port", "other", "code"),
    [
        # The ESP32 port's own module does not exist on the RP2040, nor the RP2040's PIO on the ESP32.
        ("esp32", "rp2", "import esp32\nprint(esp32.raw_temperature())\n"),
        ("rp2", "esp32", "import rp2\nprint(rp2.bootsel_button())\n"),
    ],
)
def test_a_call_one_port_lacks_fails_only_on_that_port(
    tmp_path: Path, capsys, port: str, other: str, code: str
) -> None:
    (tmp_path / "driver.py").write_text(code)
    assert edgectl(["firmware", "check", str(tmp_path), "--port", port]) == 0, capsys.readouterr().out
    capsys.readouterr()
    assert edgectl(["firmware", "check", str(tmp_path), "--port", other]) == FAILED
    out = capsys.readouterr().out
    assert "FAIL  " + str(tmp_path / "driver.py") in out and f"0 of 1 file(s) fit {other}" in out
