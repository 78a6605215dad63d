"""The outbox: durable on return, sequence survives restarts, quota eviction, corrupt file reset."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from uplink_support import reading

from agent.events import ALARM, CROWD, HEALTH, ISSUE, READING, START, Event, decode, now_ms
from agent.uplink.outbox import Outbox


def _event(kind: str, i: int = 0) -> Event:
    base = {"captured_ms": now_ms(), "clock_synced": True, "extra": {"pad": "x" * 200}}
    if kind == HEALTH:
        return Event(kind=HEALTH, health={"i": i}, **base)
    if kind == CROWD:
        return Event(kind=CROWD, count=float(i), camera="cam-1", **base)
    if kind == READING:
        return Event(kind=READING, board="b", sensor="s", values={"v": float(i)}, **base)
    if kind == ALARM:
        return Event(kind=ALARM, phase=START, label="cover_tilt", severity="critical", **base)
    return Event(kind=ISSUE, phase=START, label="garbage", camera="cam-1", **base)


def _rows(path: Path) -> list[tuple[int, str, bytes]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT seq, kind, payload FROM events ORDER BY seq").fetchall()
    finally:
        db.close()


def test_concurrent_submitters_are_committed_stamped_and_in_order(outbox_path: Path) -> None:
    async def main() -> list[Event]:
        outbox = await Outbox.open(outbox_path, "pole-1", 10**9)
        accepted = await asyncio.gather(*(outbox.submit(reading(i)) for i in range(500)))
        await outbox.close()
        return accepted

    accepted = asyncio.run(main())
    assert sorted(e.seq for e in accepted) == list(range(1, 501))
    rows = _rows(outbox_path)
    assert [r[0] for r in rows] == list(range(1, 501))
    for seq, kind, payload in rows:
        event = decode(payload)
        assert (event.seq, event.device, event.kind, kind) == (seq, "pole-1", READING, READING)


def test_sequence_survives_restart_even_when_everything_was_delivered(outbox_path: Path) -> None:
    async def main() -> tuple[int, int]:
        outbox = await Outbox.open(outbox_path, "pole-1", 10**9)
        first = [await outbox.submit(reading(i)) for i in range(3)]
        for event in first:
            outbox.ack(event.seq)
        await outbox.close()
        assert _rows(outbox_path) == []
        outbox = await Outbox.open(outbox_path, "pole-1", 10**9)
        again = await outbox.submit(reading())
        depth = outbox.stats.depth
        await outbox.close()
        return again.seq, depth

    seq, depth = asyncio.run(main())
    assert seq == 4
    assert depth == 1


def test_quota_evicts_least_important_oldest_first_and_counts_per_kind(outbox_path: Path) -> None:
    quota = 200_000

    async def main() -> tuple[Outbox, list[Event]]:
        outbox = await Outbox.open(outbox_path, "pole-1", quota)
        kinds = [HEALTH, CROWD, READING, ISSUE, ALARM]
        # One transaction: eviction then sees the whole mix, as a long outage would pile it up.
        accepted = await outbox.submit_many(_event(kinds[i % 5], i) for i in range(1000))
        await outbox.close()
        return outbox, accepted

    outbox, accepted = asyncio.run(main())
    rows = _rows(outbox_path)
    kept = {seq for seq, _, _ in rows}
    dropped = outbox.stats.dropped
    assert dropped, "the quota was never reached: the test writes too little"
    assert outbox.stats.used_bytes <= quota
    by_kind = {e.seq: e.kind for e in accepted}
    # Nothing more important was dropped while something less important is still kept.
    rank = {HEALTH: 0, CROWD: 0, READING: 1, ISSUE: 2, ALARM: 3}
    lost = set(by_kind) - kept
    assert max(rank[by_kind[s]] for s in lost) <= min(rank[by_kind[s]] for s in kept)
    # Within a priority, the oldest go first.
    for kind in (HEALTH, CROWD, READING):
        lost_k = sorted(s for s in lost if by_kind[s] == kind)
        kept_k = sorted(s for s in kept if by_kind[s] == kind)
        if lost_k and kept_k:
            assert max(lost_k) < min(kept_k)
    assert ALARM not in dropped and ISSUE not in dropped
    assert dropped.get(HEALTH) == dropped.get(CROWD) == 200  # all periodic figures went first
    assert sum(dropped.values()) == len(lost)
    assert dropped == {k: sum(1 for s in lost if by_kind[s] == k) for k in dropped}


def test_drop_counters_persist_and_reset(outbox_path: Path) -> None:
    async def main() -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        outbox = await Outbox.open(outbox_path, "pole-1", 60_000)
        await outbox.submit_many(_event(HEALTH, i) for i in range(400))
        await outbox.close()
        outbox = await Outbox.open(outbox_path, "pole-1", 60_000)
        after_restart = dict(outbox.stats.dropped)
        returned = await outbox.reset_dropped()
        await outbox.close()
        outbox = await Outbox.open(outbox_path, "pole-1", 60_000)
        after_reset = dict(outbox.stats.dropped)
        await outbox.close()
        return after_restart, returned, after_reset

    after_restart, returned, after_reset = asyncio.run(main())
    assert after_restart.get(HEALTH, 0) > 0
    assert returned == after_restart
    assert after_reset == {}


def test_corrupt_file_is_kept_aside_and_a_new_outbox_raises_an_alarm(outbox_path: Path) -> None:
    async def fill() -> None:
        outbox = await Outbox.open(outbox_path, "pole-1", 10**9)
        for i in range(50):
            await outbox.submit(reading(i))
        await outbox.close()

    asyncio.run(fill())
    data = bytearray(outbox_path.read_bytes())
    data[0:16] = b"definitely nope!"  # the SQLite header is gone: "file is not a database"
    outbox_path.write_bytes(bytes(data))

    async def reopen() -> tuple[Outbox, list[tuple[int, str, bytes]]]:
        outbox = await Outbox.open(outbox_path, "pole-1", 10**9)
        await outbox.close()
        return outbox, _rows(outbox_path)

    outbox, rows = asyncio.run(reopen())
    aside = list(outbox_path.parent.glob("outbox.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes()[:16] == b"definitely nope!"
    assert outbox.reset_reason is not None and "not a database" in outbox.reset_reason
    assert len(rows) == 1
    alarm = decode(rows[0][2])
    assert (alarm.kind, alarm.label, alarm.severity) == (ALARM, "outbox_reset", "critical")
    # The old high-water mark could not be read: the new sequence jumps above any old one.
    assert alarm.seq > 50
