"""`edgectl events tail` against a real broker: JSON lines, dedup, table, shared subscriptions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
from uplink_support import reading

from agent.events import encode
from tools.broker import Broker

ROOT = Path(__file__).resolve().parents[2]


def _tail(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.edgectl", "events", "tail", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "following ..." once subscribed
    assert "following" in line, line + proc.stderr.read()
    return proc


def _publish(broker: Broker, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def test_tail_prints_json_lines_and_drops_duplicates_and_bad_payloads(mosquitto: Broker) -> None:
    events = [reading(i).stamped("pole-t", i + 1) for i in range(3)]
    tail = _tail("--url", mosquitto.url, "--dedup", "--count", "3", "--timeout", "30")
    messages = [("city/pole-t/evt/reading", encode(e)) for e in events]
    messages.insert(1, messages[0])  # an at-least-once copy
    messages.insert(2, ("city/pole-t/evt/reading", b"\x81\xa1v\x07"))  # version 7: not ours
    _publish(mosquitto, messages)
    out, err = tail.communicate(timeout=30)
    assert tail.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x["d"], x["s"]) for x in lines] == [("pole-t", 1), ("pole-t", 2), ("pole-t", 3)]
    assert "unsupported schema version 7" in err


def test_tail_table_and_shared_subscription_split_the_stream(mosquitto: Broker) -> None:
    a = _tail("--url", mosquitto.url, "--share", "platform", "--format", "table", "--timeout", "3")
    b = _tail("--url", mosquitto.url, "--share", "platform", "--format", "table", "--timeout", "3")
    _publish(
        mosquitto,
        [("city/pole-s/evt/reading", encode(reading(i).stamped("pole-s", i + 1))) for i in range(20)],
    )
    out_a, _ = a.communicate(timeout=30)
    out_b, _ = b.communicate(timeout=30)
    rows = out_a.splitlines() + out_b.splitlines()
    assert len(rows) == 20, "each event goes to exactly one member of the group"
    assert out_a and out_b, "both members got a share"
    assert all("pole-s" in row and "reading" in row and "pm2_5=" in row for row in rows)


def test_tail_into_head_stops_quietly_and_shows_the_topic(mosquitto: Broker) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = f"{sys.executable} -m tools.edgectl events tail --url {mosquitto.url} --timeout 30 | head -2"
    proc = subprocess.Popen(
        cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stderr is not None
    assert "following" in proc.stderr.readline()
    _publish(
        mosquitto,
        [("city/pole-h/evt/reading", encode(reading(i).stamped("pole-h", i + 1))) for i in range(6)],
    )
    out, err = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [x["topic"] for x in lines] == ["city/pole-h/evt/reading"] * 2
    assert "Broken pipe" not in err and "edgectl:" not in err.replace("edgectl: following", ""), err


def test_tail_connects_as_the_gateway_config_says(mosquitto: Broker, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[device]\nid = "pole-c"\n[uplink]\nurl = "{mosquitto.url}"\n')
    tail = _tail("--config", str(config), "--count", "1", "--timeout", "30")
    _publish(mosquitto, [("city/pole-c/evt/reading", encode(reading(1).stamped("pole-c", 1)))])
    out, err = tail.communicate(timeout=30)
    assert tail.returncode == 0, err
    assert json.loads(out)["d"] == "pole-c"
