"""Writes the golden event vectors: ``NAME.msgpack`` and ``NAME.json`` for each example event.

Run from the repository root: ``python tests/vectors/make_vectors.py``. The vectors are committed;
tests check that they still decode and re-encode byte for byte, so a change to the wire format that
would break integrators fails the test suite.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent import events as ev
from agent.events import Event, ModelRef

HERE = Path(__file__).resolve().parent
T0 = 1_795_420_800_000  # 2026-11-23T08:00:00Z
MODEL = ModelRef.from_hex("street-issues", "1.0.0", "9f2c4a1be07d55e3" + "0" * 48)
CROWD_MODEL = ModelRef.from_hex("crowd-counter", "1.0.0", "41d7c09a3b6e2f18" + "0" * 48)
START_ID = bytes.fromhex("0193a1f4c2d87b3e9a5f6c0d1e2f3a4b")


def examples() -> dict[str, Event]:
    common = {"device": "pole-0042", "clock_synced": True}
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
        "alarm": Event(
            kind=ev.ALARM,
            captured_ms=T0 + 42_817,
            seq=1021,
            event_id=bytes.fromhex("0193a1f56b114e2c9f8e7d6c5b4a3928"),
            phase=ev.START,
            label="cover_tilt",
            severity="critical",
            board="board-1",
            sensor="adxl345",
            values={"tilt_deg": 23.5},
            units={"tilt_deg": "deg"},
            **common,
        ),
        "health": Event(
            kind=ev.HEALTH,
            captured_ms=T0 + 60_000,
            seq=1022,
            event_id=bytes.fromhex("0193a1f61f2a4d3b8c7d6e5f40312233"),
            health={"uptime_s": 86_400, "cpu_pct": 37.5, "outbox": {"depth": 0, "dropped": {}}},
            **common,
        ),
    }


def main() -> None:
    for name, event in examples().items():
        (HERE / f"{name}.msgpack").write_bytes(ev.encode(event))
        (HERE / f"{name}.json").write_text(json.dumps(ev.to_json(event), indent=2) + "\n")
        print(f"{name}: {len(ev.encode(event))} bytes")


if __name__ == "__main__":
    main()
