"""Every key of the product: operators' signing keys, trust lists, and the device's own key.

Two forms are read: PKCS#8 PEM (``edgectl keys new``, ``openssl genpkey``) and base64 of the raw
32 bytes (trust lists, the gateway config, command keys, the device key file). A key is named by
its key id, the first 16 hex digits of the SHA-256 of its raw public bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

log = logging.getLogger(__name__)


class KeyFileError(ValueError):
    """A key file that is missing or is not an ed25519 key."""


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey | bytes) -> str:
    """The key's name in trust lists, signatures and birth messages."""
    raw = public if isinstance(public, bytes) else raw_public(public)
    return hashlib.sha256(raw).hexdigest()[:16]


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


# Raw keys, base64 of the 32 bytes: commands' keys and the device key file.


class KeyFormatError(ValueError):
    """A key that is not base64 of 32 bytes; the message says which."""


def new_key() -> tuple[str, str]:
    """A fresh (private, public) key pair as base64 of the raw 32-byte keys."""
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode(), base64.b64encode(public).decode()


def _raw32(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"{what} is not valid base64") from None
    if len(raw) != 32:
        raise KeyFormatError(f"{what} must be 32 bytes of ed25519 key, got {len(raw)}")
    return raw


def load_private(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_raw32(text, "the private key"))


def load_public(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_raw32(text, "the public key"))


def public_of(private_text: str) -> str:
    public = load_private(private_text).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(public).decode()


def verify(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
            return True
        except InvalidSignature:
            continue
    return False


class DeviceKeyError(RuntimeError):
    """The device key file cannot be used; the message names the file and what to do."""


class DeviceKey:
    """The device's own ed25519 key, from a file readable by the agent only (made on first start)."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.id = key_id(self.public)

    @classmethod
    def load_or_create(cls, path: Path) -> DeviceKey:
        try:
            return cls._load_or_create(path)
        except (OSError, KeyFormatError) as exc:
            raise DeviceKeyError(f"the device key {path} cannot be used: {exc}") from None

    @classmethod
    def _load_or_create(cls, path: Path) -> DeviceKey:
        if not path.exists():
            private_text, _ = new_key()
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(private_text + "\n")
            made = cls(load_private(private_text))
            log.warning("made a new device key %s (key id %s): record it with the pole", path, made.id)
        mode = path.stat().st_mode & 0o077
        if mode:
            raise PermissionError(
                f"{path} can be read by others (mode {oct(path.stat().st_mode & 0o777)}): chmod 600 it"
            )
        return cls(load_private(path.read_text(encoding="utf-8")))

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public).decode()
