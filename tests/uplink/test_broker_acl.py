"""The gateway and edgectl under the shipped broker rules (docs/examples/mosquitto/acl): per-device
accounts on a real Mosquitto. A gateway publishes only under its own prefix and reads only its own
commands; another gateway's account can neither fake its events or state nor command it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from uplink_support import reading, running_uplink

from agent.config import GatewayConfig, parse_config
from tools.broker import Broker
from tools.edgectl import main as edgectl

ROOT = Path(__file__).resolve().parents[2]
ACL = ROOT / "docs" / "examples" / "mosquitto" / "acl"
ACCOUNTS = {
    "pole-1": "pw-pole-1",
    "pole-2": "pw-pole-2",
    "platform": "pw-platform",
    "operator": "pw-operator",
}


@pytest.fixture
def fleet_broker(tmp_path: Path):
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(ACCOUNTS.items()):
        subprocess.run(
            ["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwd), user, password], check=True
        )
    broker = Broker(
        tmp_path / "broker",
        extra_config=("allow_anonymous false", f"password_file {passwd}", f"acl_file {ACL}"),
    )
    broker.start()
    yield broker
    broker.stop()


def _client(broker: Broker, user: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        broker.host, broker.port, username=user, password=ACCOUNTS[user], protocol=aiomqtt.ProtocolVersion.V5
    )


async def _collect(client: aiomqtt.Client, out: list[tuple[str, bytes]]) -> None:
    async for message in client.messages:
        out.append((str(message.topic), message.payload if isinstance(message.payload, bytes) else b""))


def _pole1(broker: Broker, tmp_path: Path) -> GatewayConfig:
    """pole-1's gateway config: its own account, password in a file."""
    secret = tmp_path / "pole-1.pw"
    secret.write_text(ACCOUNTS["pole-1"])
    return parse_config(
        {
            "device": {"id": "pole-1"},
            "uplink": {"url": broker.url, "username": "pole-1", "password_file": str(secret)},
            "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        }
    )


def test_the_fleet_rules_hold_for_the_gateway_and_edgectl(fleet_broker: Broker, tmp_path: Path) -> None:
    async def main() -> tuple[list, int]:
        async with running_uplink(_pole1(fleet_broker, tmp_path)) as ctx:
            seen: list[tuple[str, bytes]] = []
            async with (
                _client(fleet_broker, "platform") as platform,
                _client(fleet_broker, "pole-2") as rogue,
            ):
                await platform.subscribe("city/#", qos=1)
                watcher = asyncio.create_task(_collect(platform, seen))
                await asyncio.sleep(0.2)
                await ctx.uplink.outbox.submit(reading(1))
                # another gateway's account tries to speak for pole-1 and to command it
                fake = b"fake"
                await rogue.publish("city/pole-1/evt/alarm", fake, qos=1)
                await rogue.publish("city/pole-1/state", fake, qos=1, retain=True)
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = "city/pole-2/reply/x"
                props.CorrelationData = uuid.uuid4().bytes
                await rogue.publish("city/pole-1/cmd/ping", b"{}", qos=1, properties=props)
                await asyncio.sleep(1.0)
                watcher.cancel()
            return seen, ctx.uplink.gate.counts.get("ok", 0)

    seen, pings = asyncio.run(asyncio.wait_for(main(), 60))
    topics = [t for t, _ in seen]
    assert "city/pole-1/evt/reading" in topics, topics
    assert all(payload != b"fake" for _, payload in seen), "another account published as pole-1"
    assert pings == 0, "another gateway's account commanded pole-1"


def test_edgectl_commands_a_gateway_with_the_operator_account(
    fleet_broker: Broker, tmp_path: Path, capsys
) -> None:
    operator_pw = tmp_path / "operator.pw"
    operator_pw.write_text(ACCOUNTS["operator"] + "\n")

    async def main() -> int:
        async with running_uplink(_pole1(fleet_broker, tmp_path)):
            args = ["cmd", "send", "pole-1", "ping", "--url", fleet_broker.url, "--username", "operator"]
            return await asyncio.to_thread(
                edgectl, [*args, "--password-file", str(operator_pw), "--wait", "10"]
            )

    code = asyncio.run(asyncio.wait_for(main(), 60))
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["ok"] is True


def test_anonymous_clients_are_refused(fleet_broker: Broker) -> None:
    async def main() -> None:
        async with aiomqtt.Client(fleet_broker.host, fleet_broker.port, protocol=aiomqtt.ProtocolVersion.V5):
            pass

    with pytest.raises(aiomqtt.MqttError):
        asyncio.run(asyncio.wait_for(main(), 10))
