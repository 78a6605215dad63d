"""The outbox: every event waits in a SQLite file until the broker has acknowledged it.

Durability: WAL journal with ``synchronous=FULL``, so a committed event survives a power cut, not
only a crash of the agent (poles lose power; NORMAL would only survive a process kill). The fsync
per commit is paid once per *batch*: submitters hand their events to one writer thread, and while
it commits, new events gather for the next transaction (group commit, no timer).

The sequence number is stamped here and its high-water mark is written in the same transaction as
the events, so it never repeats across restarts, even after every event has been delivered. A copy
of the mark beside the file (``seqmark.py``) keeps it from repeating when the file itself is lost.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config.privacy import PrivacyConfig
from agent.events import ALARM, HEALTH, ISSUE, START, Event, now_ms, validate, withheld
from agent.trust.keys import DeviceKey
from agent.uplink.seqmark import SeqMark, floor_after, seqmark_path

from .atrest import SEAL_OVERHEAD, AtRestError, Sealer, is_sealed
from .chain import head_bytes, link_of

log = logging.getLogger(__name__)

MAX_BATCH = 4096  # events per transaction: bounds the latency of one commit
QUOTA_LOW_WATER = 0.9  # eviction frees space down to this fraction of the quota, not just below it
# The quota counts stored bytes (payload plus this per-row cost of key, columns and index entry),
# not file pages: pages hold events of every kind, so evicting one kind would free no page.
ROW_OVERHEAD = 48

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_priority ON events (priority, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dropped (kind TEXT PRIMARY KEY, count INTEGER NOT NULL);
"""


class OutboxError(RuntimeError):
    """The outbox cannot store an event (disk full, file unwritable); the message says which."""


# When the disk is full, room is made by evicting this many bytes more than the batch needs.
DISK_FULL_HEADROOM = 256 * 1024
DISK_OK_FREE = 4 * 1024 * 1024  # free bytes at which a disk-full episode is over
# Kept beside the outbox and deleted when the disk is full: in WAL mode even a DELETE needs room
# for its pages, so without it a full disk could not be made less full.
RESERVE_BYTES = 1024 * 1024
# Below this much free space the outbox shrinks its own quota (the WAL alone can take 1 MiB).
DISK_LOW_FREE = 2 * 1024 * 1024
WAL_PAGES = 256  # checkpoint every 1 MiB of WAL (SQLite's default is 4 MiB), so the WAL stays small


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, sqlite3.Error) and (
        "full" in str(exc) or getattr(exc, "sqlite_errorcode", 0) == 13
    )


@dataclass(frozen=True, slots=True)
class Stored:
    """One event as it waits in the outbox: what the publisher needs to send it."""

    seq: int
    kind: str
    payload: bytes


@dataclass(slots=True)
class OutboxStats:
    depth: int = 0
    oldest_ms: int | None = None  # created time of the oldest waiting event
    used_bytes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # evicted by the quota, per kind

    def as_health(self, now: int) -> dict[str, object]:
        return {
            "depth": self.depth,
            "oldest_age_s": None if self.oldest_ms is None else round(max(0, now - self.oldest_ms) / 1000, 1),
            "used_bytes": self.used_bytes,
            "dropped": dict(self.dropped),
        }


@dataclass(slots=True)
class _Pending:
    rows: list[tuple[int, str, int, int, bytes]]
    future: asyncio.Future[None]


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
    return db


def _delete(db: sqlite3.Connection, seqs: list[int]) -> list[int]:
    """Delete these events (in chunks: SQLite bounds a statement's parameters); their payload sizes."""
    sizes: list[int] = []
    for start in range(0, len(seqs), 500):
        chunk = seqs[start : start + 500]
        sizes += [
            size
            for (size,) in db.execute(
                f"DELETE FROM events WHERE seq IN ({','.join('?' * len(chunk))}) RETURNING length(payload)",
                chunk,
            )
        ]
    return sizes


def _alarm(label: str, why: str) -> Event:
    """A critical alarm about the outbox itself; ``why`` says what happened."""
    return Event(
        kind=ALARM,
        captured_ms=now_ms(),
        clock_synced=False,
        phase=START,
        label=label,
        severity="critical",
        extra={"why": why},
    )


