"""The publisher against a real mosquitto: delivery after PUBACK, birth and will, broker restarts."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import aiomqtt
import msgpack
from uplink_support import consume, gateway_config, reading

from agent.events import ALARM, START, Event, now_ms
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


def test_broker_restarts_while_events_flow_lose_nothing(tmp_path: Path, outbox_path: Path) -> None:
    # Persistent broker: a clean restart keeps the consumer's session, so what the broker
    # acknowledged reaches the consumer; what it had not, the gateway sends again.
    broker = Broker(tmp_path / "broker", persistent=True)
    broker.start()
    config = gateway_config(broker.url, outbox_path, device="pole-rs")
    submitted: list[int] = []

    async def produce(outbox: Outbox, stop: asyncio.Event) -> None:
        i = 0
        while not stop.is_set():
            batch = await asyncio.gather(*(outbox.submit(reading(i + k)) for k in range(10)))
            submitted.extend(e.seq for e in batch)
            i += 10
            await asyncio.sleep(0.01)

    async def main() -> int:
        outbox = await Outbox.open(outbox_path, "pole-rs", 10**9)
        publisher = Publisher(config.uplink, "pole-rs", outbox)
        async with consume(broker, "city/pole-rs/evt/#") as consumer:
            sender = asyncio.create_task(publisher.run())
            stop = asyncio.Event()
            producer = asyncio.create_task(produce(outbox, stop))
            for _ in range(3):
                await asyncio.sleep(random.uniform(0.3, 0.8))
                await asyncio.to_thread(broker.stop)
                await asyncio.sleep(random.uniform(0.1, 0.5))  # events pile up in the outbox meanwhile
                await asyncio.to_thread(broker.start)
            await asyncio.sleep(0.5)
            stop.set()
            await producer
            await consumer.wait_for(lambda c: c.unique() >= set(submitted), timeout=60)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        await outbox.close()
        assert publisher.stats.reconnects >= 3
        assert consumer.unique() == set(submitted)
        return len(consumer.seqs()) - len(consumer.unique())

    try:
        duplicates = asyncio.run(asyncio.wait_for(main(), 120))
    finally:
        broker.stop()
    assert len(submitted) > 300
    print(f"{len(submitted)} events, {duplicates} duplicates (at least once), none lost")


def test_a_refusing_puback_keeps_the_event_in_the_outbox(tmp_path: Path, outbox_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic write city/pole-acl/state\ntopic write city/pole-acl/evt/reading\n")
    broker = Broker(tmp_path / "broker", extra_config=(f"acl_file {acl}",))
    broker.start()
    config = gateway_config(broker.url, outbox_path, device="pole-acl")

    async def main() -> tuple[Outbox, Publisher]:
        outbox = await Outbox.open(outbox_path, "pole-acl", 10**9)
        alarm = Event(
            kind=ALARM, captured_ms=now_ms(), clock_synced=True, phase=START, label="x", severity="info"
        )
        await outbox.submit(alarm)  # not allowed by the broker's ACL: refused with reason 0x87
        publisher = Publisher(config.uplink, "pole-acl", outbox)
        task = asyncio.create_task(publisher.run())
        while publisher.stats.reconnects < 2:
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await outbox.close()
        return outbox, publisher

    try:
        outbox, publisher = asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        broker.stop()
    assert outbox.stats.depth == 1, "a refused event must stay in the outbox"
    assert publisher.stats.last_error is not None and "refused" in publisher.stats.last_error
    assert publisher.stats.published == 0
