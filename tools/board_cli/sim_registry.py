"""Simulated boards started with `edgectl board sim` announce their port here, so that
`edgectl board list` shows them beside the USB ports (a pseudo-terminal has no USB ids to find)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SimulatedPort:
    port: str
    kind: str  # "our firmware" or "stock MicroPython"
    detail: str
    pid: int


def registry() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"edgectl-sim-boards-{os.getuid()}"


@contextlib.contextmanager
def announced(port: str, kind: str, detail: str) -> Iterator[None]:
    """While the block runs, `board list` shows this simulated board."""
    folder = registry()
    folder.mkdir(mode=0o700, exist_ok=True)
    entry = folder / f"{os.getpid()}-{abs(hash(port)):x}.json"
    entry.write_text(json.dumps({"port": port, "kind": kind, "detail": detail, "pid": os.getpid()}))
    try:
        yield
    finally:
        entry.unlink(missing_ok=True)


def running() -> list[SimulatedPort]:
    """The simulated boards still running; entries of stopped ones (a killed simulator) are removed."""
    folder = registry()
    out = []
    for entry in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(entry.read_text())
            sim = SimulatedPort(str(data["port"]), str(data["kind"]), str(data["detail"]), int(data["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            entry.unlink(missing_ok=True)
            continue
        if _alive(sim.pid) and os.path.exists(sim.port):
            out.append(sim)
        elif not _alive(sim.pid):
            entry.unlink(missing_ok=True)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