def _check(path: Path) -> str | None:
    """None if the file is a sound outbox (or absent), else what is wrong with it."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(path, isolation_level=None)
        try:
            rows = [r[0] for r in db.execute("PRAGMA quick_check(5)").fetchall()]
            if rows != ["ok"]:
                return "damaged pages: " + "; ".join(" ".join(r.split()) for r in rows)[:300]
            db.executescript(_SCHEMA)
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None


def _salvage_seq(path: Path) -> int:
    """Best effort: the high-water mark of a damaged outbox, or 0; each source read on its own."""
    best = 0
    for query in ("SELECT value FROM meta WHERE key = 'seq'", "SELECT max(seq) FROM events"):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                row = db.execute(query).fetchone()
            finally:
                db.close()
            best = max(best, int(row[0] or 0) if row else 0)
        except (sqlite3.DatabaseError, ValueError, TypeError):
            continue
    return best


class Outbox:
    """Durable, ordered, quota-bounded store of events; implements ``EventSink``.

    Open with ``await Outbox.open(path, device, quota_bytes)``; close with ``await outbox.close()``.
    """

    def __init__(
        self,
        path: Path,
        device: str,
        quota_bytes: int,
        key: DeviceKey | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self.path = path
        self.device = device
        self.quota_bytes = quota_bytes
        self.key = key  # signs the chain head in each health report (agent/uplink/chain.py)
        self.sealer = sealer  # encrypts payloads at rest (agent/uplink/atrest.py)
        self.privacy = PrivacyConfig()  # what may leave the device; the uplink part sets the config's
        self.withheld: dict[str, int] = {}  # events withheld by privacy.send_kinds / drop_labels, per kind
        self._seal_extra = SEAL_OVERHEAD if sealer is not None else 0
        self._head: bytes | None = None  # link of the last event numbered: the next one's ``hp``
        self.stats = OutboxStats()
        self.reset_reason: str | None = None  # set when a damaged file was moved aside at open
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="outbox-writer")
        self._reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="outbox-reader")
        self._local = threading.local()
        self._seq = 0  # last sequence number handed out
        self._committed_seq = 0  # last sequence number known committed
        self._pending: collections.deque[_Pending] = collections.deque()
        self._acked: list[int] = []
        self._flusher: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[list[Stored]], None]] = []
        self._closed = False
        self._mark = SeqMark(seqmark_path(self.path))
        self._unsaved_drops: dict[str, int] = {}  # lost to a full disk, written at the next commit
        self._reserve = self.path.with_name(self.path.name + ".reserve")
        self._low_space = False  # set by the writer thread when the disk is nearly full
        self._cap: int | None = None  # bytes the outbox may hold while the disk is nearly full
        self._evict_logged = -float("inf")
        self.disk_full = False  # an episode is on: its alarm was raised

    # ----- lifetime -------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | Path,
        device: str,
        quota_bytes: int,
        key: DeviceKey | None = None,
        sealer: Sealer | None = None,
    ) -> Outbox:
        """Open (or create) the outbox; a damaged file is moved aside and an alarm submitted."""
        outbox = cls(Path(path), device, quota_bytes, key, sealer)
        try:
            await outbox._run(outbox._writer, outbox._open_sync)
        except (OSError, sqlite3.Error, AtRestError) as exc:
            for pool in (outbox._writer, outbox._reader):
                pool.shutdown(wait=False)
            if isinstance(exc, AtRestError):
                raise OutboxError(f"cannot open the outbox {path}: {exc}") from None
            raise OutboxError(
                f"cannot open the outbox {path}: {exc}; set outbox.path to a writable file on persistent storage"
            ) from None
        if outbox.reset_reason is not None:
            await outbox.submit(_alarm("outbox_reset", outbox.reset_reason))
        return outbox

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        wal = Path(f"{self.path}-wal")
        wal_present = wal.exists() and wal.stat().st_size > 0  # before SQLite opens (and makes) one
        problem = _check(self.path)
        mark = self._mark.load()
        floor = 0
        reasons = []
        if problem is not None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            n = 1
            while aside.exists():  # never overwrite an earlier damaged file
                n += 1
                aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            floor = max(_salvage_seq(self.path), mark.floor if mark else 0)
            # Without a readable high-water mark, jump above anything an older file can have
            # handed out (fewer than one event per millisecond since 1970), so seqs never repeat.
            if floor == 0:
                floor = now_ms()
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.rename(Path(f"{aside}{suffix}"))
            log.error("outbox %s is damaged (%s); kept as %s, starting a new one", self.path, problem, aside)
            reasons.append(f"{problem}; damaged file kept as {aside.name}")
        db = self._db(writer=True)
        db.executescript(_SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        top = db.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
        remembered = max(int(row[0]) if row else 0, top, floor)
        # The file may be sound and still have lost numbers (emptied, replaced, -wal deleted).
        floor, lost = floor_after(mark, remembered, wal_present)
        if lost is not None and problem is None:
            log.error("outbox %s: %s", self.path, lost)
            reasons.append(lost)
        if floor > (int(row[0]) if row else 0):
            db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (floor,))
        self._seq = self._committed_seq = floor
        # The chain goes on from the last event stored (or, with none left, the link kept for it)
        last = db.execute("SELECT seq, payload FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        kept = db.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
        if last is not None:
            self._head = link_of(self._opened(*last))  # also: refuses a wrong or missing key now
        elif kept is not None and isinstance(kept[0], bytes):
            self._head = kept[0]
        if reasons:
            self.reset_reason = "; ".join(reasons)
        depth, size = db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM events").fetchone()
        self.stats.depth = depth
        self.stats.used_bytes = size + depth * ROW_OVERHEAD
        self.stats.dropped = dict(db.execute("SELECT kind, count FROM dropped").fetchall())
        self._refresh_sync(db)
        self._ensure_reserve()

    def _ensure_reserve(self) -> None:
        if self._reserve.exists():
            return
        try:
            with open(self._reserve, "wb") as fh:
                fh.truncate(0)
                fh.write(b"\0" * RESERVE_BYTES)  # written, not sparse: the blocks must really be taken
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            self._reserve.unlink(missing_ok=True)
            log.warning("no room for the outbox's reserve %s: %s", self._reserve, exc)

    def _db(self, writer: bool = False) -> sqlite3.Connection:
        """This thread's connection: one for the writer thread, one for the reader thread."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = _connect(self.path)
            if not writer:
                db.execute("PRAGMA query_only=ON")
            self._local.db = db
        return db

    async def close(self) -> None:
        """Commit what is pending (acknowledged deletes included) and close the file."""
        if self._closed:
            return
        await self._drain()
        self._closed = True
        for pool in (self._writer, self._reader):
            await self._run(pool, self._close_sync)
            pool.shutdown(wait=True)

    def _close_sync(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None and threading.current_thread().name.startswith("outbox-writer"):
            self._mark.close(self._committed_seq)
        if db is not None:
            db.close()
            self._local.db = None

    async def _run(self, pool: concurrent.futures.Executor, fn: Callable[..., Any], *args: object) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    # ----- writing ----------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest committed event."""
        return self._committed_seq

    def add_listener(self, listener: Callable[[list[Stored]], None]) -> None:
        """``listener(rows)`` is called in the event loop after each commit, in sequence order."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[list[Stored]], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def submit(self, event: Event) -> Event:
        """Stamp the event with device and sequence; returns once it is committed to disk."""
        return (await self.submit_many([event]))[0]

    async def submit_many(self, events: Iterable[Event]) -> list[Event]:
        """Like ``submit`` for many events at once (one future, same transaction or a few)."""
        if self._closed:
            raise OutboxError("the outbox is closed; the agent is stopping")
        stamped = []
        rows = []
        created = now_ms()
        seq, head = self._seq, self._head
        privacy = self.privacy
        drop = set(privacy.drop_fields)
        for event in events:
            if event.kind not in privacy.send_kinds or (
                event.kind == ISSUE and event.label in privacy.drop_labels
            ):
                # never stored, never sent, and no sequence number: no gap for a consumer to chase
                self.withheld[event.kind] = self.withheld.get(event.kind, 0) + 1
                stamped.append(event)
                continue
            if drop:
                event = withheld(event, drop)
            seq += 1
            signature = None
            if self.key is not None and event.kind == HEALTH:
                signature = self.key.sign(head_bytes(self.device, seq, head))
            event = event.stamped(self.device, seq, head, signature)
            payload = validate(event)  # EventFormatError: refused before it takes a sequence number
            head = link_of(payload)
            stamped.append(event)
            rows.append((event.seq, event.kind, event.priority, created, payload))
        self._seq, self._head = seq, head
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(rows, future))
        self._kick()
        await future
        return stamped

    def ack(self, seq: int) -> None:
        """The broker has this event: delete it with the next commit (lost on a crash: re-sent once)."""
        if self._closed:
            return  # stopping: the event is sent again after the restart
        self._acked.append(seq)
        self._kick()

    def _kick(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _drain(self) -> None:
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush_loop(self) -> None:
        while self._pending or self._acked:
            batch = self._next_batch()
            acked, self._acked = self._acked, []
            rows = [row for item in batch for row in item.rows]
            try:
                await self._run(self._writer, self._commit_sync, rows, acked)
            except Exception as exc:
                kept = await self._commit_failed(exc, batch, rows, acked)
                if kept is None:
                    if not rows:
                        return
                    continue
                rows = kept
            if self._low_space:
                self._low_space = False
                self._raise_disk_full()
            if rows:
                self._committed_seq = max(self._committed_seq, rows[-1][0])
                self._tell_listeners(rows)
            for item in batch:
                if not item.future.done():
                    item.future.set_result(None)

    def _next_batch(self) -> list[_Pending]:
        """The oldest submissions that fit one transaction (at least one, however large)."""
        batch: list[_Pending] = []
        count = 0
        while self._pending and (count == 0 or count + len(self._pending[0].rows) <= MAX_BATCH):
            item = self._pending.popleft()
            batch.append(item)
            count += len(item.rows)
        return batch

    async def _commit_failed(
        self,
        exc: Exception,
        batch: list[_Pending],
        rows: list[tuple[int, str, int, int, bytes]],
        acked: list[int],
    ) -> list[tuple[int, str, int, int, bytes]] | None:
        """After a failed commit: the rows kept by making room on a full disk, or None when nothing
        was stored (the batch's submitters get the error, the acks wait for the next commit)."""
        kept: list[tuple[int, str, int, int, bytes]] | None = None
        if _disk_full(exc) and rows:
            try:
                kept = await self._run(self._writer, self._commit_when_full, rows, acked)
            except Exception as again:
                log.error("outbox: no room could be made on the full disk: %s", again)
        if kept is None:
            log.error("outbox commit failed: %s", exc)
            error = OutboxError(f"cannot write the outbox {self.path}: {exc}")
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            self._acked = acked + self._acked
            self._count_lost(rows)
            return None
        kept_seqs = {row[0] for row in kept}
        error = OutboxError(f"the disk holding {self.path} is full: lower-priority events were dropped")
        for item in batch:
            if not item.future.done():
                if all(row[0] in kept_seqs for row in item.rows):
                    item.future.set_result(None)
                else:
                    item.future.set_exception(error)
        self._raise_disk_full()
        return kept

    def _tell_listeners(self, rows: list[tuple[int, str, int, int, bytes]]) -> None:
        stored = [Stored(seq, kind, payload) for seq, kind, _, _, payload in rows]
        for listener in list(self._listeners):
            try:
                listener(stored)
            except Exception:
                log.exception("outbox listener failed")

    def _room_quota(self, before: int) -> int | None:
        """While the disk is nearly full, a quota of what was stored when that was first seen.

        The file then stops growing: new events take the pages of evicted ones (least important,
        oldest first) instead of the disk running out under SQLite, where even a DELETE needs room
        for its WAL pages. The cap is lifted once the disk has room again.
        """
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return self._cap
        if free >= DISK_OK_FREE:
            self._cap = None
        elif free < DISK_LOW_FREE and self._cap is None:
            self._cap = max(before, 1)
            self._low_space = True
        return None if self._cap is None else min(self.quota_bytes, self._cap)

    def _count_lost(self, rows: list[tuple[int, str, int, int, bytes]]) -> None:
        """Events that took a number and could not be stored: counted, so every gap is explained."""
        for _seq, kind, *_ in rows:
            self._unsaved_drops[kind] = self._unsaved_drops.get(kind, 0) + 1
            self.stats.dropped[kind] = self.stats.dropped.get(kind, 0) + 1

    def _raise_disk_full(self) -> None:
        if self.disk_full:
            return
        self.disk_full = True
        log.error("the disk holding the outbox %s is full: dropping the least important events", self.path)
        alarm = _alarm(
            "disk_full", f"no space left for {self.path}; lowest-priority events are dropped and counted"
        )
        # not awaited here: the flush loop that would commit it is the caller
        asyncio.get_running_loop().create_task(self._submit_quietly(alarm))

    async def _submit_quietly(self, event: Event) -> None:
        try:
            await self.submit(event)
        except OutboxError as exc:
            log.error("the disk_full alarm could not be stored: %s", exc)

    def _commit_when_full(
        self, rows: list[tuple[int, str, int, int, bytes]], acked: list[int]
    ) -> list[tuple[int, str, int, int, bytes]]:
        """Make room by evicting stored events no more important than the new ones, lowest first,
        then store as many of the new ones as fit, most important first. Returns the rows stored."""
        db = self._db(writer=True)
        if db.in_transaction:
            db.execute("ROLLBACK")
        self._reserve.unlink(missing_ok=True)  # the room the eviction itself needs
        top = max(row[2] for row in rows)
        need = sum(len(row[4]) + self._seal_extra + ROW_OVERHEAD for row in rows) + DISK_FULL_HEADROOM
        db.execute("BEGIN IMMEDIATE")
        try:
            _delete(db, acked)
            victims = db.execute(
                "SELECT seq, kind, length(payload) FROM events WHERE priority <= ? ORDER BY priority, seq",
                (top,),
            ).fetchall()
            freed, chosen = 0, []
            evicted: dict[str, int] = {}
            for seq, kind, size in victims:
                if freed >= need:
                    break
                chosen.append(seq)
                freed += size + ROW_OVERHEAD
                evicted[kind] = evicted.get(kind, 0) + 1
            _delete(db, chosen)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # give the WAL's blocks back
        for kind, n in evicted.items():
            self._unsaved_drops[kind] = self._unsaved_drops.get(kind, 0) + n
            self.stats.dropped[kind] = self.stats.dropped.get(kind, 0) + n
        self.stats.depth -= len(chosen)
        self.stats.used_bytes -= freed
        # the new rows, most important first, then oldest first; drop from the end until they fit
        ordered = sorted(rows, key=lambda r: (-r[2], r[0]))
        while ordered:
            keep = sorted(ordered, key=lambda r: r[0])
            try:
                self._commit_sync(keep, [])
            except Exception as exc:
                if not _disk_full(exc):
                    raise
                ordered.pop()
                continue
            self._count_lost([r for r in rows if r not in keep])
            return keep
        self._count_lost(rows)
        return []

    def _commit_sync(self, rows: list[tuple[int, str, int, int, bytes]], acked: list[int]) -> None:
        db = self._db(writer=True)
        db.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", self._sealed(rows))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (rows[-1][0],))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (link_of(rows[-1][4]),))
            for kind, n in self._unsaved_drops.items():
                db.execute(
                    "INSERT INTO dropped VALUES (?, ?) ON CONFLICT(kind) DO UPDATE SET count = count + ?",
                    (kind, n, n),
                )
            added = sum(len(row[4]) + self._seal_extra + ROW_OVERHEAD for row in rows)
            used = self.stats.used_bytes + added
            sizes = _delete(db, acked)
            deleted = len(sizes)
            used -= sum(size + ROW_OVERHEAD for size in sizes)
            evicted, used = self._evict_sync(db, used, self._room_quota(used - added))
            db.execute("COMMIT")
        except BaseException:
            # SQLite rolls back by itself on some errors (a full disk): a second ROLLBACK would
            # fail with "no transaction is active" and hide the real error
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._unsaved_drops.clear()
        if rows:
            self._mark.after_commit(rows[-1][0])
        if self.disk_full and shutil.disk_usage(self.path.parent).free >= DISK_OK_FREE:
            self.disk_full = False  # the episode is over; the next one raises its alarm again
            self._ensure_reserve()
        self.stats.used_bytes = used
        self.stats.depth += len(rows) - deleted - sum(evicted.values())
        for kind, n in evicted.items():
            self.stats.dropped[kind] = self.stats.dropped.get(kind, 0) + n
        self._refresh_sync(db)

    def _evict_sync(
        self, db: sqlite3.Connection, used: int, quota: int | None = None
    ) -> tuple[dict[str, int], int]:
        """Over quota: delete the least important events, oldest first, down to the low-water mark."""
        evicted: dict[str, int] = {}
        quota = self.quota_bytes if quota is None else quota
        if used <= quota:
            return evicted, used
        target = quota * QUOTA_LOW_WATER
        while used > target:
            # Walk the (priority, seq) index in small steps, so the eviction stops near the target.
            victims = db.execute(
                "SELECT seq, kind, length(payload) FROM events ORDER BY priority, seq LIMIT 64"
            ).fetchall()
            if not victims:
                break
            chosen = []
            for seq, kind, size in victims:
                if used <= target:
                    break
                chosen.append(seq)
                used -= size + ROW_OVERHEAD
                evicted[kind] = evicted.get(kind, 0) + 1
            _delete(db, chosen)
        for kind, n in evicted.items():
            db.execute(
                "INSERT INTO dropped VALUES (?, ?) ON CONFLICT(kind) DO UPDATE SET count = count + ?",
                (kind, n, n),
            )
        now = time.monotonic()
        if now - self._evict_logged >= 60:  # at most a line a minute: a full disk evicts at every commit
            self._evict_logged = now
            why = "the disk is nearly full" if quota < self.quota_bytes else "its quota"
            log.warning("outbox over %s (%d bytes held at most): dropped %s", why, quota, evicted)
        return evicted, used

    def _refresh_sync(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT created_ms FROM events ORDER BY seq LIMIT 1").fetchone()
        self.stats.oldest_ms = row[0] if row else None

    async def reset_dropped(self) -> dict[str, int]:
        """Return the drop counters and set them to zero (the ``flush-outbox-stats`` command)."""
        await self._drain()
        return await self._run(self._writer, self._reset_dropped_sync)

    def _reset_dropped_sync(self) -> dict[str, int]:
        db = self._db(writer=True)
        db.execute("DELETE FROM dropped")
        dropped, self.stats.dropped = self.stats.dropped, {}
        return dropped

    # ----- reading ----------------------------------------------------------------------------

    async def read(self, after: int, upto: int, limit: int = 1000) -> list[Stored]:
        """Waiting events with ``after < seq <= upto``, oldest first."""
        return await self._run(self._reader, self._read_sync, after, upto, limit)

    def _read_sync(self, after: int, upto: int, limit: int) -> list[Stored]:
        rows = (
            self._db()
            .execute(
                "SELECT seq, kind, payload FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (after, upto, limit),
            )
            .fetchall()
        )
        out = []
        for seq, kind, payload in rows:
            try:
                out.append(Stored(seq, kind, self._opened(seq, payload)))
            except AtRestError as exc:  # never published as it is; the rest of the backlog goes on
                log.error("%s", exc)
        return out

    def _sealed(self, rows: list[tuple[int, str, int, int, bytes]]) -> list[tuple[int, str, int, int, bytes]]:
        if self.sealer is None:
            return rows
        seal = self.sealer.seal
        return [(seq, kind, prio, created, seal(seq, payload)) for seq, kind, prio, created, payload in rows]

    def _opened(self, seq: int, stored: bytes) -> bytes:
        if self.sealer is not None:
            return self.sealer.open(seq, stored)
        if is_sealed(stored):
            raise AtRestError(
                f"outbox event {seq} is encrypted and no key is configured: set outbox.key_file to its key"
            )
        return stored

    async def flushed(self) -> None:
        """Wait until every submitted event and acknowledgement is committed."""
        await self._drain()
