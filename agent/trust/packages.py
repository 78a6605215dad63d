"""Ed25519 signatures over file listings: firmware bundles and model packages.

A package (a folder) is described by a listing: a JSON document naming every file with its sha256,
plus what the package is (kind, name, version). The listing is signed, so one signature covers every
byte of the package. Verifiers hold a trust list of public keys (``agent.trust.keys``) rather than
one key, so an operator can add a new key, re-sign, and retire the old key later without reflashing
every pole at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .keys import TrustedKey, TrustList, key_id

SIGNATURE_FILE = "signature.json"
LISTING_FORMAT = 1
# Prefixed to the signed bytes so a package signature can never pass for another kind (e.g. a command).
DOMAIN = b"edge-package/1\n"
# Fields of a listing that the signature does not cover (the signature itself).
_UNSIGNED = ("signature",)


class SignatureError(ValueError):
    """A signature or listing that cannot be trusted; the message says why and what to do."""


def canonical(doc: dict[str, Any]) -> bytes:
    """The bytes a signature covers: sorted keys, no spaces, UTF-8; fields in _UNSIGNED left out."""
    body = {k: v for k, v in doc.items() if k not in _UNSIGNED}
    return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def sign_document(doc: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    signed = {k: v for k, v in doc.items() if k not in _UNSIGNED}
    signed["key_id"] = key_id(key.public_key())
    signed["signature"] = base64.b64encode(key.sign(canonical(signed))).decode("ascii")
    return signed


def verify_document(doc: dict[str, Any], trust: TrustList) -> TrustedKey:
    """The trusted key that signed ``doc``; SignatureError if unsigned, untrusted or altered."""
    signature, kid = doc.get("signature"), doc.get("key_id")
    if not signature or not kid:
        raise SignatureError("it is not signed; sign it with a key your devices trust")
    trusted = trust.find(str(kid))
    if trusted is None:
        raise SignatureError(
            f"it is signed by key {kid}, which is not in the trust list; add that key's public half "
            "to the trust list or re-sign with a trusted key"
        )
    try:
        raw = base64.b64decode(str(signature), validate=True)
        trusted.public.verify(raw, canonical(doc))
    except (binascii.Error, ValueError, InvalidSignature):
        raise SignatureError(
            f"its signature by key {kid} does not match its content: it was changed after signing"
        ) from None
    return trusted


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_files(folder: Path, skip: Iterable[str] = ()) -> list[str]:
    """Every regular file under ``folder`` as a POSIX relative path, except ``skip`` and caches."""
    skipped = set(skip)
    names = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in skipped and "__pycache__" not in path.parts:
            names.append(rel)
    return names


def make_listing(
    folder: Path, kind: str, name: str, version: str, skip: Iterable[str] = ()
) -> dict[str, Any]:
    """An unsigned listing of every file of ``folder`` (except ``skip``) with its sha256."""
    return {
        "format": LISTING_FORMAT,
        "kind": kind,
        "name": name,
        "version": version,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": {rel: sha256_file(folder / rel) for rel in package_files(folder, skip)},
    }


def check_listing(folder: Path, listing: dict[str, Any], skip: Iterable[str] = ()) -> None:
    """Every listed file is there with its hash, and no file is there that the listing does not name."""
    files = listing.get("files")
    if not isinstance(files, dict) or not files:
        raise SignatureError("its listing names no files")
    problems = []
    for rel, expected in sorted(files.items()):
        path = folder / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            problems.append(f"{rel}: a path outside the package")
        elif not path.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(path) != expected:
            problems.append(f"{rel}: changed since it was listed (sha256 differs)")
    extra = sorted(set(package_files(folder, skip)) - set(files))
    problems.extend(f"{rel}: not covered by the listing; remove it or list and sign again" for rel in extra)
    if problems:
        raise SignatureError("; ".join(problems))


@dataclass(frozen=True)
class PackageSignature:
    """A verified package: what it is and who signed it."""

    kind: str
    name: str
    version: str
    signer: TrustedKey
    files: dict[str, str]


def read_listing(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SignatureError(f"{path.name} is missing: the package is not signed") from None
    except (OSError, ValueError) as exc:
        raise SignatureError(f"{path.name} cannot be read: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != LISTING_FORMAT:
        raise SignatureError(f"{path.name} is not a listing of format {LISTING_FORMAT}")
    return doc


def sign_package(folder: Path, key: Ed25519PrivateKey, kind: str, name: str, version: str) -> Path:
    """Write ``signature.json`` into ``folder``: a signed listing of all its other files."""
    doc = sign_document(make_listing(folder, kind, name, version, skip=[SIGNATURE_FILE]), key)
    target = folder / SIGNATURE_FILE
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(target)
    return target


def verify_package(folder: Path, trust: TrustList, kind: str | None = None) -> PackageSignature:
    """Check ``folder``'s ``signature.json``: trusted signer, untouched listing, every file as listed."""
    doc = read_listing(folder / SIGNATURE_FILE)
    if kind is not None and doc.get("kind") != kind:
        raise SignatureError(f"it is signed as a {doc.get('kind')!r} package, not a {kind!r} package")
    signer = verify_document(doc, trust)
    check_listing(folder, doc, skip=[SIGNATURE_FILE])
    return PackageSignature(
        str(doc.get("kind")), str(doc.get("name")), str(doc.get("version")), signer, dict(doc["files"])
    )
