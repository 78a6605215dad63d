"""The uplink part: opens the outbox (the agent's event sink), answers commands, publishes events
and health telemetry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aiomqtt

from agent import __version__, topics
from agent.config import GatewayConfig
from agent.events import now_ms
from agent.transfers import Uploads
from agent.trust.keys import DeviceKey

from .atrest import AtRestError, Sealer
from .desired import DesiredConfig
from .device_commands import register_device_commands
from .gate import CommandGate
from .nonces import NonceLedger
from .outbox import Outbox, OutboxError
from .publisher import Publisher, msgpack_properties
from .telemetry import health_event

log = logging.getLogger(__name__)


@dataclass
class Uplink:
    outbox: Outbox
    gate: CommandGate
    publisher: Publisher


def quota_bytes(config: GatewayConfig) -> int:
    return int(config.outbox.quota_mb * 1_000_000)


async def setup(ctx: Any) -> None:
    config: GatewayConfig = ctx.config
    device = config.device.id
    key = DeviceKey.load_or_create(config.device.key_file or config.outbox.path.with_name("device.key"))
    sealer = None
    if config.outbox.encrypt:
        key_file = config.outbox.key_file or config.outbox.path.with_name("outbox.key")
        try:
            sealer = Sealer.from_file(key_file, device)
        except AtRestError as exc:
            raise OutboxError(str(exc)) from None
    outbox = await Outbox.open(config.outbox.path, device, quota_bytes(config), key, sealer)
    outbox.privacy = config.privacy
    ctx.sink = outbox
    # packages sent in chunks (model updates, board firmware): staged beside the outbox
    ctx.uploads = Uploads(config.outbox.path.parent / "uploads", config.updates.fetch_ca_file)
    ctx.uploads.register(ctx.commands)
    nonces = NonceLedger(config.outbox.path.with_name("command-nonces.sqlite"))
    gate = CommandGate(ctx.commands, config.uplink.commands, device, config.uplink.topic_prefix, nonces)

    def birth() -> dict[str, Any]:
        """What the birth message tells a platform: which agent, and which models decide events."""
        vision = getattr(ctx, "vision", None)
        refs = vision.running_models() if vision is not None else []
        return {"agent": __version__, "models": [[r.id, r.version, r.sha256] for r in refs]}

    desired: DesiredConfig | None = None

    async def route(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        if desired is not None and str(message.topic) == desired.topic:
            await desired.handle(client, message)
        else:
            await gate.handle(client, message)

    publisher = Publisher(
        config.uplink,
        device,
        outbox,
        on_message=route,
        subscriptions=(gate.subscription, topics.desired_config(config.uplink.topic_prefix, device)),
        key=key,
        birth=birth,
    )

    def apply(new: GatewayConfig) -> list[str]:
        """Take over the settings that can change while running (device_commands.LIVE_SETTINGS), and the
        cameras' zones; returns the paths taken over besides LIVE_SETTINGS."""
        ctx.config = new
        gate.set_auth(new.uplink.commands)
        publisher.set_replay_rate(new.uplink.replay_rate)
        publisher.config = publisher.config.model_copy(
            update={
                "telemetry_interval_s": new.uplink.telemetry_interval_s,
                "replay_rate": new.uplink.replay_rate,
            }
        )
        outbox.quota_bytes = quota_bytes(new)
        outbox.privacy = new.privacy
        logging.getLogger().setLevel(new.logging.level)
        vision = getattr(ctx, "vision", None)
        return vision.take_zones(new) if vision is not None else []

    desired = DesiredConfig(
        gate,
        config.outbox.path.with_name("desired-config.json"),
        get_config=lambda: ctx.config,
        config_path=ctx.config_path,
        apply=apply,
        properties=msgpack_properties(config.uplink.protocol),
    )
    register_device_commands(
        ctx.commands,
        get_config=lambda: ctx.config,
        config_path=ctx.config_path,
        apply=apply,
        outbox=outbox,
        started_ms=now_ms(),
    )
    ctx.health.register(
        "outbox", lambda: {**outbox.stats.as_health(now_ms()), "withheld": dict(outbox.withheld)}
    )
    ctx.health.register("uplink", lambda: {**publisher.stats.as_health(), "commands": dict(gate.counts)})
    ctx.uplink = Uplink(outbox, gate, publisher)


async def run(ctx: Any) -> None:
    uplink: Uplink = ctx.uplink
    vision = getattr(ctx, "vision", None)
    if vision is not None and vision.updates is not None:
        # the birth message lists the models that decide events: say so again when one changes
        vision.updates.on_change = uplink.publisher.announce
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(uplink.publisher.run())
        tasks.create_task(_telemetry(ctx, uplink))


async def _telemetry(ctx: Any, uplink: Uplink) -> None:
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), ctx.config.uplink.telemetry_interval_s)
        if ctx.stopping.is_set():
            return
        try:
            await uplink.outbox.submit(health_event(ctx.started, ctx.config.outbox.path.parent, ctx.health))
        except OutboxError as exc:
            # A full disk costs this report (counted as dropped telemetry), never the MQTT session
            log.warning("telemetry not stored: %s", exc)


async def close(ctx: Any) -> None:
    uplink: Uplink | None = getattr(ctx, "uplink", None)
    if uplink is not None:
        await uplink.outbox.close()
        uplink.gate.nonces.close()
