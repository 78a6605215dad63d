"""Events at rest: the outbox's payloads sealed with AES-GCM in a real SQLite file."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest
from uplink_support import gateway_config, reading, running_uplink

from agent import events as ev
from agent.uplink.atrest import SEALED, Sealer
from agent.uplink.outbox import Outbox, OutboxError
from tools.broker import Broker

QUOTA = 10_000_000


def _rows(path: Path) -> list[tuple[int, bytes]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT seq, payload FROM events ORDER BY seq").fetchall()
    finally:
        db.close()


def test_payloads_are_sealed_on_disk_and_read_back_whole(tmp_path: Path) -> None:
    sealer = Sealer.from_file(tmp_path / "outbox.key", "pole-r")
    assert (tmp_path / "outbox.key").stat().st_mode & 0o777 == 0o600
    path = tmp_path / "outbox.sqlite"

    async def go() -> tuple[list[bytes], list[bytes]]:
        outbox = await Outbox.open(path, "pole-r", QUOTA, sealer=sealer)
        made = await outbox.submit_many([reading(i) for i in range(50)])
        await outbox.close()
        outbox = await Outbox.open(path, "pole-r", QUOTA, sealer=sealer)  # reopened with its key
        read = [r.payload for r in await outbox.read(0, outbox.last_seq, 100)]
        await outbox.submit(reading(99))
        await outbox.close()
        return [ev.encode(e) for e in made], read

    made, read = asyncio.run(go())
    assert read == made
    rows = _rows(path)
    assert len(rows) == 51 and all(p[0] == SEALED for _, p in rows)
    assert not any(b"pm2_5" in p or b"board-1" in p for _, p in rows), "plain text on disk"
    # the chain goes on across the reopen: the link is over the plain payload
    assert (
        ev.decode(Sealer.from_file(tmp_path / "outbox.key", "pole-r").open(51, rows[-1][1])).prev is not None
    )


def test_a_wrong_or_missing_key_is_refused_at_open_naming_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"

    async def go() -> None:
        outbox = await Outbox.open(
            path, "pole-k", QUOTA, sealer=Sealer.from_file(tmp_path / "a.key", "pole-k")
        )
        await outbox.submit(reading(1))
        await outbox.close()

    asyncio.run(go())
    with pytest.raises(OutboxError, match="does not open with this key"):
        asyncio.run(Outbox.open(path, "pole-k", QUOTA, sealer=Sealer.from_file(tmp_path / "b.key", "pole-k")))
    with pytest.raises(OutboxError, match=r"encrypted and no key is configured: set outbox\.key_file"):
        asyncio.run(Outbox.open(path, "pole-k", QUOTA))


def test_a_sealed_row_moved_to_another_number_is_never_published(tmp_path: Path, caplog) -> None:
    sealer = Sealer.from_file(tmp_path / "outbox.key", "pole-m")
    path = tmp_path / "outbox.sqlite"

    async def fill() -> None:
        outbox = await Outbox.open(path, "pole-m", QUOTA, sealer=sealer)
        await outbox.submit_many([reading(i) for i in range(3)])
        await outbox.close()

    asyncio.run(fill())
    db = sqlite3.connect(path)
    db.execute("UPDATE events SET payload = (SELECT payload FROM events WHERE seq = 1) WHERE seq = 2")
    db.commit()
    db.close()

    async def read() -> list[int]:
        outbox = await Outbox.open(path, "pole-m", QUOTA, sealer=sealer)
        try:
            return [r.seq for r in await outbox.read(0, outbox.last_seq, 10)]
        finally:
            await outbox.close()

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(read()) == [1, 3]
    assert "outbox event 2 does not open with this key" in caplog.text


def test_an_outbox_written_before_encryption_stays_readable(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"

    async def go() -> list[int]:
        outbox = await Outbox.open(path, "pole-p", QUOTA)
        await outbox.submit_many([reading(i) for i in range(2)])
        await outbox.close()
        outbox = await Outbox.open(path, "pole-p", QUOTA, sealer=Sealer.from_file(tmp_path / "k", "pole-p"))
        await outbox.submit(reading(3))
        got = [ev.decode(r.payload).seq for r in await outbox.read(0, outbox.last_seq, 10)]
        await outbox.close()
        return got

    assert asyncio.run(go()) == [1, 2, 3]
    assert [p[0] == SEALED for _, p in _rows(path)] == [False, False, True]


def test_the_agent_seals_by_default_and_delivers_plain_events(mosquitto: Broker, tmp_path: Path) -> None:
    from uplink_support import consume

    config = gateway_config(mosquitto.url, tmp_path / "outbox.sqlite", device="pole-at")
    assert config.outbox.encrypt is True

    async def go() -> list[ev.Event]:
        async with consume(mosquitto, "city/pole-at/evt/#") as consumer, running_uplink(config) as ctx:
            await ctx.sink.submit_many([reading(i) for i in range(5)])
            await consumer.wait_for(lambda c: len(c.unique()) >= 5)
            return consumer.events

    events = asyncio.run(go())
    assert sorted(e.seq for e in events)[:5] == [1, 2, 3, 4, 5]
    assert (tmp_path / "outbox.key").stat().st_mode & 0o777 == 0o600
