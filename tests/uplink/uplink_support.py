"""Helpers for the uplink tests: a consumer that subscribes like an integrator, and configs."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from agent.config import GatewayConfig, parse_config
from agent.events import READING, Event, decode, now_ms
from tools.broker import Broker


def reading(i: int = 0) -> Event:
    return Event(
        kind=READING,
        captured_ms=now_ms(),
        clock_synced=True,
        board="board-1",
        sensor="pm",
        values={"pm2_5": float(i)},
    )


def gateway_config(broker_url: str, outbox: Path, device: str = "pole-1", **uplink: Any) -> GatewayConfig:
    uplink.setdefault("reconnect_min_s", 0.05)
    uplink.setdefault("reconnect_max_s", 0.5)
    return parse_config(
        {
            "device": {"id": device},
            "uplink": {"url": broker_url, **uplink},
            "outbox": {"path": str(outbox)},
        }
    )


@dataclass
class Consumer:
    """What an integrator's subscriber received: decoded events, with arrival times."""

    events: list[Event] = field(default_factory=list)
    arrived: dict[int, float] = field(default_factory=dict)  # seq → wall-clock ms of first arrival
    raw: list[aiomqtt.Message] = field(default_factory=list)
    connects: list[float] = field(default_factory=list)  # wall-clock ms of each (re)subscription

    def seqs(self) -> list[int]:
        return [e.seq for e in self.events]

    def unique(self) -> set[int]:
        return set(self.seqs())

    def record(self, message: aiomqtt.Message) -> None:
        self.raw.append(message)
        name = str(message.topic)
        if isinstance(message.payload, bytes) and ("/evt/" in name or name.endswith("/telemetry")):
            event = decode(message.payload)
            self.events.append(event)
            self.arrived.setdefault(event.seq, time.time() * 1000)

    async def wait_for(self, predicate: Callable[[Consumer], bool], timeout: float = 30.0) -> None:
        async def poll() -> None:
            while not predicate(self):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(poll(), timeout)


@contextlib.asynccontextmanager
async def consume(
    broker: Broker, topic: str = "city/+/evt/#", reconnect: bool = True
) -> AsyncIterator[Consumer]:
    """Subscribe (with a persistent session, so broker restarts lose nothing queued) and collect."""
    consumer = Consumer()
    ready = asyncio.Event()
    identifier = f"test-consumer-{uuid.uuid4().hex[:8]}"

    class Recorder(asyncio.Queue[aiomqtt.Message]):
        """Records each message as it is received, before paho acknowledges it: with a queue, a
        disconnect would drop messages already acknowledged but not yet taken from the queue."""

        def put_nowait(self, item: aiomqtt.Message) -> None:
            consumer.record(item)

    async def run() -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    broker.host,
                    broker.port,
                    identifier=identifier,
                    # MQTT 3.1.1 persistent session: mosquitto 2.0 may not restore an MQTT 5
                    # session's expiry from its persistence file after a restart.
                    protocol=aiomqtt.ProtocolVersion.V311,
                    clean_session=False,
                    queue_type=Recorder,
                ) as client:
                    await client.subscribe(topic, qos=1)
                    consumer.connects.append(time.time() * 1000)
                    ready.set()
                    async for _ in client.messages:  # ends with MqttError when the link drops
                        pass
            except aiomqtt.MqttError:
                if not reconnect:
                    raise
                await asyncio.sleep(0.05)

    task = asyncio.create_task(run())
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running_uplink(
    config: GatewayConfig, *, wait_connected: bool = True, config_path: Path | None = None
) -> AsyncIterator[Any]:
    """The agent's uplink part (outbox, publisher, commands) running on ``config``; its context.

    With ``wait_connected`` it returns once the birth is out and the command subscription is in.
    """
    from parts_support import running_parts

    from agent.runtime import AgentContext
    from agent.uplink import part

    ctx = AgentContext(config=config, config_path=config_path)
    async with running_parts(ctx, [part], wait=wait_connected) as running:
        yield running
