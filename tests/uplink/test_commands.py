"""Commands over a real broker: signed, unsigned, forged, replayed, stale, malformed and unknown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import msgpack
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config import load_config
from agent.events import now_ms
from agent.runtime import AgentContext
from agent.uplink import part
from agent.uplink.signing import command_payload, new_key
from tools.broker import Broker

DEVICE = "pole-cmd"


class Operator:
    """An operator's client: sends a command with a response topic and waits for its reply."""

    def __init__(self, client: aiomqtt.Client, replies: dict[bytes, Any]) -> None:
        self.client = client
        self.replies = replies

    async def send(self, name: str, payload: bytes, expiry_s: int = 60) -> dict[str, Any]:
        correlation = os.urandom(8)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"ops/replies/{DEVICE}"
        props.CorrelationData = correlation
        props.MessageExpiryInterval = expiry_s
        await self.client.publish(f"city/{DEVICE}/cmd/{name}", payload, qos=1, properties=props)
        for _ in range(500):
            if correlation in self.replies:
                return self.replies.pop(correlation)
            await asyncio.sleep(0.01)
        raise AssertionError(f"no reply to {name}")


@contextlib.asynccontextmanager
async def agent_and_operator(
    broker: Broker, tmp_path: Path, trusted: list[str]
) -> AsyncIterator[tuple[AgentContext, Operator]]:
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        f'[device]\nid = "{DEVICE}"\n[uplink]\nurl = "{broker.url}"\npassword_env = "NOT_SET_ANYWHERE"\n'
        f"telemetry_interval_s = 60\n[uplink.commands]\ntrusted_keys = {json.dumps(trusted)}\n"
        f'[outbox]\npath = "{tmp_path / "outbox.sqlite"}"\n'
    )
    os.environ["NOT_SET_ANYWHERE"] = "s3cret-password"
    ctx = AgentContext(config=load_config(config_path), config_path=config_path)
    await part.setup(ctx)
    runner = asyncio.create_task(part.run(ctx))
    replies: dict[bytes, Any] = {}
    try:
        async with aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.subscribe(f"ops/replies/{DEVICE}", qos=1)

            async def collect() -> None:
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    body = (
                        json.loads(message.payload)
                        if message.payload[:1] == b"{"
                        else msgpack.unpackb(message.payload)
                    )
                    replies[message.properties.CorrelationData] = body

            collector = asyncio.create_task(collect())
            while not ctx.uplink.publisher.stats.connected:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # the subscription to cmd/+ follows the birth message
            yield ctx, Operator(client, replies)
            collector.cancel()
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await part.close(ctx)
        os.environ.pop("NOT_SET_ANYWHERE", None)


@pytest.fixture
def keys() -> tuple[str, str]:
    return new_key()


def test_ping_and_get_config_need_no_signature_and_leak_no_secret(
    mosquitto: Broker, tmp_path: Path, keys
) -> None:
    async def main() -> None:
        async with agent_and_operator(mosquitto, tmp_path, [keys[1]]) as (_ctx, op):
            pong = await op.send("ping", command_payload(DEVICE, "ping"))
            assert (
                pong["ok"] is True and pong["result"]["pong"] is True and pong["result"]["device"] == DEVICE
            )
            got = await op.send("get-config", command_payload(DEVICE, "get-config"))
            assert got["ok"] is True
            assert got["result"]["config"]["device"]["id"] == DEVICE
            assert got["result"]["config"]["uplink"]["password_env"] == "(set)"
            assert b"s3cret" not in msgpack.packb(got) and b"NOT_SET_ANYWHERE" not in msgpack.packb(got)
            # JSON in, JSON out, for integrators without msgpack at hand.
            pong = await op.send("ping", json.dumps({"args": {}}).encode())
            assert pong["ok"] is True

    asyncio.run(asyncio.wait_for(main(), 60))


