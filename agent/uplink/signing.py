"""Signed commands: ed25519 over a canonical encoding of what the command does, where and when.

The signed bytes bind the device id and the command name as well as the arguments, so a signature
for one pole (or one command) is worthless on another; ``ts`` and ``nonce`` let the device refuse
stale and replayed commands. Keys are raw 32-byte ed25519 keys in base64, public and private alike.
Operators' tools import this module to sign (``edgectl cmd send`` does).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from agent.events import now_ms

DOMAIN = "edge-cmd/1"  # versioned, so these signatures can never be mistaken for another kind


class KeyFormatError(ValueError):
    """A key that is not base64 of 32 bytes; the message says which."""


def _canonical(value: Any) -> Any:
    """Maps with sorted keys, recursively: the same arguments always encode to the same bytes."""
    if isinstance(value, Mapping):
        return {k: _canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def signed_bytes(device: str, name: str, args: Mapping[str, Any], ts: int, nonce: str) -> bytes:
    return msgpack.packb([DOMAIN, device, name, _canonical(args), ts, nonce], use_bin_type=True)


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


def command_payload(
    device: str,
    name: str,
    args: Mapping[str, Any] | None = None,
    private_key: str | None = None,
    ts: int | None = None,
    nonce: str | None = None,
) -> bytes:
    """The msgpack payload of a command; signed when ``private_key`` (base64) is given."""
    body: dict[str, Any] = {
        "args": dict(args or {}),
        "ts": now_ms() if ts is None else ts,
        "nonce": nonce or os.urandom(12).hex(),
    }
    if private_key is not None:
        message = signed_bytes(device, name, body["args"], body["ts"], body["nonce"])
        body["sig"] = load_private(private_key).sign(message)
    return msgpack.packb(body, use_bin_type=True)
