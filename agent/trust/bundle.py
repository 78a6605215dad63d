"""A firmware bundle: the compiled files a board runs, described by a (signed) ``bundle.json``.

It lives in the agent so that ``edgectl board flash`` and a gateway updating its boards apply the same
checks before any byte goes to a board: every file matches its hash, the signature comes from a
trusted key when signatures are required, the bytecode version suits the board, and the bundle is not
older than what the board runs (no silent rollback to a vulnerable version).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .keys import TrustedKey, TrustList
from .packages import SignatureError, check_listing, read_listing, verify_document

BUNDLE_FILE = "bundle.json"
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


class BundleError(ValueError):
    """A bundle that must not be flashed; the message says why and what to do."""


class DowngradeRefused(BundleError):
    """The bundle is older than the firmware the board runs."""


def parse_version(text: str) -> tuple[int, int, int]:
    """MAJOR.MINOR.PATCH as a tuple; firmware versions stay this simple so boards can compare them."""
    m = _VERSION.match(text.strip())
    if not m:
        raise BundleError(f"firmware version {text!r} is not MAJOR.MINOR.PATCH, e.g. 1.4.2")
    return int(m[1]), int(m[2]), int(m[3])


def check_upgrade(installed: str | None, candidate: str, allow_downgrade: bool = False) -> None:
    """Refuse a candidate older than the installed firmware unless a downgrade is explicitly allowed."""
    new = parse_version(candidate)
    if installed is None or allow_downgrade:
        return
    try:
        old = parse_version(installed)
    except BundleError:
        return  # a board with a foreign or development firmware: anything of ours is an upgrade
    if new < old:
        raise DowngradeRefused(
            f"the bundle is version {candidate}, older than the installed {installed}; older firmware "
            "may have known vulnerabilities. Flash a newer bundle, or pass --allow-downgrade if you "
            "really mean to roll back"
        )


@dataclass(frozen=True)
class FirmwareBundle:
    folder: Path
    name: str
    version: str
    mpy_major: int  # MicroPython bytecode version the .mpy files need (0 when there are none)
    files: dict[str, str]  # path on the board -> sha256
    signer: TrustedKey | None
    key_id: str | None

    def path(self, name: str) -> Path:
        return self.folder / name


def _doc_fields(doc: dict[str, Any]) -> tuple[str, str, int]:
    if doc.get("kind") != "firmware":
        raise BundleError(f"{BUNDLE_FILE} describes a {doc.get('kind')!r} package, not firmware")
    version = str(doc.get("version", ""))
    parse_version(version)
    mpy = doc.get("mpy", 0)
    if not isinstance(mpy, int) or mpy < 0:
        raise BundleError(f"{BUNDLE_FILE}: 'mpy' must be the bytecode version number, got {mpy!r}")
    return str(doc.get("name", "firmware")), version, mpy


def load_bundle(
    folder: Path, trust: TrustList | None = None, require_signature: bool = False
) -> FirmwareBundle:
    """Open and check a bundle folder: hashes always, the signature when ``trust`` is given or required."""
    if not folder.is_dir():
        raise BundleError(f"{folder}: no such bundle folder; build one with `edgectl firmware build`")
    try:
        doc = read_listing(folder / BUNDLE_FILE)
    except SignatureError as exc:
        raise BundleError(f"{folder}: {exc}; build the bundle with `edgectl firmware build`") from None
    name, version, mpy = _doc_fields(doc)
    signer = None
    if doc.get("signature") or require_signature:
        if trust is None or not trust.keys:
            if require_signature:
                raise BundleError(f"{folder}: signatures are required but no trusted keys are configured")
        else:
            try:
                signer = verify_document(doc, trust)
            except SignatureError as exc:
                raise BundleError(f"{folder}: {exc}") from None
    try:
        check_listing(folder, doc, skip=[BUNDLE_FILE])
    except SignatureError as exc:
        raise BundleError(f"{folder}: {exc}") from None
    return FirmwareBundle(folder, name, version, mpy, dict(doc["files"]), signer, doc.get("key_id"))


def mpy_major(header: bytes) -> int:
    """The bytecode version in an .mpy header (b'M', version, flags, ...)."""
    if len(header) < 2 or header[:1] != b"M":
        raise BundleError("not a MicroPython .mpy file (no 'M' header)")
    return header[1]


def board_mpy_major(value: int | str) -> int:
    """A board's bytecode version, from ``sys.implementation._mpy`` (an int) or text such as '6.3'."""
    if isinstance(value, int):
        return value & 0xFF
    return int(str(value).split(".", 1)[0])