def test_signed_set_config_is_validated_persisted_and_applied(
    mosquitto: Broker, tmp_path: Path, keys
) -> None:
    private, public = keys

    async def main() -> None:
        async with agent_and_operator(mosquitto, tmp_path, [public]) as (ctx, op):
            change = {"set": {"uplink": {"telemetry_interval_s": 5, "keepalive_s": 45}}}
            done = await op.send("set-config", command_payload(DEVICE, "set-config", change, private))
            assert done["ok"] is True, done
            assert done["result"]["applied"] == ["uplink.telemetry_interval_s"]
            assert done["result"]["restart_needed"] == ["uplink.keepalive_s"]
            assert ctx.config.uplink.telemetry_interval_s == 5
            on_disk = tomllib.loads((tmp_path / "config.toml").read_text())
            assert on_disk["uplink"]["telemetry_interval_s"] == 5 and on_disk["uplink"]["keepalive_s"] == 45

            bad = {"set": {"uplink": {"telemetry_interval_s": -1}}}
            refused = await op.send("set-config", command_payload(DEVICE, "set-config", bad, private))
            assert refused["ok"] is False and refused["error"] == "invalid-config"
            assert "uplink.telemetry_interval_s" in refused["message"]
            assert (
                tomllib.loads((tmp_path / "config.toml").read_text())["uplink"]["telemetry_interval_s"] == 5
            )

    asyncio.run(asyncio.wait_for(main(), 60))


def test_bad_commands_get_an_error_naming_why_and_the_agent_keeps_answering(
    mosquitto: Broker, tmp_path: Path, keys
) -> None:
    private, public = keys
    other_private, _ = new_key()
    change = {"set": {"uplink": {"telemetry_interval_s": 7}}}

    async def main() -> None:
        async with agent_and_operator(mosquitto, tmp_path, [public]) as (ctx, op):
            cases = {
                "malformed": ("set-config", b"\xc1 not msgpack"),
                "unknown-command": ("reboot-the-city", command_payload(DEVICE, "reboot-the-city")),
                "unsigned": ("set-config", command_payload(DEVICE, "set-config", change)),
                "bad-signature": ("set-config", command_payload(DEVICE, "set-config", change, other_private)),
                "expired": (
                    "set-config",
                    command_payload(DEVICE, "set-config", change, private, ts=now_ms() - 3_600_000),
                ),
            }
            for code, (name, payload) in cases.items():
                reply = await op.send(name, payload)
                assert reply["ok"] is False and reply["error"] == code, (code, reply)
                assert reply["message"]
            # Signed for another device: the signature binds the device id.
            elsewhere = command_payload("pole-other", "set-config", change, private)
            assert (await op.send("set-config", elsewhere))["error"] == "bad-signature"
            # A valid command once, then the same bytes again.
            signed = command_payload(DEVICE, "set-config", change, private)
            assert (await op.send("set-config", signed))["ok"] is True
            again = await op.send("set-config", signed)
            assert again["ok"] is False and again["error"] == "replayed"
            assert (await op.send("ping", command_payload(DEVICE, "ping")))["ok"] is True
            counts = ctx.health.snapshot()["uplink"]["commands"]
            assert counts["replayed"] == 1 and counts["malformed"] == 1

    asyncio.run(asyncio.wait_for(main(), 60))


def test_mqtt311_sender_gets_the_reply_on_the_fallback_topic(mosquitto: Broker, tmp_path: Path, keys) -> None:
    async def main() -> None:
        async with (
            agent_and_operator(mosquitto, tmp_path, [keys[1]]) as (_ctx, _op),
            aiomqtt.Client(mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V311) as old,
        ):
            await old.subscribe(f"city/{DEVICE}/cmd/ping/reply", qos=1)
            payload = command_payload(DEVICE, "ping", nonce="nonce-311-abc")
            await old.publish(f"city/{DEVICE}/cmd/ping", payload, qos=1)
            async for message in old.messages:
                assert isinstance(message.payload, bytes)
                reply = msgpack.unpackb(message.payload)
                assert reply["ok"] is True and reply["nonce"] == "nonce-311-abc"
                break

    asyncio.run(asyncio.wait_for(main(), 60))
