"""The signed bytes of a command: canonical, bound to device and name; JSON senders sign the same."""

from __future__ import annotations

import base64
import json

import msgpack
import pytest

from agent.commands import CommandError
from agent.trust.commands import command_payload, signed_bytes
from agent.trust.keys import KeyFormatError, load_public, new_key, public_of, verify
from agent.uplink.gate import parse


def test_argument_order_does_not_change_the_signed_bytes() -> None:
    a = signed_bytes("pole-1", "set-config", {"set": {"b": 1, "a": {"y": 2, "x": 3}}}, 10, "nonce-123")
    b = signed_bytes("pole-1", "set-config", {"set": {"a": {"x": 3, "y": 2}, "b": 1}}, 10, "nonce-123")
    assert a == b
    assert a != signed_bytes(
        "pole-2", "set-config", {"set": {"b": 1, "a": {"y": 2, "x": 3}}}, 10, "nonce-123"
    )
    assert a != signed_bytes(
        "pole-1", "get-config", {"set": {"b": 1, "a": {"y": 2, "x": 3}}}, 10, "nonce-123"
    )


def test_a_json_command_with_a_base64_signature_verifies_like_msgpack() -> None:
    private, public = new_key()
    assert public_of(private) == public
    body = msgpack.unpackb(command_payload("pole-1", "set-config", {"set": {"x": 1}}, private))
    as_json = json.dumps({**body, "sig": base64.b64encode(body["sig"]).decode()}).encode()
    request = parse("set-config", as_json)
    assert request.json and request.sig == body["sig"]
    message = signed_bytes("pole-1", "set-config", request.args, request.ts, request.nonce)
    assert verify([load_public(public)], request.sig, message)
    assert not verify([load_public(new_key()[1])], request.sig, message)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (msgpack.packb([1, 2]), "must be a map"),
        (msgpack.packb({"args": [1]}), "'args' must be a map"),
        (msgpack.packb({"ts": "yesterday"}), "'ts' must be an integer"),
        (msgpack.packb({"nonce": "x"}), "'nonce' must be a string of 8 to 64"),
        (msgpack.packb({"sig": b"short"}), "64-byte ed25519 signature"),
        (b"\x81" * 100_000, "at most"),
    ],
)
def test_malformed_commands_are_named(payload: bytes, needle: str) -> None:
    with pytest.raises(CommandError) as err:
        parse("ping", payload)
    assert err.value.code == "malformed" and needle in err.value.message


def test_a_bad_key_is_a_sentence() -> None:
    with pytest.raises(KeyFormatError, match="32 bytes"):
        load_public(base64.b64encode(b"too short").decode())
    with pytest.raises(KeyFormatError, match="base64"):
        load_public("not base64 at all!")
