"""Signed commands: ed25519 over a canonical encoding of what the command does, where and when.

The signed bytes bind the device id and the command name as well as the arguments, so a signature
for one pole (or one command) is worthless on another; ``ts`` and ``nonce`` let the device refuse
stale and replayed commands. Keys are raw 32-byte ed25519 keys in base64, public and private alike
(``agent.trust.keys``). Operators' tools import this module to sign (``edgectl cmd send`` does).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import msgpack

from agent.events import now_ms

from .keys import load_private

DOMAIN = "edge-cmd/1"  # versioned, so these signatures can never be mistaken for another kind


def canonical(value: Any) -> Any:
    """Maps with sorted keys, recursively: the same arguments always encode to the same bytes."""
    if isinstance(value, Mapping):
        return {k: canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def signed_bytes(device: str, name: str, args: Mapping[str, Any], ts: int, nonce: str) -> bytes:
    return msgpack.packb([DOMAIN, device, name, canonical(args), ts, nonce], use_bin_type=True)


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
