"""Installing a firmware bundle on a board's filesystem: resumable, verified, switched in one rename.

Layout on the board::

    /main.py          a small loader, written once: runs /fw/<current>, falls back to /fw/<previous>
    /fw/current       the version that boots (one line)
    /fw/previous      the version before it, kept for rollback
    /fw/1.4.0/...     one folder per installed version (bundle files and bundle.json)
    /fw/1.5.0.part/   a version being transferred

Every file is written under a temporary name, checked by sha256 computed on the board, then renamed.
The new version becomes the running one only by the final rename of ``/fw/current.tmp`` over
``/fw/current``: a cable pulled at any earlier moment leaves the old firmware booting, and the next
run skips the files already verified in the ``.part`` folder and completes the update.
The transport (raw REPL or our wire protocol) is behind ``BoardFiles``: edgectl uses it at the pole
(tools/board_cli), the gateway for an update sent over MQTT (agent/boards/updates.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from agent.trust.bundle import BUNDLE_FILE, FirmwareBundle

FW_DIR = "/fw"
LOADER = b"""# Boot loader written by edgectl: runs the current firmware, or the previous one if it fails.
import sys


def _version(name):
    try:
        with open("/fw/" + name) as f:
            return f.read().strip()
    except OSError:
        return None


def _run(version):
    base = "/fw/" + version
    before = list(sys.modules)
    sys.path.insert(0, base + "/lib")
    sys.path.insert(0, base)
    try:
        __import__("main")
    except Exception:
        # Forget every module the failed version loaded, so the fallback imports its own.
        for name in list(sys.modules):
            if name not in before:
                del sys.modules[name]
        raise
    finally:
        sys.path.remove(base)
        sys.path.remove(base + "/lib")


# On FAT a rename cannot replace a file, so "current" is briefly absent while it is switched:
# a reset in that instant boots the previous version.
_current = _version("current")
_previous = _version("previous")
_first = _current or _previous
if _first:
    try:
        _run(_first)
    except KeyboardInterrupt:
        raise
    except Exception as e:
        sys.print_exception(e)
        if _previous and _previous != _first:
            print("edgectl loader: firmware", _first, "failed; starting", _previous)
            _run(_previous)
"""

Progress = Callable[[int], None]  # bytes just sent


class BoardFiles(Protocol):
    """What installing needs from a board, over whichever link reaches it."""

    def read(self, path: str) -> bytes | None: ...
    def write(self, path: str, data: bytes, progress: Progress) -> None: ...
    def sha256(self, path: str) -> str | None: ...
    def rename(self, old: str, new: str) -> None: ...
    def remove_tree(self, path: str) -> None: ...
    def makedirs(self, path: str) -> None: ...
    def listdir(self, path: str) -> list[str]: ...
    def free_bytes(self) -> int: ...


class InstallError(RuntimeError):
    """The update stopped; the board still boots its previous firmware."""


@dataclass(frozen=True)
class InstallPlan:
    version: str
    previous: str | None
    send: list[str]  # files still to transfer
    skip: list[str]  # files already on the board, verified
    bytes_to_send: int


@dataclass(frozen=True)
class InstallResult:
    version: str
    previous: str | None
    sent: int  # files transferred this run
    reused: int  # files already verified on the board (a resumed or repeated flash)
    unchanged: bool = False  # the version was already installed, intact and current


def _version_file(board: BoardFiles, name: str) -> str | None:
    raw = board.read(f"{FW_DIR}/{name}")
    return raw.decode("utf-8", "replace").strip() or None if raw is not None else None


def current_version(board: BoardFiles) -> str | None:
    return _version_file(board, "current")


def _bundle_entries(bundle: FirmwareBundle) -> dict[str, tuple[bytes, str]]:
    entries = {name: (bundle.path(name).read_bytes(), digest) for name, digest in bundle.files.items()}
    listing = bundle.path(BUNDLE_FILE).read_bytes()
    entries[BUNDLE_FILE] = (listing, hashlib.sha256(listing).hexdigest())
    return entries


def plan_install(board: BoardFiles, bundle: FirmwareBundle) -> InstallPlan:
    """What a run has to send: files of the ``.part`` folder already verified are not sent again."""
    part = f"{FW_DIR}/{bundle.version}.part"
    send, skip, size = [], [], 0
    for name, (data, digest) in sorted(_bundle_entries(bundle).items()):
        if board.sha256(f"{part}/{name}") == digest:
            skip.append(name)
        else:
            send.append(name)
            size += len(data)
    return InstallPlan(bundle.version, current_version(board), send, skip, size)


def installed_intact(board: BoardFiles, bundle: FirmwareBundle) -> bool:
    """The bundle's version folder is complete on the board, every file as built."""
    folder = f"{FW_DIR}/{bundle.version}"
    return all(board.sha256(f"{folder}/{n}") == d for n, (_, d) in _bundle_entries(bundle).items())


