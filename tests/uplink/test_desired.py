"""Config that converges: a retained signed desired config reaches a gateway that was offline."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import aiomqtt
import msgpack
import paho.mqtt.client as mqtt
import tomli_w
from uplink_support import running_uplink

from agent.config import parse_config
from agent.trust.commands import command_payload
from agent.trust.keys import new_key
from tools.broker import Broker

PRIVATE, PUBLIC = new_key()


def _config_file(tmp_path: Path, broker: Broker, device: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        tomli_w.dumps(
            {
                "device": {"id": device},
                "uplink": {
                    "url": broker.url,
                    "reconnect_min_s": 0.05,
                    "reconnect_max_s": 0.5,
                    "telemetry_interval_s": 60.0,
                    "commands": {"trusted_keys": [PUBLIC]},
                },
                "outbox": {"path": str(tmp_path / "outbox.sqlite")},
            }
        )
    )
    return path


def _desire(broker: Broker, device: str, patch: dict, ver: int, key: str = PRIVATE) -> None:
    payload = command_payload(device, "desired-config", {"set": patch, "ver": ver}, key)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(f"city/{device}/config/desired", payload, qos=1, retain=True).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


async def _reported(broker: Broker, device: str, want: Any) -> dict[str, Any]:
    """The retained report, once it satisfies ``want``."""
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(f"city/{device}/config/reported", qos=1)
        async with asyncio.timeout(20):
            async for message in client.messages:
                report = msgpack.unpackb(message.payload, raw=False)
                if want(report):
                    return report
    raise AssertionError("no report")


def _run(path: Path, body) -> Any:
    config = parse_config(tomllib.loads(path.read_text()), str(path))

    async def go() -> Any:
        async with running_uplink(config, config_path=path) as ctx:
            return await body(ctx)

    return asyncio.run(go())


def test_a_gateway_that_was_offline_applies_the_desired_config_once(
    mosquitto: Broker, tmp_path: Path
) -> None:
    device = "pole-dc"
    path = _config_file(tmp_path, mosquitto, device)
    _desire(
        mosquitto, device, {"uplink": {"telemetry_interval_s": 15.0}, "device": {"site": "Elm St"}}, ver=3
    )

    async def first(ctx) -> tuple[dict, float]:
        report = await _reported(mosquitto, device, lambda r: r.get("ver") == 3)
        return report, ctx.config.uplink.telemetry_interval_s

    report, live = _run(path, first)
    assert report["ok"] is True and report["d"] == device
    assert report["applied"] == ["uplink.telemetry_interval_s"] and report["restart_needed"] == [
        "device.site"
    ]
    assert live == 15.0, "applied live, without a restart"
    on_disk = tomllib.loads(path.read_text())
    assert on_disk["uplink"]["telemetry_interval_s"] == 15.0 and on_disk["device"]["site"] == "Elm St"

    # restarted: the retained message comes back and is not applied a second time
    async def again(ctx) -> dict:
        return await _reported(mosquitto, device, lambda r: "note" in r)

    report2 = _run(path, again)
    assert report2["ver"] == 3 and "not newer" in report2["note"] and report2["hash"] == report["hash"]


def test_an_unsigned_forged_or_older_desired_config_changes_nothing(
    mosquitto: Broker, tmp_path: Path
) -> None:
    device = "pole-dx"
    path = _config_file(tmp_path, mosquitto, device)
    before = path.read_text()
    other, _ = new_key()
    _desire(mosquitto, device, {"uplink": {"telemetry_interval_s": 5.0}}, ver=1, key=other)

    async def forged(ctx) -> dict:
        return await _reported(mosquitto, device, lambda r: r.get("ok") is False)

    report = _run(path, forged)
    assert report["error"] == "bad-signature" and report["refused"] == 1 and report["ver"] == 0
    assert path.read_text() == before

    _desire(mosquitto, device, {"uplink": {"telemetry_interval_s": 5.0}}, ver=2)
    _run(path, lambda ctx: _reported(mosquitto, device, lambda r: r.get("ver") == 2))
    _desire(mosquitto, device, {"uplink": {"telemetry_interval_s": 99.0}}, ver=1)  # an old one, replayed

    async def old(ctx) -> tuple[dict, float]:
        report = await _reported(mosquitto, device, lambda r: "note" in r)
        return report, ctx.config.uplink.telemetry_interval_s

    report, live = _run(path, old)
    assert report["ver"] == 2 and "version 1 is not newer" in report["note"] and live == 5.0
    _desire(mosquitto, device, {"uplink": {"telemetry_interval_s": -1}}, ver=4)
    report = _run(path, lambda ctx: _reported(mosquitto, device, lambda r: r.get("refused") == 4))
    assert report["error"] == "invalid-config" and "telemetry_interval_s" in report["message"]


def test_fleet_config_shows_each_device_converging(mosquitto: Broker, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    key = tmp_path / "operator.key"
    key.write_text(PRIVATE + "\n")
    paths = {}
    for device in ("pole-fa", "pole-fb"):
        (tmp_path / device).mkdir()
        paths[device] = _config_file(tmp_path / device, mosquitto, device)
    online = paths["pole-fa"]
    config = parse_config(tomllib.loads(online.read_text()), str(online))

    async def go() -> subprocess.CompletedProcess[str]:
        async with running_uplink(config, config_path=online):
            return await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "tools.edgectl", "fleet", "config", "pole-fa", "pole-fb", "--url", mosquitto.url,
                 "--set", '{"uplink": {"replay_rate": 50}}', "--key", str(key), "--revision", "7", "--wait", "8"],
                capture_output=True, text=True, env=env, timeout=60,
            )  # fmt: skip

    done = asyncio.run(go())
    assert done.returncode == 1, done.stdout + done.stderr  # pole-fb is offline
    rows = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert rows["pole-fa"].startswith("ok       version 7") and rows["pole-fb"].startswith("waiting")
    # pole-fb comes online later and takes the retained version
    report = _run(paths["pole-fb"], lambda ctx: _reported(mosquitto, "pole-fb", lambda r: r.get("ver") == 7))
    assert report["ok"] is True and report["applied"] == ["uplink.replay_rate"]
