"""The command gate: parses, authorizes and dispatches commands from ``{prefix}/{device}/cmd/{name}``.

Every command gets exactly one reply, to the MQTT 5 response topic with the correlation data, or to
``{prefix}/{device}/cmd/{name}/reply`` when the request has none (MQTT 3.1.1). A bad command gets an
error reply whose ``error`` names why (malformed, unknown-command, unsigned, bad-signature, expired,
replayed, ...); nothing a sender does can stop the agent.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiomqtt
import msgpack
from paho.mqtt.client import topic_matches_sub
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import topics
from agent.commands import CommandError, CommandRegistry
from agent.config import CommandAuthConfig
from agent.events import now_ms
from agent.logs import untrusted
from agent.trust.commands import signed_bytes
from agent.trust.keys import KeyFormatError, load_public, verify

from .nonces import NonceLedger

log = logging.getLogger(__name__)

MAX_PAYLOAD = 64 * 1024  # commands are small; a bigger one is refused before parsing
MAX_DEPTH = 16  # maps and lists inside a command's arguments; config patches need 4


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of maps and lists, counting no further than ``limit + 1``."""
    if limit < 0 or not isinstance(value, dict | list):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in items), default=0)


@dataclass(frozen=True, slots=True)
class Request:
    name: str
    args: dict[str, Any]
    ts: int | None
    nonce: str | None
    sig: bytes | None
    json: bool  # reply in the encoding the sender used


def parse(name: str, payload: bytes) -> Request:
    """A command from its payload (msgpack map, or a JSON object); raises CommandError('malformed')."""
    if len(payload) > MAX_PAYLOAD:
        raise CommandError("malformed", f"a command payload may be at most {MAX_PAYLOAD} bytes")
    is_json = payload[:1] in (b"{", b" ", b"\n")
    try:
        body = json.loads(payload) if is_json else msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (RecursionError, msgpack.StackError):
        raise CommandError(
            "malformed", f"the payload nests far deeper than the {MAX_DEPTH} levels allowed"
        ) from None
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError) as exc:
        kind = "JSON" if is_json else "msgpack"
        raise CommandError(
            "malformed", f"the payload is not valid {kind}: {str(exc) or type(exc).__name__}"
        ) from None
    if not isinstance(body, dict):
        raise CommandError("malformed", "a command must be a map with 'args', 'ts', 'nonce' and 'sig'")
    args = body.get("args", {})
    if not isinstance(args, dict):
        raise CommandError("malformed", "'args' must be a map")
    if _depth(args, MAX_DEPTH) > MAX_DEPTH:
        raise CommandError("malformed", f"'args' nests maps and lists deeper than {MAX_DEPTH} levels")
    ts, nonce, sig = body.get("ts"), body.get("nonce"), body.get("sig")
    if ts is not None and type(ts) is not int:
        raise CommandError("malformed", "'ts' must be an integer, ms since the Unix epoch")
    if nonce is not None and (not isinstance(nonce, str) or not 8 <= len(nonce) <= 64):
        raise CommandError("malformed", "'nonce' must be a string of 8 to 64 characters")
    if isinstance(sig, str):  # JSON carries the signature as base64
        try:
            sig = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            raise CommandError("malformed", "'sig' must be base64 in JSON, bytes in msgpack") from None
    if sig is not None and (not isinstance(sig, bytes) or len(sig) != 64):
        raise CommandError("malformed", "'sig' must be a 64-byte ed25519 signature")
    return Request(name, args, ts, nonce, sig, is_json)


