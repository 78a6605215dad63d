"""Ed25519 signatures over file listings: firmware bundles and model packages.

A package (a folder) is described by a listing: a JSON document naming every file with its sha256,
plus what the package is (kind, name, version). The listing is signed, so one signature covers every
byte of the package. Verifiers hold a trust list of public keys rather than one key, so an operator
can add a new key, re-sign, and retire the old key later without reflashing every pole at once.
Keys are identified by the first 16 hex digits of the sha256 of the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_FILE = "signature.json"
LISTING_FORMAT = 1
# Prefixed to the signed bytes so a package signature can never pass for another kind (e.g. a command).
DOMAIN = b"edge-package/1\n"
# Fields of a listing that the signature does not cover (the signature itself).
_UNSIGNED = ("signature",)


class SignatureError(ValueError):
    """A signature or listing that cannot be trusted; the message says why and what to do."""


class KeyFileError(ValueError):
    """A key file that is missing or is not an ed25519 key."""


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(public)).hexdigest()[:16]


def public_key_b64(public: Ed25519PublicKey) -> str:
    """The form trust lists and the gateway config use: base64 of the raw 32 bytes."""
    return base64.b64encode(raw_public(public)).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key given as base64 of the raw 32 bytes, or as a PEM block."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise KeyFileError(f"not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError("the PEM public key is not an ed25519 key")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{text[:20]!r} is not base64") from None
    if len(raw) != 32:
        raise KeyFileError(f"an ed25519 public key is 32 bytes, this one is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public: Ed25519PublicKey = field(repr=False, compare=False)
    label: str = ""


@dataclass(frozen=True)
class TrustList:
    """Public keys whose signatures are accepted."""

    keys: tuple[TrustedKey, ...] = ()

    @classmethod
    def from_strings(cls, entries: Iterable[str]) -> TrustList:
        """Entries are ``BASE64KEY [label]``; blank lines and ``#`` comments are skipped."""
        keys = []
        for n, entry in enumerate(entries, 1):
            line = entry.split("#", 1)[0].strip()
            if not line:
                continue
            token, _, label = line.partition(" ")
            try:
                public = parse_public_key(token)
            except KeyFileError as exc:
                raise KeyFileError(f"trusted key {n}: {exc}") from None
            keys.append(TrustedKey(key_id(public), public, label.strip()))
        return cls(tuple(keys))

    @classmethod
    def from_file(cls, path: Path) -> TrustList:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot read the trust list: {exc.strerror or exc}") from None
        try:
            return cls.from_strings(text.splitlines())
        except KeyFileError as exc:
            raise KeyFileError(f"{path}: {exc}") from None

    def find(self, wanted: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.key_id == wanted), None)


def generate_signing_key(path: Path) -> Ed25519PrivateKey:
    """A new private key written as PKCS#8 PEM readable only by its owner; never overwrites."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """A private key from a PKCS#8 PEM file (``edgectl model keygen``, ``openssl genpkey``) or a file
    holding base64 of the raw 32 bytes (the form operators' command keys take)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the signing key: {exc.strerror or exc}") from None
    if not data.lstrip().startswith(b"-----BEGIN"):
        try:
            raw = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise KeyFileError(f"{path}: neither a PEM private key nor base64 of a raw 32-byte ed25519 key")
        return Ed25519PrivateKey.from_private_bytes(raw)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: the key is not an ed25519 key")
    return key


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