def write_verified(board: BoardFiles, path: str, data: bytes, progress: Progress) -> None:
    tmp = path + ".tmp"
    board.write(tmp, data, progress)
    got = board.sha256(tmp)
    want = hashlib.sha256(data).hexdigest()
    if got != want:
        raise InstallError(
            f"{path}: the board computed sha256 {str(got)[:12]}…, expected {want[:12]}…; run again"
        )
    board.rename(tmp, path)


def install(board: BoardFiles, bundle: FirmwareBundle, progress: Progress = lambda n: None) -> InstallResult:
    """Transfer, verify and switch to ``bundle``; raises InstallError with the board still bootable."""
    entries = _bundle_entries(bundle)
    previous = current_version(board)
    final = f"{FW_DIR}/{bundle.version}"
    sent, reused = 0, len(entries)
    # An intact folder of this version (the running one, or the previous one on a rollback) is reused.
    if not installed_intact(board, bundle):
        plan = plan_install(board, bundle)
        free = board.free_bytes()
        if plan.bytes_to_send + 4096 > free:
            raise InstallError(
                f"the board has {free // 1024} KB free and the bundle needs {plan.bytes_to_send // 1024 + 4} KB; "
                "remove old files from the board (mpremote fs rm) and run again"
            )
        part = f"{final}.part"
        for name in plan.send:
            board.makedirs(f"{part}/{name}".rsplit("/", 1)[0])
            data, _digest = entries[name]
            write_verified(board, f"{part}/{name}", data, progress)
            sent += 1
        reused = len(plan.skip)
        # A damaged folder of this version (not intact, checked above) makes way for the verified one.
        if final.rsplit("/", 1)[1] in board.listdir(FW_DIR):
            board.remove_tree(final)
        board.rename(part, final)
        if not installed_intact(board, bundle):
            raise InstallError(f"{final}: files changed after verification; run again")
    if board.sha256("/main.py") != hashlib.sha256(LOADER).hexdigest():
        write_verified(board, "/main.py", LOADER, lambda n: None)
    if previous != bundle.version:
        if previous is not None:
            write_verified(board, f"{FW_DIR}/previous", previous.encode() + b"\n", lambda n: None)
        write_verified(board, f"{FW_DIR}/current", bundle.version.encode() + b"\n", lambda n: None)
    _prune(board, keep={current_version(board), _version_file(board, "previous")})
    unchanged = previous == bundle.version and sent == 0
    return InstallResult(
        bundle.version, previous if previous != bundle.version else None, sent, reused, unchanged
    )


def _prune(board: BoardFiles, keep: set[str | None]) -> None:
    """Remove versions that are neither current nor previous, and abandoned transfers of other versions."""
    for name in board.listdir(FW_DIR):
        version = name.removesuffix(".part")
        if name in ("current", "previous") or name.endswith(".tmp"):
            continue
        if version not in keep:
            board.remove_tree(f"{FW_DIR}/{name}")
