"""The outbox: durable on return, sequence survives restarts, quota eviction, corrupt file reset."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from uplink_support import reading

from agent.events import ALARM, CROWD, HEALTH, ISSUE, READING, START, Event, ModelRef, decode, now_ms
from agent.uplink.outbox import Outbox, OutboxError


def _event(kind: str, i: int = 0) -> Event:
    base = {"captured_ms": now_ms(), "clock_synced": True, "extra": {"pad": "x" * 200}}
    if kind == HEALTH:
        return Event(kind=HEALTH, health={"i": i}, **base)
    if kind == CROWD:
        return Event(kind=CROWD, count=float(i), camera="cam-1", **base)
    if kind == READING:
        return Event(kind=READING, board="b", sensor="s", values={"v": float(i)}, **base)
    if kind == ALARM:
        return Event(kind=ALARM, phase=START, label="tilt_deg_high", severity="critical", **base)
    return Event(
        kind=ISSUE,
        phase=START,
        label="garbage",
        camera="cam-1",
        model=ModelRef("street-issues", "2.0.0", bytes(8)),
        confidence=900,
        box=(10, 10, 200, 200),
        **base,
    )


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
    assert outbox.stats.depth == len(rows)
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


def test_an_unusable_path_is_refused_with_a_sentence_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the outbox folder should be")
    with pytest.raises(OutboxError, match=r"cannot open the outbox .*not-a-dir.*outbox.path"):
        asyncio.run(Outbox.open(blocker / "outbox.sqlite", "pole-1", 10**9))


def test_damaged_pages_are_detected_and_the_sequence_continues_from_the_salvaged_mark(
    outbox_path: Path,
) -> None:
    async def fill() -> None:
        outbox = await Outbox.open(outbox_path, "pole-1", 10**9)
        await outbox.submit_many(reading(i) for i in range(3000))
        await outbox.close()

    asyncio.run(fill())
    data = bytearray(outbox_path.read_bytes())
    data[4096 * 20 : 4096 * 22] = b"\xab" * 8192  # two pages of events overwritten: header intact
    outbox_path.write_bytes(bytes(data))

    async def reopen() -> Outbox:
        outbox = await Outbox.open(outbox_path, "pole-1", 10**9)
        await outbox.close()
        return outbox

    outbox = asyncio.run(reopen())
    assert outbox.reset_reason is not None
    assert "malformed" in outbox.reset_reason or "damaged pages" in outbox.reset_reason
    assert outbox.last_seq == 3001, "the alarm continues right after the salvaged high-water mark"
    assert len(list(outbox_path.parent.glob("outbox.sqlite.corrupt-*Z"))) == 1


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (
            Event(kind=READING, captured_ms=-5, clock_synced=True, board="b", sensor="s", values={"v": 1.0}),
            "'t'",
        ),
        (
            Event(kind=READING, captured_ms=1, clock_synced=True, board="b", sensor="", values={"v": 1.0}),
            "'sn'",
        ),
        (
            Event(
                kind=READING,
                captured_ms=1,
                clock_synced=True,
                board="b",
                sensor="s",
                values={"v": float("nan")},
            ),
            "'val'",
        ),
        (
            Event(
                kind=ALARM,
                captured_ms=1,
                clock_synced=True,
                phase=START,
                label="x",
                severity="critical",
                values={3: 1.0},
            ),
            "msgpack",
        ),  # type: ignore[dict-item]
        (Event(kind=CROWD, captured_ms=1, clock_synced=True, camera="c", count=float("inf")), "'n'"),
    ],
    ids=["negative-time", "empty-sensor", "nan-value", "int-key", "infinite-count"],
)
def test_an_event_the_decoder_would_refuse_is_refused_before_it_takes_a_number(
    outbox_path: Path, event: Event, problem: str
) -> None:
    from agent.events import EventFormatError

    async def main() -> tuple[str, int]:
        outbox = await Outbox.open(outbox_path, "pole-1", 10**9)
        try:
            with pytest.raises(EventFormatError) as caught:
                await outbox.submit(event)
            good = await outbox.submit(reading(1))
            return str(caught.value), good.seq
        finally:
            await outbox.close()

    message, seq = asyncio.run(main())
    assert problem in message
    assert seq == 1, "the refused event used up a sequence number: consumers would see a gap"
    assert [r[0] for r in _rows(outbox_path)] == [1]
