"""Whatever happens to the outbox file while the agent is stopped, (d, s) never names two events.

Real SQLite files: emptied to 0 bytes, deleted, its -wal deleted after a SIGKILL, replaced by an
older copy. Each time the outbox notices, raises ``outbox_reset`` and continues above every number
it handed out before; a normal restart (clean or killed) continues with no gap and no alarm.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from uplink_support import reading

from agent.events import ALARM, decode
from agent.uplink.outbox import Outbox
from agent.uplink.seqmark import seqmark_path

ROOT = Path(__file__).resolve().parents[2]


async def _fill(path: Path, n: int, deliver: bool = False) -> list[int]:
    outbox = await Outbox.open(path, "pole-1", 10**9)
    seqs = [e.seq for e in await outbox.submit_many(reading(i) for i in range(n))]
    if deliver:
        for s in seqs:
            outbox.ack(s)
    await outbox.close()
    return seqs


async def _next(path: Path) -> tuple[Outbox, int]:
    outbox = await Outbox.open(path, "pole-1", 10**9)
    event = await outbox.submit(reading(999))
    await outbox.close()
    return outbox, event.seq


def _alarms(path: Path) -> list:
    db = sqlite3.connect(path)
    try:
        events = [decode(p) for (p,) in db.execute("SELECT payload FROM events ORDER BY seq")]
    finally:
        db.close()
    return [e for e in events if e.kind == ALARM and e.label == "outbox_reset"]


def test_a_clean_restart_continues_with_no_gap_and_no_alarm(outbox_path: Path) -> None:
    seqs = asyncio.run(_fill(outbox_path, 300, deliver=True))
    outbox, seq = asyncio.run(_next(outbox_path))
    assert seq == seqs[-1] + 1 and outbox.reset_reason is None
    assert seqmark_path(outbox_path).is_file()


def test_an_outbox_cut_to_zero_bytes_never_reuses_a_number(outbox_path: Path) -> None:
    seqs = asyncio.run(_fill(outbox_path, 300, deliver=True))
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{outbox_path}{suffix}")
        if p.exists():
            p.write_bytes(b"")
    outbox, seq = asyncio.run(_next(outbox_path))
    assert seq > seqs[-1]
    assert outbox.reset_reason is not None and "emptied, replaced or lost its -wal" in outbox.reset_reason
    (alarm,) = _alarms(outbox_path)
    assert alarm.seq > seqs[-1] and alarm.severity == "critical"


def test_a_deleted_outbox_never_reuses_a_number(outbox_path: Path) -> None:
    seqs = asyncio.run(_fill(outbox_path, 50))
    outbox_path.unlink()
    outbox, seq = asyncio.run(_next(outbox_path))
    assert seq > seqs[-1] and outbox.reset_reason is not None
    assert len(_alarms(outbox_path)) == 1


def test_an_older_copy_put_back_never_reuses_a_number(outbox_path: Path, tmp_path: Path) -> None:
    asyncio.run(_fill(outbox_path, 100))
    backup = tmp_path / "backup.sqlite"
    shutil.copy(outbox_path, backup)
    later = asyncio.run(_fill(outbox_path, 100))
    shutil.copy(backup, outbox_path)
    outbox, seq = asyncio.run(_next(outbox_path))
    assert seq > later[-1] and outbox.reset_reason is not None


WRITER = """
import asyncio, sys
from agent.events import READING, Event, now_ms
from agent.uplink.outbox import Outbox

async def main(path):
    outbox = await Outbox.open(path, "pole-1", 10**9)
    i = 0
    while True:
        batch = [Event(kind=READING, captured_ms=now_ms(), clock_synced=True, board="b", sensor="s",
                       values={"i": i + k}) for k in range(50)]
        done = await outbox.submit_many(batch)
        i += 50
        print(done[-1].seq, flush=True)

asyncio.run(main(sys.argv[1]))
"""


def _kill_writer(path: Path, until_seq: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env)
    last = 0
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while last < until_seq and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        last = int(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert last >= until_seq, "the writer did not get far enough"
    return last


def test_after_a_sigkill_the_restart_has_no_gap(outbox_path: Path) -> None:
    acked = _kill_writer(outbox_path, 3000)
    outbox, seq = asyncio.run(_next(outbox_path))
    assert outbox.reset_reason is None
    assert acked < seq <= acked + 51  # right after the last committed batch: no gap, no alarm


def test_a_wal_deleted_after_a_sigkill_never_reuses_a_number(outbox_path: Path) -> None:
    # SQLite checkpoints its -wal into the file every 1000 pages; deleting the -wal loses the
    # events committed since. The mark beside the file remembers how far the numbers went.
    acked = _kill_writer(outbox_path, 6000)
    wal = Path(f"{outbox_path}-wal")
    assert wal.exists()
    wal.unlink()
    Path(f"{outbox_path}-shm").unlink(missing_ok=True)
    db = sqlite3.connect(outbox_path)
    try:
        remembered = db.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
    finally:
        db.close()
    outbox, seq = asyncio.run(_next(outbox_path))
    if remembered < acked - 256 - 4096:
        assert outbox.reset_reason is not None  # a loss this large is always noticed
    assert seq > acked, f"seq {seq} was already used (acknowledged up to {acked}, file kept {remembered})"