class CommandGate:
    """Turns MQTT messages into handler calls and replies; one per agent."""

    def __init__(
        self,
        registry: CommandRegistry,
        auth: CommandAuthConfig,
        device: str,
        prefix: str,
        nonces: NonceLedger | None = None,
    ) -> None:
        self.registry = registry
        self.device = device
        self.prefix = prefix
        self.nonces = nonces if nonces is not None else NonceLedger(None)
        self.counts: dict[str, int] = {}  # replies per outcome ("ok" or the error code), for health
        self.set_auth(auth)

    def set_auth(self, auth: CommandAuthConfig) -> None:
        """Apply new trusted keys and skew (``set-config`` does, without a restart)."""
        keys = []
        for i, text in enumerate(auth.trusted_keys):
            try:
                keys.append(load_public(text))
            except KeyFormatError as exc:
                log.error("uplink.commands.trusted_keys[%d] is unusable: %s", i, exc)
        self.keys = keys
        self.max_skew_ms = int(auth.max_skew_s * 1000)
        self.reply_filters = [
            f.replace("{prefix}", self.prefix).replace("{device}", self.device) for f in auth.reply_topics
        ]

    def reply_allowed(self, topic: str) -> bool:
        return any(topic_matches_sub(f, topic) for f in self.reply_filters)

    @property
    def subscription(self) -> str:
        return topics.commands(self.prefix, self.device)

    async def handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        name = str(message.topic).rsplit("/", 1)[-1]
        payload = message.payload if isinstance(message.payload, bytes) else b""
        started = time.monotonic()
        as_json = False
        nonce = None
        try:
            if message.retain:
                # A retained command would run again at every reconnect, for whoever left it there.
                raise CommandError(
                    "retained",
                    "a retained command is never carried out: publish commands with retain off",
                )
            request = parse(name, payload)
            as_json, nonce = request.json, request.nonce
            command = self.registry.get(name)
            if command.mutating:
                await self._authorize(request)
            result = await command.handler(request.args)
            reply: dict[str, Any] = {"ok": True, "result": result}
            outcome = "ok"
        except CommandError as exc:
            reply = {"ok": False, "error": exc.code, "message": exc.message}
            outcome = exc.code
        except Exception as exc:  # a handler's bug must not cost the agent, and the sender learns
            log.exception("command %s failed", name)
            reply = {"ok": False, "error": "failed", "message": f"the command failed: {exc}"}
            outcome = "failed"
        if nonce is not None:
            reply["nonce"] = nonce  # lets MQTT 3.1.1 senders match replies on the shared reply topic
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if not reply["ok"]:
            log.warning("command %s refused: %s", untrusted(name, 80), untrusted(reply["message"]))
        else:
            log.info("command %s done in %.0f ms", name, (time.monotonic() - started) * 1000)
        await self._reply(client, message, name, reply, as_json)

    async def _authorize(self, request: Request) -> None:
        if not self.keys:
            raise CommandError(
                "unsigned",
                f"command {request.name!r} changes the device and no trusted key is configured: "
                "add operators' public keys to uplink.commands.trusted_keys",
            )
        if request.sig is None or request.ts is None or request.nonce is None:
            raise CommandError(
                "unsigned", f"command {request.name!r} changes the device: it needs 'ts', 'nonce' and 'sig'"
            )
        message = signed_bytes(self.device, request.name, request.args, request.ts, request.nonce)
        if not verify(self.keys, request.sig, message):
            raise CommandError(
                "bad-signature",
                "the signature does not verify with any trusted key (wrong key, device, command or args)",
            )
        skew = now_ms() - request.ts
        if abs(skew) > self.max_skew_ms:
            raise CommandError(
                "expired",
                f"the command was signed {skew / 1000:.0f} s from now, beyond the allowed "
                f"{self.max_skew_ms / 1000:.0f} s (check both clocks)",
            )
        if not await self.nonces.accept(request.nonce, request.ts, self.max_skew_ms):
            raise CommandError("replayed", "this nonce was already used: a command is carried out once")

    async def _reply(
        self,
        client: aiomqtt.Client,
        message: aiomqtt.Message,
        name: str,
        reply: dict[str, Any],
        as_json: bool,
    ) -> None:
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        out_props = None
        if props is not None:  # MQTT 5: say what the reply is, as every other publish does
            out_props = Properties(PacketTypes.PUBLISH)
            out_props.ContentType = "application/json" if as_json else "application/msgpack"
            out_props.PayloadFormatIndicator = 1 if as_json else 0
            if correlation is not None:
                out_props.CorrelationData = correlation
        topic = response_topic or topics.legacy_reply(self.prefix, self.device, name)
        if not self.reply_allowed(topic):
            self.counts["reply-not-allowed"] = self.counts.get("reply-not-allowed", 0) + 1
            log.warning(
                "not replying to command %s on %s: replies go only to %s (uplink.commands.reply_topics)",
                untrusted(name, 80),
                untrusted(topic, 200),
                ", ".join(self.reply_filters),
            )
            return
        body = (
            json.dumps(reply, default=_json_default).encode()
            if as_json
            else msgpack.packb(reply, use_bin_type=True)
        )
        publish_reply = getattr(client, "publish_reply", None)
        if publish_reply is not None:
            await publish_reply(topic, body, out_props)
        else:
            await client.publish(topic, body, qos=1, properties=out_props)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
