"""Secrets never leave the gateway: not in logs, health telemetry, get-config replies or edgectl output.

The real agent process runs with two cameras whose streams cannot be opened (so it logs and reports
their errors): one with the password in its rtsp:// URL, one with it in an environment variable, as
the docs recommend. A real Mosquitto carries its telemetry and an unsigned get-config.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config import parse_config
from tools.broker import Broker
from tools.edgectl import main as edgectl

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-Secret"
ENV_SECRET = "env-Secret-77"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def _config(tmp_path: Path, broker: Broker, device: str) -> Path:
    port = _closed_port()
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[device]\nid = "{device}"\n[uplink]\nurl = "{broker.url}"\ntelemetry_interval_s = 1\n'
        f'[outbox]\npath = "{tmp_path / "outbox.sqlite"}"\n'
        f'[[cameras]]\nid = "cam-url"\nsource = "rtsp://admin:{SECRET}@127.0.0.1:{port}/stream1"\n'
        f'models = ["{ROOT / "models" / "crowd-counter"}"]\nreconnect_max_s = 1\n'
        f'[[cameras]]\nid = "cam-env"\nsource = "rtsp://admin@127.0.0.1:{port}/stream2"\n'
        f'password_env = "CAM_PASSWORD"\nmodels = ["{ROOT / "models" / "crowd-counter"}"]\nreconnect_max_s = 1\n'
    )
    return path


def test_no_secret_in_logs_health_or_get_config(mosquitto: Broker, tmp_path: Path) -> None:
    device = "pole-secrets"
    config = _config(tmp_path, mosquitto, device)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CAM_PASSWORD": ENV_SECRET}
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "-c", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen: list[bytes] = []

    async def main() -> bytes:
        async with aiomqtt.Client(
            mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as client:
            await client.subscribe(f"city/{device}/#", qos=1)
            await client.subscribe(f"city/{device}/reply/ops", qos=1)
            health = 0
            reply = b""
            asked = False
            async with asyncio.timeout(60):
                async for message in client.messages:
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    seen.append(payload)
                    if str(message.topic).endswith("/telemetry"):
                        health += 1
                    if str(message.topic) == f"city/{device}/reply/ops":
                        reply = payload
                    if health >= 3 and not asked:
                        props = Properties(PacketTypes.PUBLISH)
                        props.ResponseTopic = f"city/{device}/reply/ops"
                        props.CorrelationData = uuid.uuid4().bytes
                        await client.publish(f"city/{device}/cmd/get-config", b"{}", qos=1, properties=props)
                        asked = True
                    if reply and health >= 4:
                        return reply
        raise AssertionError("unreachable")

    try:
        reply = asyncio.run(main())
    finally:
        agent.send_signal(signal.SIGTERM)
        out, err = agent.communicate(timeout=30)
    config_dump = json.loads(reply)["result"]["config"]  # a JSON request gets a JSON reply
    assert config_dump["cameras"][0]["source"].startswith("rtsp://admin:***@")
    assert config_dump["cameras"][1]["password_env"] == "(set)"
    logs = (out + err).decode(errors="replace")
    assert "rtsp://admin:***@127.0.0.1" in logs, (
        f"the camera URL was never logged: nothing was checked\n{logs[-2000:]}"
    )
    for secret in (SECRET, ENV_SECRET):
        assert secret not in logs, f"a password is in the agent's log:\n{logs[-3000:]}"
        for payload in seen:
            assert secret.encode() not in payload


def test_config_check_and_doctor_print_no_password(tmp_path: Path, capsys, mosquitto: Broker) -> None:
    config = _config(tmp_path, mosquitto, "pole-check")
    assert edgectl(["config", "check", str(config)]) == 0
    assert SECRET not in capsys.readouterr().out
    os.environ["CAM_PASSWORD"] = ENV_SECRET
    try:
        edgectl(["doctor", "--config", str(config)])
    finally:
        os.environ.pop("CAM_PASSWORD")
    both = capsys.readouterr()
    assert "cam-url" in both.out + both.err
    assert SECRET not in both.out + both.err and ENV_SECRET not in both.out + both.err


def test_a_password_in_the_broker_url_is_refused_without_echoing_it(tmp_path: Path, capsys) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[device]\nid = "p1"\n[uplink]\nurl = "mqtts://pole:{SECRET}@broker.example.city:8883"\n'
    )
    assert edgectl(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "uplink.url" in err and "password_file" in err and SECRET not in err


def test_a_camera_password_from_a_file_is_put_in_only_when_opening(tmp_path: Path) -> None:
    secret_file = tmp_path / "cam-pw"
    secret_file.write_text("p@ss word/1\n")
    config = parse_config(
        {
            "device": {"id": "p1"},
            "uplink": {"url": "mqtt://127.0.0.1:1883"},
            "cameras": [
                {
                    "id": "c1",
                    "source": "rtsp://admin@10.0.0.5:554/s",
                    "password_file": str(secret_file),
                    "models": ["m"],
                }
            ],
        }
    )
    cam = config.cameras[0]
    assert cam.source == "rtsp://admin@10.0.0.5:554/s"
    assert cam.source_url() == "rtsp://admin:p%40ss%20word%2F1@10.0.0.5:554/s"
