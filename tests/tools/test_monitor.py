"""`edgectl board monitor` following what a gateway publishes, on the real Mosquitto of the session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import paho.mqtt.publish as publish
import pytest

from agent import topics
from agent.boards.session import LinkStats
from agent.events import ALARM, HEALTH, READING, Event, encode, now_ms
from tools.edgectl import main as edgectl
from tools.errors import BROKER

ROOT = Path(__file__).resolve().parents[2]


def config_file(tmp_path: Path, url: str, device: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f'[device]\nid = "{device}"\n[uplink]\nurl = "{url}"\ntopic_prefix = "city"\n')
    return path


def start_monitor(config: Path, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.edgectl", "board", "monitor", "--config", str(config), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160"},
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "watching ..." once subscribed
    assert "watching" in line, line
    return proc


def publish_all(broker, device: str, events: list[Event]) -> None:
    host, port = "127.0.0.1", broker.port
    publish.single(
        topics.event("city", device, READING), b"\x81\xa1v\x07", hostname=host, port=port
    )  # garbage
    for i, event in enumerate(events, 1):
        event = event.stamped(device, i)
        where = topics.event("city", device, event.kind)
        publish.single(where, encode(event), qos=1, hostname=host, port=port)


def board_events() -> list[Event]:
    t = now_ms()
    return [
        Event(
            READING, t, True, board="b1", sensor="pms5003", values={"pm2_5": 21.0}, units={"pm2_5": "ug/m3"}
        ),
        Event(
            HEALTH,
            t,
            True,
            # The agent's shape: one "boards" section, each board's LinkStats (agent/boards/session.py).
            health={
                "uptime_s": 5,
                "boards": {
                    "b1": {
                        **asdict(
                            LinkStats(True, 1, 120, 2, rtt_ms=4.5, board_log="warning: pms5003: bad checksum")
                        ),
                        "backlog": 0,
                    },
                    "b2": {**asdict(LinkStats(False, 3, 7)), "backlog": 0},
                },
            },
        ),
        Event(READING, t, True, board="b2", sensor="sht3x", values={"temperature_c": 18.5}),
        Event(
            ALARM,
            t,
            True,
            phase="start",
            label="cover_tilt",
            board="b1",
            sensor="adxl345",
            values={"tilt_deg": 23.5},
            severity="critical",
        ),
    ]


def test_json_lines_of_one_board(broker, tmp_path: Path) -> None:
    device = f"pole-{os.getpid()}"
    proc = start_monitor(
        config_file(tmp_path, broker.url, device),
        "--json",
        "--board",
        "b1",
        "--count",
        "2",
        "--duration",
        "30",
    )
    publish_all(broker, device, board_events())
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    events = [line["event"] for line in lines if "event" in line]
    assert [e["sn"] for e in events] == ["pms5003", "adxl345"]  # b2 filtered out
    assert events[1]["c"] == "cover_tilt" and events[1]["ph"] == "start"
    links = [line["link"] for line in lines if "link" in line]
    assert len(links) == 1 and set(links[0]) == {"b1"}, links  # --board b1: only its link
    b1 = links[0]["b1"]
    assert b1["frames_good"] == 120 and b1["frames_corrupt"] == 2 and b1["rtt_ms"] == 4.5
    assert b1["connected"] is True and b1["connects"] == 1 and b1["backlog"] == 0
    assert b1["board_log"] == "warning: pms5003: bad checksum"
    assert "skipped a malformed message" in err


def test_table_updates_in_place(broker, tmp_path: Path) -> None:
    device = f"pole-t{os.getpid()}"
    proc = start_monitor(config_file(tmp_path, broker.url, device), "--count", "3", "--duration", "30")
    publish_all(broker, device, board_events())
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "pm2_5 21 ug/m3" in out and "temperature_c 18.5" in out
    link_rows = [line.split() for line in out.splitlines() if " b1 " in line or " b2 " in line]
    # The link table: board, up, frames ok, corrupt, rtt ms.
    assert any(row[1:10:2] == ["b1", "yes", "120", "2", "4.5"] for row in link_rows), out
    assert any(row[1:10:2] == ["b2", "NO", "7", "0", "-"] for row in link_rows), out
    assert "cover_tilt" in out and "OPEN" in out
    assert "board says" in out and "warning: pms5003: bad" in out.replace("\n", " "), out


def test_no_broker_is_one_line_with_exit_code(tmp_path: Path, closed_port: int, capsys) -> None:
    started = time.monotonic()
    code = edgectl(
        [
            "board",
            "monitor",
            "--config",
            str(config_file(tmp_path, f"mqtt://127.0.0.1:{closed_port}", "pole-x")),
        ]
    )
    assert code == BROKER
    err = capsys.readouterr().err
    assert "connection refused" in err and "Traceback" not in err
    assert time.monotonic() - started < 60


@pytest.fixture(autouse=True)
def _mosquitto_available(broker) -> None:
    """Every test here needs the session's broker up."""
