"""The whole gateway with a board: the agent (uplink + boards parts) on a real Mosquitto, the firmware on
the simulated board with its simulated sensors; readings, alarms, health and a lamp command over MQTT."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

import aiomqtt
import msgpack
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config import load_config
from agent.events import ALARM, HEALTH, READING, START, decode
from agent.runtime import AgentContext, run_agent
from agent.trust.commands import command_payload
from agent.trust.keys import new_key
from firmware.sim.board import SimulatedBoard
from firmware.sim.scenarios import STREET_SETUP
from tools.board_cli.board_setup import load_setup
from tools.broker import Broker

DEVICE = "pole-b"
BOARD = "pole-0042-b1"


async def test_readings_alarms_health_and_a_signed_lamp_command_over_mqtt(
    mosquitto: Broker, tmp_path: Path
) -> None:
    private, public = new_key()
    setup = load_setup(STREET_SETUP).document()
    board = SimulatedBoard(setup).start()
    config_path = tmp_path / "gateway.toml"
    config_path.write_text(
        f'[device]\nid = "{DEVICE}"\n[uplink]\nurl = "{mosquitto.url}"\ntelemetry_interval_s = 1\n'
        f"[uplink.commands]\ntrusted_keys = {json.dumps([public])}\n"
        f'[outbox]\npath = "{tmp_path / "outbox.sqlite"}"\n'
        f'[[boards]]\nid = "{BOARD}"\nport = "{board.port}"\n'
    )
    ctx = AgentContext(config=load_config(config_path), config_path=config_path)
    events = []
    replies: dict[bytes, dict] = {}
    agent = asyncio.create_task(run_agent(ctx))
    try:
        async with aiomqtt.Client(
            mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as client:
            await client.subscribe(f"city/{DEVICE}/#", qos=1)
            await client.subscribe(f"city/{DEVICE}/reply/ops", qos=1)

            async def collect() -> None:
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    if message.topic.matches(f"city/{DEVICE}/reply/ops"):
                        replies[message.properties.CorrelationData] = msgpack.unpackb(message.payload)
                    elif "/evt/" in str(message.topic) or str(message.topic).endswith("/telemetry"):
                        events.append(decode(message.payload))

            collector = asyncio.create_task(collect())

            async def until(predicate, timeout: float = 30.0) -> None:
                for _ in range(int(timeout * 50)):
                    if predicate():
                        return
                    await asyncio.sleep(0.02)
                raise AssertionError("condition not met in time")

            def kinds(kind):
                return [e for e in events if e.kind == kind]

            sensors = {"pms5003", "sht3x", "cover", "noise", "water"}
            await until(lambda: sensors <= {e.sensor for e in kinds(READING)})
            pm = next(e for e in kinds(READING) if e.sensor == "pms5003")
            assert pm.board == BOARD and pm.values["pm2_5"] == 18.0 and pm.units["pm2_5"] == "ug/m3"
            assert pm.device == DEVICE and pm.seq > 0

            board.world.tilt_deg = 40.0  # the cover is lifted
            await until(lambda: kinds(ALARM))
            alarm = kinds(ALARM)[0]
            assert (alarm.phase, alarm.label, alarm.severity, alarm.sensor) == (
                START,
                "tilt_deg_high",
                "critical",
                "cover",
            )

            await until(lambda: any("boards" in (e.health or {}) for e in kinds(HEALTH)))
            link = next(e for e in kinds(HEALTH) if "boards" in e.health).health["boards"][BOARD]
            assert link["connected"] is True and link["firmware"] == "1.0.0" and link["frames_good"] > 0

            async def command(name: str, payload: bytes) -> dict:
                correlation = os.urandom(8)
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = f"city/{DEVICE}/reply/ops"
                props.CorrelationData = correlation
                await client.publish(f"city/{DEVICE}/cmd/{name}", payload, qos=1, properties=props)
                await until(lambda: correlation in replies, 10)
                return replies.pop(correlation)

            unsigned = await command("board-lamp", command_payload(DEVICE, "board-lamp", {"level": 0.3}))
            assert unsigned["ok"] is False
            assert board.hal.pwms[25].duty == round(0.8 * 65535), "an unsigned command changed nothing"
            signed = await command(
                "board-lamp", command_payload(DEVICE, "board-lamp", {"board": BOARD, "level": 0.3}, private)
            )
            assert signed["ok"] is True, signed
            assert board.hal.pwms[25].duty == int(0.3 * 65535 + 0.5)
            bad = await command("board-lamp", command_payload(DEVICE, "board-lamp", {"level": 7}, private))
            assert bad["ok"] is False and "level must be a number from 0" in json.dumps(bad)
            status = await command("board-status", command_payload(DEVICE, "board-status", {}))
            assert status["ok"] is True and status["result"]["link"]["connected"] is True
            collector.cancel()
    finally:
        ctx.stopping.set()
        with contextlib.suppress(asyncio.CancelledError):
            await agent
        board.close()
