"""`edgectl firmware new-driver`: what it writes works as written (its own tests pass, down to readings
on MQTT, and the driver fits both ports), is lint-clean, and bad names are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.driver_template import DriverSpec, write_driver
from tools.errors import EdgectlError

REPO = Path(__file__).resolve().parents[2]


def edgectl(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.edgectl", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.parametrize("bus", ["i2c", "uart", "adc"])
def test_a_generated_driver_passes_its_own_tests_end_to_end(tmp_path: Path, bus: str) -> None:
    name = f"flood_{bus}"
    made = edgectl("firmware", "new-driver", name, "--bus", bus, "--key", "level_cm", "--unit", "cm",
                   "--root", str(tmp_path))  # fmt: skip
    assert made.returncode == 0, made.stderr
    for rel in (f"firmware/lib/{name}.py", f"tests/drivers/test_{name}.py", f"setup/{name}.toml"):
        assert (tmp_path / rel).is_file(), rel
    # The setup it wrote is one `edgectl board provision` accepts.
    from tools.board_cli.board_setup import load_setup

    assert load_setup(tmp_path / "setup" / f"{name}.toml").sensors[0].type == name
    for path in tmp_path.rglob("*.py"):  # linted as if in this repository, with its rules for firmware/lib
        rel = str(path.relative_to(tmp_path))
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--output-format", "concise", "--stdin-filename", rel, "-"],
            input=path.read_text(), capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        assert lint.returncode == 0, lint.stdout
        form = subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--check", "--stdin-filename", rel, "-"],
            input=path.read_text(), capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        assert form.returncode == 0, f"{rel} is not formatted"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         str(tmp_path / "tests" / "drivers")],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "4 passed" in run.stdout


def test_the_generated_test_fails_when_the_driver_is_wrong(tmp_path: Path) -> None:
    write_driver(DriverSpec("gauge", "i2c", "level_cm", "cm"), tmp_path)
    driver = tmp_path / "firmware" / "lib" / "gauge.py"
    driver.write_text(driver.read_text().replace("SCALE = 0.01", "SCALE = 0.1"))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         str(tmp_path / "tests" / "drivers"), "-k", "reads_the_simulated_device"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 1 and "1 failed" in run.stdout


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Flood", "lowercase"),
        ("class", "lowercase"),
        ("sht3x", "taken by a module on the board"),
        ("json", "taken by a module on the board"),
        ("x", "2-31"),
    ],
)
def test_bad_driver_names_are_refused(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(EdgectlError, match=message):
        write_driver(DriverSpec(name, "i2c", "value", "1"), tmp_path)
    assert not (tmp_path / "firmware").exists()


def test_an_existing_driver_is_not_overwritten(tmp_path: Path) -> None:
    write_driver(DriverSpec("gauge", "adc", "level_cm", "cm"), tmp_path)
    (tmp_path / "firmware" / "lib" / "gauge.py").write_text("# mine\n")
    result = edgectl("firmware", "new-driver", "gauge", "--root", str(tmp_path))
    assert result.returncode != 0 and "--force" in result.stderr
    assert (tmp_path / "firmware" / "lib" / "gauge.py").read_text() == "# mine\n"
