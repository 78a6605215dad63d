"""Events at rest: the outbox's payloads sealed with AES-256-GCM under a key of the gateway's own.

A gateway on a pole can be opened and its card read; what it holds for days offline must not be
readable, or quietly edited, without the key. Each payload is sealed with a fresh 12-byte nonce and
the device and sequence number as associated data, so a sealed row moved to another sequence number
(or another device's file) fails to open. A sealed payload starts with a version byte that no
msgpack map starts with, so an outbox written before encryption was turned on stays readable.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED = 0xE1  # a msgpack negative fixint: never the first byte of an event (a map)
NONCE_BYTES = 12
SEAL_OVERHEAD = 1 + NONCE_BYTES + 16  # version byte, nonce, GCM tag
KEY_BYTES = 32


class AtRestError(RuntimeError):
    """A key file that cannot be used, or a sealed payload that does not open (altered, wrong key)."""


class Sealer:
    def __init__(self, key: bytes, device: str) -> None:
        if len(key) != KEY_BYTES:
            raise AtRestError(f"an outbox key is {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self._device = device.encode()

    @classmethod
    def from_file(cls, path: Path, device: str) -> Sealer:
        """The key in ``path`` (raw 32 bytes, mode 600), made on first use."""
        try:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(AESGCM.generate_key(bit_length=256))
            loose = path.stat().st_mode & 0o077
            if loose:
                raise AtRestError(
                    f"{path} can be read by others (mode {oct(path.stat().st_mode & 0o777)}): chmod 600 it"
                )
            return cls(path.read_bytes(), device)
        except OSError as exc:
            raise AtRestError(f"the outbox key {path} cannot be used: {exc}") from None

    def _aad(self, seq: int) -> bytes:
        return self._device + struct.pack(">Q", seq)

    def seal(self, seq: int, payload: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return bytes([SEALED]) + nonce + self._aead.encrypt(nonce, payload, self._aad(seq))

    def open(self, seq: int, stored: bytes) -> bytes:
        if not stored or stored[0] != SEALED:
            return stored  # written before encryption was on
        nonce, sealed = stored[1 : 1 + NONCE_BYTES], stored[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, self._aad(seq))
        except InvalidTag:
            raise AtRestError(
                f"outbox event {seq} does not open with this key: altered, or another key"
            ) from None

    def seal_file(self, name: str, data: bytes) -> bytes:
        """A file kept on the gateway (a snapshot), bound to its name so it cannot be passed off as another."""
        nonce = os.urandom(NONCE_BYTES)
        return bytes([SEALED]) + nonce + self._aead.encrypt(nonce, data, self._device + b"/" + name.encode())

    def open_file(self, name: str, stored: bytes) -> bytes:
        if not stored or stored[0] != SEALED:
            raise AtRestError(f"{name} is not a sealed file")
        nonce, sealed = stored[1 : 1 + NONCE_BYTES], stored[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, self._device + b"/" + name.encode())
        except InvalidTag:
            raise AtRestError(
                f"{name} does not open with this key and device: altered, renamed or another key"
            ) from None


def is_sealed(stored: bytes) -> bool:
    return bool(stored) and stored[0] == SEALED
