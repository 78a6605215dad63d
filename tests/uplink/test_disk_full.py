"""A full disk degrades the outbox instead of stopping the gateway: on a real 6 MiB tmpfs.

The outbox's quota is larger than the filesystem, so the disk fills before the quota acts. Then the
least important events are evicted to make room, every lost event is counted (so each gap in the
sequence is explained by the drop counters), a ``disk_full`` alarm is stored, and alarms keep
being accepted.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from agent.events import ALARM, HEALTH, START, Event, decode, now_ms
from agent.uplink.outbox import Outbox, OutboxError


@pytest.fixture
def tiny_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.fail("this test mounts a 6 MiB tmpfs and needs root (CI and scripts/test.sh run as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _stored_and_dropped(path: Path) -> tuple[dict[int, Event], dict[str, int]]:
    """What the outbox file holds, by sequence number, and its persisted drop counters."""
    db = sqlite3.connect(path)
    try:
        stored = {seq: decode(p) for seq, p in db.execute("SELECT seq, payload FROM events")}
        return stored, dict(db.execute("SELECT kind, count FROM dropped").fetchall())
    finally:
        db.close()


def _health(i: int) -> Event:
    return Event(kind=HEALTH, captured_ms=now_ms(), clock_synced=True, health={"i": i, "pad": "x" * 2000})


def _alarm(i: int) -> Event:
    return Event(
        kind=ALARM, captured_ms=now_ms(), clock_synced=True, phase=START, label="level_cm_high",
        severity="critical", board="b", sensor="water", values={"level_cm": float(i)},
    )  # fmt: skip


def test_a_full_disk_evicts_the_least_important_counts_every_loss_and_keeps_alarms(tiny_disk: Path) -> None:
    path = tiny_disk / "outbox.sqlite"

    async def main() -> tuple[int, int, dict[str, int], list[int]]:
        outbox = await Outbox.open(path, "pole-1", 10**9)
        refused = 0
        for i in range(6000):  # ~6 MB of telemetry on a 6 MiB disk
            try:
                await outbox.submit(_health(i))
            except OutboxError:
                refused += 1
        accepted_alarms = []
        for i in range(20):
            accepted_alarms.append((await outbox.submit(_alarm(i))).seq)
        disk_full = outbox.disk_full
        await outbox.close()
        return refused, disk_full, dict(outbox.stats.dropped), accepted_alarms

    _refused, disk_full, dropped, alarms = asyncio.run(asyncio.wait_for(main(), 120))
    assert disk_full
    assert dropped.get(HEALTH, 0) > 0
    stored, persisted = _stored_and_dropped(path)
    assert all(seq in stored for seq in alarms), "an alarm accepted on a full disk is not in the outbox"
    assert any(e.kind == ALARM and e.label == "disk_full" for e in stored.values())
    # every sequence number is either stored or counted as dropped: gaps are all explained
    top = max(stored)
    assert top - len(stored) == sum(persisted.values()), (top, len(stored), persisted)
    assert persisted == dropped


def test_another_process_filling_the_disk_costs_telemetry_not_alarms(tiny_disk: Path) -> None:
    path = tiny_disk / "outbox.sqlite"

    async def main() -> tuple[list[int], dict[str, int], int]:
        outbox = await Outbox.open(path, "pole-1", 10**9)
        for i in range(100):
            await outbox.submit(_health(i))
        filler = tiny_disk / "someone-elses.log"
        with open(filler, "wb") as fh:  # every block left, as a runaway log would
            try:
                while True:
                    fh.write(b"x" * 65536)
                    fh.flush()
            except OSError:
                pass
        refused = 0
        for i in range(100, 400):
            try:
                await outbox.submit(_health(i))
            except OutboxError:
                refused += 1
        alarms = []
        for i in range(10):
            try:
                alarms.append((await outbox.submit(_alarm(i))).seq)
            except OutboxError:
                alarms.append(-1)
        await outbox.close()
        return alarms, dict(outbox.stats.dropped), refused

    alarms, dropped, _refused = asyncio.run(asyncio.wait_for(main(), 120))
    assert -1 not in alarms, "an alarm was refused while telemetry could still be evicted"
    stored, persisted = _stored_and_dropped(path)
    assert all(seq in stored for seq in alarms)
    assert any(e.label == "disk_full" for e in stored.values() if e.kind == ALARM)
    assert max(stored) - len(stored) == sum(persisted.values()) and dropped.get(HEALTH, 0) > 0
