"""`edgectl events tail` against a real broker: JSON lines, dedup, table, shared subscriptions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
from uplink_support import reading

from agent.events import READING, Event, encode, encode_state, now_ms
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
    # events only: the session's broker holds other tests' retained state messages
    tail = _tail(
        "--url", mosquitto.url, "--topic", "city/+/evt/#", "--dedup", "--count", "3", "--timeout", "30"
    )
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
    mine = ("--topic", "city/pole-s/#")  # not the retained states other tests left on the broker
    a = _tail("--url", mosquitto.url, *mine, "--share", "platform", "--format", "table", "--timeout", "3")
    b = _tail("--url", mosquitto.url, *mine, "--share", "platform", "--format", "table", "--timeout", "3")
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
    cmd = f"{sys.executable} -m tools.edgectl events tail --url {mosquitto.url} --topic 'city/+/evt/#' --timeout 30 | head -2"
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
    tail = _tail("--config", str(config), "--topic", "city/pole-c/#", "--count", "1", "--timeout", "30")
    _publish(mosquitto, [("city/pole-c/evt/reading", encode(reading(1).stamped("pole-c", 1)))])
    out, err = tail.communicate(timeout=30)
    assert tail.returncode == 0, err
    assert json.loads(out)["d"] == "pole-c"


def test_tail_reads_the_state_topic_and_shows_sensors_with_units(mosquitto: Broker) -> None:
    """The documented state topic decodes with the same header keys; the table names sensors and units."""
    with_units = Event(
        kind=READING,
        captured_ms=now_ms(),
        clock_synced=True,
        board="pole-u-b1",
        sensor="air",
        values={"pm2_5": 21.5},
        units={"pm2_5": "ug/m3"},
    ).stamped("pole-u", 1)
    messages = [
        ("city/pole-u/state", encode_state("pole-u", True, agent="1.0")),
        ("city/pole-u/evt/reading", encode(with_units)),
    ]
    mine = ("--topic", "city/pole-u/#")  # not the retained states other tests left on the broker
    as_json = _tail("--url", mosquitto.url, *mine, "--count", "2", "--timeout", "30")
    table = _tail("--url", mosquitto.url, *mine, "--format", "table", "--count", "2", "--timeout", "30")
    _publish(mosquitto, messages)
    out, err = as_json.communicate(timeout=30)
    assert as_json.returncode == 0 and "skipped" not in err, err
    state, event = (json.loads(line) for line in out.splitlines())
    assert state["topic"] == "city/pole-u/state" and state["d"] == "pole-u" and state["online"] is True
    assert event["topic"] == "city/pole-u/evt/reading" and event["u"] == {"pm2_5": "ug/m3"}
    rows, err = table.communicate(timeout=30)
    assert table.returncode == 0, err
    state_row, reading_row = rows.splitlines()
    assert "pole-u" in state_row and "online" in state_row and "[city/pole-u/state]" in state_row
    assert "pole-u-b1/air" in reading_row and "pm2_5=21.5ug/m3" in reading_row


def test_the_technician_guides_one_event_recipe_works_as_written(mosquitto: Broker, tmp_path: Path) -> None:
    """docs/technician-guide.md: mosquitto_sub ... -N -F %p > one.msgpack; edgectl events decode one.msgpack."""
    guide = (ROOT / "docs" / "technician-guide.md").read_text()
    (line,) = [x for x in guide.splitlines() if x.startswith("mosquitto_sub") and "> one.msgpack" in x]
    # the broker connection is the pole's; everything after it is the recipe as written
    recipe = line[line.index(" -C ") :]
    command = f"mosquitto_sub -h {mosquitto.host} -p {mosquitto.port}{recipe}"
    sub = subprocess.Popen(command, shell=True, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    event = reading(7).stamped("pole-0042", 7)
    for _ in range(50):  # until the subscriber is in (it prints nothing when it is)
        _publish(mosquitto, [("city/pole-0042/evt/reading", encode(event))])
        try:
            sub.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            continue
    assert sub.returncode == 0, sub.stderr.read() if sub.stderr else ""
    assert "edgectl events decode one.msgpack" in guide
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "tools.edgectl", "events", "decode", "one.msgpack"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["s"] == 7


def test_decode_names_the_newline_that_mosquitto_sub_adds_without_n(tmp_path: Path) -> None:
    path = tmp_path / "one.msgpack"
    path.write_bytes(encode(reading(1).stamped("pole-n", 1)) + b"\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "tools.edgectl", "events", "decode", str(path)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "mosquitto_sub -N" in done.stderr, done.stderr
    state = tmp_path / "state.msgpack"
    state.write_bytes(encode_state("pole-n", False, clean=True))
    done = subprocess.run(
        [sys.executable, "-m", "tools.edgectl", "events", "decode", str(state)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and json.loads(done.stdout)["online"] is False, done.stderr
