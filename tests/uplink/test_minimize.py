"""Data minimization: what privacy settings withhold is never stored, never sent, and leaves no gap."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from uplink_support import reading

from agent import events as ev
from agent.config import ConfigError, PrivacyConfig, parse_config
from agent.events import ISSUE, Event, ModelRef, now_ms
from agent.uplink.outbox import Outbox

MODEL = ModelRef.from_hex("m", "1", "00" * 8)


def issue(label: str, **more) -> Event:
    return Event(
        kind=ISSUE, captured_ms=now_ms(), clock_synced=True, phase=ev.START, label=label, camera="cam",
        model=MODEL, confidence=900, box=(1, 2, 3, 4), **more,
    )  # fmt: skip


def test_withheld_kinds_labels_and_fields_never_reach_the_disk(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    privacy = PrivacyConfig(
        send_kinds=["issue", "alarm", "health"], drop_fields=["img", "tr"], drop_labels=["person"]
    )

    async def go() -> Outbox:
        outbox = await Outbox.open(path, "pole-p", 10_000_000)
        outbox.privacy = privacy
        await outbox.submit(reading(1))  # readings do not leave this device
        await outbox.submit(issue("person", track=4))
        await outbox.submit(issue("garbage", track=7, image=b"\xff\xd8jpeg", blurred=True, zone="kerb"))
        await outbox.submit(reading(2))
        await outbox.submit(issue("pothole"))
        await outbox.close()
        return outbox

    outbox = asyncio.run(go())
    db = sqlite3.connect(path)
    rows = db.execute("SELECT seq, payload FROM events ORDER BY seq").fetchall()
    db.close()
    events = [ev.decode(p) for _, p in rows]
    assert [(e.seq, e.label) for e in events] == [(1, "garbage"), (2, "pothole")], (
        "no gap for what was withheld"
    )
    assert events[0].image is None and events[0].blurred is None and events[0].track is None
    assert events[0].zone == "kerb"
    assert b"jpeg" not in rows[0][1]
    assert outbox.withheld == {"reading": 2, "issue": 1}


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        ({"drop_fields": ["d"]}, "cannot drop ['d']"),
        ({"drop_fields": ["b"]}, "cannot drop ['b']"),
        ({"send_kinds": ["issues"]}, "unknown kinds ['issues']"),
    ],
)
def test_settings_that_would_break_events_are_refused_naming_them(privacy: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"device": {"id": "p"}, "privacy": privacy})
    assert message in str(caught.value)
