"""A hostile MQTT client against the gateway, on a real Mosquitto with access rules.

The broker lets the gateway publish only under ``city/`` (as an operator's ACL would), so a
command whose response topic points elsewhere gets its reply refused by the broker. The gateway
must keep its session (events keep flowing), never reply outside its reply space unless
configured, and never carry out a retained command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from uplink_support import reading, running_uplink

from agent.config import load_config
from agent.runtime import AgentContext
from tools.broker import Broker

DEVICE = "pole-acl"


@pytest.fixture
def acl_broker(tmp_path: Path):
    acl = tmp_path / "acl"
    # Anonymous clients (the gateway and the test's clients) may use city/# and their reply space only.
    acl.write_text("topic readwrite city/#\ntopic read forbidden/#\n")
    broker = Broker(tmp_path / "broker", extra_config=(f"acl_file {acl}",))
    broker.start()
    yield broker
    broker.stop()


@contextlib.asynccontextmanager
async def running_agent(broker: Broker, tmp_path: Path, extra: str = "") -> AsyncIterator[AgentContext]:
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        f'[device]\nid = "{DEVICE}"\n[uplink]\nurl = "{broker.url}"\ntelemetry_interval_s = 60\n{extra}'
        f'[outbox]\npath = "{tmp_path / "outbox.sqlite"}"\n'
    )
    async with running_uplink(load_config(config_path)) as ctx:
        yield ctx


def _props(response_topic: str) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response_topic
    props.CorrelationData = os.urandom(8)
    return props


async def _collect(client: aiomqtt.Client, out: dict[str, list[Any]]) -> None:
    async for message in client.messages:
        out.setdefault(str(message.topic), []).append(message.payload)


def test_a_reply_the_broker_refuses_does_not_end_the_session(acl_broker: Broker, tmp_path: Path) -> None:
    async def main() -> tuple[int, int, dict]:
        # a deployment that lets replies go anywhere: the broker's rules are then the only limit
        extra = '[uplink.commands]\nreply_topics = ["#"]\n'
        async with running_agent(acl_broker, tmp_path, extra) as ctx:
            connects = ctx.uplink.publisher.stats.reconnects
            seen: dict[str, list[Any]] = {}
            async with aiomqtt.Client(
                acl_broker.host, acl_broker.port, protocol=aiomqtt.ProtocolVersion.V5
            ) as c:
                await c.subscribe("city/#", qos=1)
                collector = asyncio.create_task(_collect(c, seen))
                for i in range(20):
                    await c.publish(f"city/{DEVICE}/cmd/ping", b"{}", qos=1, properties=_props("forbidden/x"))
                    await ctx.uplink.outbox.submit(reading(i))
                    await asyncio.sleep(0.05)
                # a proper command still gets its reply
                await c.publish(
                    f"city/{DEVICE}/cmd/ping", b"{}", qos=1, properties=_props(f"city/{DEVICE}/reply/op")
                )
                await asyncio.sleep(1.5)
                collector.cancel()
            assert (
                ctx.uplink.publisher.client is not None and ctx.uplink.publisher.client.replies_refused >= 1
            )
            return connects, ctx.uplink.publisher.stats.reconnects, seen

    before, after, seen = asyncio.run(asyncio.wait_for(main(), 60))
    assert after == before, "a refused reply made the gateway reconnect"
    assert len(seen.get(f"city/{DEVICE}/evt/reading", [])) == 20, "events stopped flowing"
    assert f"city/{DEVICE}/reply/op" in seen


def test_replies_go_only_to_the_allowed_reply_space(own_mosquitto: Broker, tmp_path: Path) -> None:
    async def main() -> dict:
        extra = '[uplink.commands]\nreply_topics = ["replies/#"]\n'
        async with running_agent(own_mosquitto, tmp_path, extra):
            seen: dict[str, list[Any]] = {}
            async with aiomqtt.Client(
                own_mosquitto.host, own_mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
            ) as c:
                await c.subscribe("#", qos=1)
                collector = asyncio.create_task(_collect(c, seen))
                # an attacker asks for the reply on the gateway's own event topic
                await c.publish(
                    f"city/{DEVICE}/cmd/ping", b"{}", qos=1, properties=_props(f"city/{DEVICE}/evt/alarm")
                )
                await c.publish(f"city/{DEVICE}/cmd/ping", b"{}", qos=1, properties=_props("replies/op-1"))
                await asyncio.sleep(1.5)
                collector.cancel()
            return seen

    seen = asyncio.run(asyncio.wait_for(main(), 60))
    assert f"city/{DEVICE}/evt/alarm" not in seen
    (reply,) = seen["replies/op-1"]
    assert json.loads(reply)["ok"] is True


def test_a_retained_command_is_not_carried_out(own_mosquitto: Broker, tmp_path: Path) -> None:
    async def main() -> dict:
        async with aiomqtt.Client(
            own_mosquitto.host, own_mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as c:
            await c.publish(
                f"city/{DEVICE}/cmd/ping",
                b"{}",
                qos=1,
                retain=True,
                properties=_props(f"city/{DEVICE}/reply/x"),
            )
        async with running_agent(own_mosquitto, tmp_path) as ctx:
            await asyncio.sleep(1.0)
            return dict(ctx.uplink.gate.counts)

    counts = asyncio.run(asyncio.wait_for(main(), 60))
    assert counts.get("ok", 0) == 0, "a retained command was carried out"
    assert counts.get("retained", 0) >= 1
