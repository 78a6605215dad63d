"""The publisher against a real mosquitto: delivery after PUBACK, birth and will, broker restarts."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiomqtt
import msgpack
from uplink_support import consume, gateway_config, reading

from agent.uplink.outbox import Outbox
from agent.uplink.publisher import Publisher
from tools.broker import Broker


async def _retained_state(broker: Broker, device: str) -> dict:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(f"city/{device}/state", qos=1)
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            assert message.retain
            return msgpack.unpackb(message.payload)
    raise AssertionError("no state message")


def test_events_are_delivered_then_deleted_and_birth_is_retained(
    mosquitto: Broker, outbox_path: Path
) -> None:
    config = gateway_config(mosquitto.url, outbox_path, device="pole-pub")

    async def main() -> None:
        outbox = await Outbox.open(outbox_path, "pole-pub", 10**9)
        before = [await outbox.submit(reading(i)) for i in range(20)]  # waiting before the link is up
        publisher = Publisher(config.uplink, "pole-pub", outbox)
        async with consume(mosquitto, "city/pole-pub/evt/#") as consumer:
            task = asyncio.create_task(publisher.run())
            after = await asyncio.gather(*(outbox.submit(reading(i)) for i in range(200)))
            await consumer.wait_for(lambda c: len(c.unique()) >= 220)
            state = await asyncio.wait_for(_retained_state(mosquitto, "pole-pub"), 10)
            assert state["online"] is True and state["device"] == "pole-pub"
            await outbox.flushed()
            assert outbox.stats.depth == 0
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            state = await asyncio.wait_for(_retained_state(mosquitto, "pole-pub"), 10)
            assert state["online"] is False and state["clean"] is True
        await outbox.close()
        assert consumer.unique() == {e.seq for e in before + after}
        assert all(e.device == "pole-pub" for e in consumer.events)

    asyncio.run(asyncio.wait_for(main(), 60))
