"""Config that converges: a retained, signed desired config per device, and the device's report.

An operator publishes ``{prefix}/{device}/config/desired`` retained: a command payload (docs/uplink.md)
named ``desired-config`` whose args are ``{"set": patch, "ver": n}``, signed by a trusted key
(``edgectl fleet config`` makes it). Because it is retained, a gateway that was offline gets it when it
reconnects. It applies a version once, through the same path as ``set-config`` (validated,
persisted atomically, live where it can), and answers on ``{prefix}/{device}/config/reported``,
retained too: the version, what was applied, what needs a restart, and a hash of the config it now
runs. Versions only move forward, so an old desired message can never roll a device back; a
signature's age does not matter here (a retained message is old by design), its key does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import msgpack
from paho.mqtt.properties import Properties

from agent import topics
from agent.commands import CommandError
from agent.config import GatewayConfig
from agent.events import SCHEMA_VERSION, now_ms
from agent.logs import untrusted
from agent.trust.commands import canonical, signed_bytes
from agent.trust.keys import verify

from .device_commands import apply_patch, write_atomically
from .gate import CommandGate, parse

log = logging.getLogger(__name__)

NAME = "desired-config"  # the command name the signature binds


def config_hash(config: GatewayConfig) -> str:
    """What a fleet tool compares: the first 8 bytes of the SHA-256 of the config as it runs, hex."""
    text = json.dumps(canonical(config.model_dump(mode="json")), separators=(",", ":"))
    return hashlib.sha256(text.encode()).digest()[:8].hex()


class DesiredConfig:
    def __init__(
        self,
        gate: CommandGate,
        state_path: Path,
        *,
        get_config: Callable[[], GatewayConfig],
        config_path: Path | None,
        apply: Callable[[GatewayConfig], list[str] | None],
        properties: Properties | None,
    ) -> None:
        self.gate = gate  # its trusted keys decide who may change this device
        self.state_path = state_path
        self.get_config = get_config
        self.config_path = config_path
        self.apply = apply
        self.properties = properties
        prefix, device = gate.prefix, gate.device
        self.topic = topics.desired_config(prefix, device)
        self.reported_topic = topics.reported_config(prefix, device)
        self.applied_ver = self._load()

    def _load(self) -> int:
        try:
            return int(json.loads(self.state_path.read_text(encoding="utf-8"))["ver"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def _save(self, ver: int) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.state_path, json.dumps({"ver": ver}))
        self.applied_ver = ver

    async def handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        if not payload:
            return  # the operator cleared the retained message: nothing is desired any more
        report: dict[str, Any]
        ver: Any = None
        try:
            request = parse(NAME, payload)
            ver = request.args.get("ver")
            if type(ver) is not int or ver <= 0:
                raise CommandError("bad-args", "a desired config needs 'ver', a positive integer version")
            self._authorize(request.args, request.ts, request.nonce, request.sig)
            if ver <= self.applied_ver:
                # seen before (every reconnect brings the retained message back), or older
                report = {"ok": True, "ver": self.applied_ver, "note": f"version {ver} is not newer"}
            else:
                result = apply_patch(
                    request.args.get("set"),
                    config_path=self.config_path,
                    get_config=self.get_config,
                    apply=self.apply,
                    source=NAME,
                )
                self._save(ver)
                report = {"ok": True, "ver": ver, **result}
                log.info(
                    "desired config version %d applied: %s", ver, ", ".join(result["changed"]) or "no change"
                )
        except CommandError as exc:
            report = {
                "ok": False,
                "ver": self.applied_ver,
                "refused": ver,
                "error": exc.code,
                "message": exc.message,
            }
            log.warning("desired config refused: %s", untrusted(exc.message))
        await self._report(client, report)

    def _authorize(self, args: dict[str, Any], ts: int | None, nonce: str | None, sig: bytes | None) -> None:
        if not self.gate.keys:
            raise CommandError(
                "unsigned",
                "no trusted key is configured: add operators' keys to uplink.commands.trusted_keys",
            )
        if sig is None or ts is None or nonce is None:
            raise CommandError(
                "unsigned", "a desired config must be signed: it needs 'ts', 'nonce' and 'sig'"
            )
        if not verify(self.gate.keys, sig, signed_bytes(self.gate.device, NAME, args, ts, nonce)):
            raise CommandError("bad-signature", "the signature does not verify with any trusted key")

    async def _report(self, client: aiomqtt.Client, report: dict[str, Any]) -> None:
        body = {
            "v": SCHEMA_VERSION,
            "d": self.gate.device,
            "t": now_ms(),
            "hash": config_hash(self.get_config()),
            **report,
        }
        await client.publish(
            self.reported_topic,
            msgpack.packb(body, use_bin_type=True),
            qos=1,
            retain=True,
            properties=self.properties,
        )
