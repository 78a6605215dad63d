"""The publisher against a real mosquitto: delivery after PUBACK, birth and will, broker restarts."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
from pathlib import Path

import aiomqtt
import msgpack
import pytest
from uplink_support import consume, gateway_config, reading, running_uplink

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
            assert state["online"] is True and state["d"] == "pole-pub"
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


def _deliver_all(config, outbox_path: Path, n: int, seconds: float) -> tuple[int, Publisher]:
    async def main() -> tuple[int, Publisher]:
        outbox = await Outbox.open(outbox_path, config.device.id, 10**9)
        await outbox.submit_many(reading(i) for i in range(n))
        publisher = Publisher(config.uplink, config.device.id, outbox)
        task = asyncio.create_task(publisher.run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while outbox.stats.depth and loop.time() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await outbox.close()
        return outbox.stats.depth, publisher

    return asyncio.run(asyncio.wait_for(main(), seconds + 30))


def test_mqtt_311_is_selectable(mosquitto: Broker, outbox_path: Path) -> None:
    config = gateway_config(mosquitto.url, outbox_path, device="pole-311", protocol="3.1.1")
    depth, publisher = _deliver_all(config, outbox_path, 50, 20)
    assert depth == 0 and publisher.stats.published == 50


def test_password_from_the_environment_and_a_clear_error_when_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = tmp_path / "passwords"
    passwords.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "pole-pw", "right-horse"], check=True)
    broker = Broker(tmp_path / "broker", extra_config=("allow_anonymous false", f"password_file {passwords}"))
    broker.start()
    try:
        monkeypatch.setenv("POLE_PW", "right-horse")
        good = gateway_config(broker.url, tmp_path / "a.sqlite", username="pole-pw", password_env="POLE_PW")
        depth, _ = _deliver_all(good, tmp_path / "a.sqlite", 5, 20)
        assert depth == 0

        monkeypatch.setenv("POLE_PW", "wrong-horse")
        depth, publisher = _deliver_all(good, tmp_path / "b.sqlite", 5, 1.5)
        assert depth == 5 and publisher.stats.published == 0
        assert "Not authorized" in (publisher.stats.last_error or "") or "Bad user" in (
            publisher.stats.last_error or ""
        )

        secret = tmp_path / "mqtt-password"
        secret.write_text("right-horse\n")
        from_file = gateway_config(
            broker.url, tmp_path / "d.sqlite", username="pole-pw", password_file=str(secret)
        )
        depth, _ = _deliver_all(from_file, tmp_path / "d.sqlite", 5, 20)
        assert depth == 0

        # A missing variable is a connection failure named in health, not a crash.
        monkeypatch.delenv("POLE_PW")
        depth, publisher = _deliver_all(good, tmp_path / "c.sqlite", 5, 1.0)
        assert depth == 5 and "POLE_PW" in (publisher.stats.last_error or "")
    finally:
        broker.stop()


def test_the_window_respects_the_brokers_receive_maximum(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", extra_config=("max_inflight_messages 5",))
    broker.start()
    try:
        config = gateway_config(broker.url, tmp_path / "a.sqlite", inflight=64)
        depth, publisher = _deliver_all(config, tmp_path / "a.sqlite", 300, 30)
    finally:
        broker.stop()
    assert depth == 0 and publisher.stats.published == 300
    assert publisher.stats.window == 4


def test_mqtt_over_websockets(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", websockets=True)
    broker.start()
    try:
        config = gateway_config(broker.ws_url, tmp_path / "a.sqlite", device="pole-ws")
        depth, publisher = _deliver_all(config, tmp_path / "a.sqlite", 20, 20)
    finally:
        broker.stop()
    assert depth == 0 and publisher.stats.published == 20


def test_every_publish_says_its_content_type(mosquitto, tmp_path) -> None:
    """MQTT 5 content type and payload format indicator on events, state and command replies."""
    import os as _os

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from agent.config import parse_config

    async def main() -> dict[str, tuple[str | None, int | None]]:
        cfg = parse_config(
            {
                "device": {"id": "pole-ct"},
                "uplink": {"url": mosquitto.url, "telemetry_interval_s": 0.5},
                "outbox": {"path": str(tmp_path / "o.sqlite")},
            }
        )
        seen: dict[str, tuple[str | None, int | None]] = {}
        async with (
            running_uplink(cfg),
            aiomqtt.Client(mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5) as c,
        ):
            await c.subscribe("city/pole-ct/#", qos=1)  # the retained state comes at once
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = "city/pole-ct/reply/t"
            props.CorrelationData = _os.urandom(4)
            await c.publish("city/pole-ct/cmd/ping", b"{}", qos=1, properties=props)
            async with asyncio.timeout(20):
                async for m in c.messages:
                    p = m.properties
                    seen[str(m.topic)] = (
                        getattr(p, "ContentType", None),
                        getattr(p, "PayloadFormatIndicator", None),
                    )
                    if {"city/pole-ct/state", "city/pole-ct/telemetry", "city/pole-ct/reply/t"} <= set(seen):
                        break
        return seen

    seen = asyncio.run(main())
    assert seen["city/pole-ct/state"] == ("application/msgpack", 0)
    assert seen["city/pole-ct/telemetry"] == ("application/msgpack", 0)
    assert seen["city/pole-ct/reply/t"] == ("application/json", 1)
