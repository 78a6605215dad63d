"""Writes the golden event vectors: ``NAME.msgpack`` and ``NAME.json`` for each example event.

Run from the repository root: ``python tests/vectors/make_vectors.py``. The vectors are committed;
tests check that they still decode and re-encode byte for byte, so a change to the wire format that
would break integrators fails the test suite.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent import events as ev
from agent.boards.session import alarm_fields
from agent.events import Event, ModelRef
from agent.vision.crowd import COUNT_UNIT, crowding_alarm

HERE = Path(__file__).resolve().parent
T0 = 1_795_420_800_000  # 2026-11-23T08:00:00Z
MODEL = ModelRef.from_hex("street-issues", "1.0.0", "9f2c4a1be07d55e3" + "0" * 48)
CROWD_MODEL = ModelRef.from_hex("crowd-counter", "1.0.0", "41d7c09a3b6e2f18" + "0" * 48)
START_ID = bytes.fromhex("0193a1f4c2d87b3e9a5f6c0d1e2f3a4b")
COVER_ALARM_ID = bytes.fromhex("0193a1f56b114e2c9f8e7d6c5b4a3928")


def examples() -> dict[str, Event]:
    common = {"device": "pole-0042", "clock_synced": True}
    units = {"tilt_deg": "deg", "accel_g": "g"}  # what the adxl345 driver reports in HELLO
    cover = alarm_fields("tilt_deg", 23.5, 15.0, units)
    cover_end = alarm_fields("tilt_deg", 13.9, 15.0, units)
    return {
        "issue_start": Event(
            kind=ev.ISSUE,
            captured_ms=T0,
            seq=1017,
            event_id=START_ID,
            phase=ev.START,
            label="garbage",
            model=MODEL,
            confidence=873,
            box=(4120, 6210, 5030, 7400),
            camera="cam-north",
            zone="pavement-east",
            track=311,
            **common,
        ),
        "issue_update": Event(
            kind=ev.ISSUE,
            captured_ms=T0 + 600_000,
            seq=1042,
            event_id=bytes.fromhex("0193a1fd7e0c4b2aa1b2c3d4e5f60718"),
            phase=ev.UPDATE,
            ref=START_ID,
            label="garbage",
            camera="cam-north",
            confidence=902,
            box=(4100, 6180, 5300, 7460),
            **common,
        ),
        "issue_end": Event(
            kind=ev.ISSUE,
            captured_ms=T0 + 5_400_000,
            seq=1203,
            event_id=bytes.fromhex("0193a25a11aa4c0f8e7d6c5b4a392817"),
            phase=ev.END,
            ref=START_ID,
            label="garbage",
            camera="cam-north",
            **common,
        ),
        "crowd": Event(
            kind=ev.CROWD,
            captured_ms=T0 + 30_000,
            seq=1020,
            event_id=bytes.fromhex("0193a1f538904d7c8b6a5f4e3d2c1b0a"),
            model=CROWD_MODEL,
            camera="cam-north",
            zone="pavement-east",
            count=37.0,
            density=0.62,
            **common,
        ),
        "crossing": Event(
            kind=ev.CROSSING,
            captured_ms=T0 + 60_000,
            seq=1021,
            event_id=bytes.fromhex("0193a1f61b0e4c2d9a8b7c6d5e4f3021"),
            model=MODEL,
            camera="cam-north",
            zone="crossing-east",
            label="person",
            values={"in": 14.0, "out": 9.0},
            **common,
        ),
        "reading": Event(
            kind=ev.READING,
            captured_ms=T0 + 1_250,
            seq=1018,
            event_id=bytes.fromhex("0193a1f4c7714f1a9d2e3f4a5b6c7d8e"),
            board="board-1",
            sensor="pms5003",
            values={"pm1_0": 8.0, "pm2_5": 21.0, "pm10": 34.0},
            units={"pm1_0": "ug/m3", "pm2_5": "ug/m3", "pm10": "ug/m3"},
            **common,
        ),
        # alarms as the agent builds them: the board session's and the crowd monitor's own code
        "alarm_cover_start": Event(
            kind=ev.ALARM,
            captured_ms=T0 + 42_817,
            seq=1021,
            event_id=COVER_ALARM_ID,
            phase=ev.START,
            label=cover[0],
            severity="critical",
            board="pole-0042-b1",
            sensor="cover",
            values=cover[1],
            units=cover[2],
            **common,
        ),
        "alarm_cover_end": Event(
            kind=ev.ALARM,
            captured_ms=T0 + 95_112,
            seq=1030,
            event_id=bytes.fromhex("0193a1f8a2c34b5d8e9f0a1b2c3d4e5f"),
            phase=ev.END,
            ref=COVER_ALARM_ID,
            label=cover_end[0],
            severity="critical",
            board="pole-0042-b1",
            sensor="cover",
            values=cover_end[1],
            units=cover_end[2],
            **common,
        ),
        "alarm_crowding_start": crowding_alarm(
            ev.START,
            bytes.fromhex("0193a1f59c2d4e6f8a0b1c2d3e4f5061"),
            None,
            ("count", 42.0, 25.0, COUNT_UNIT),
            captured_ms=T0 + 31_000,
            clock_synced=True,
            camera="cam-north",
            zone="pavement-east",
            count=42.0,
            density=0.7,
            model=CROWD_MODEL,
        ).stamped("pole-0042", 1023),
        "health": Event(
            kind=ev.HEALTH,
            captured_ms=T0 + 60_000,
            seq=1022,
            event_id=bytes.fromhex("0193a1f61f2a4d3b8c7d6e5f40312233"),
            health={"uptime_s": 86_400, "cpu_pct": 37.5, "outbox": {"depth": 0, "dropped": {}}},
            **common,
        ),
    }


def states() -> dict[str, dict]:
    """The retained state topic's messages, from the publisher's own encoder."""
    return {
        "state_birth": ev.state_to_wire("pole-0042", True, T0 - 5_000, agent="1.4.0"),
        "state_will": ev.state_to_wire("pole-0042", False, T0 - 5_000, clean=False),
    }


def payloads() -> dict[str, tuple[bytes, object]]:
    """Each vector's msgpack payload and its JSON view."""
    out: dict[str, tuple[bytes, object]] = {}
    for name, event in examples().items():
        out[name] = (ev.encode(event), ev.to_json(event))
    for name, state in states().items():
        out[name] = (msgpack.packb(state, use_bin_type=True), ev.json_view(state))
    return out


def main() -> None:
    for old in HERE.glob("*.msgpack"):
        old.unlink()
        old.with_suffix(".json").unlink(missing_ok=True)
    for name, (payload, view) in payloads().items():
        (HERE / f"{name}.msgpack").write_bytes(payload)
        (HERE / f"{name}.json").write_text(json.dumps(view, indent=2) + "\n")
        print(f"{name}: {len(payload)} bytes")


if __name__ == "__main__":
    main()
