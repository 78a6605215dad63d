"""The nonces of accepted signed commands, kept on disk: a command replayed after an agent restart
is refused too. Only nonces of commands whose signature verified are stored, so a sender without a
trusted key cannot fill the ledger."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from agent.events import now_ms


class NonceLedger:
    def __init__(self, path: Path | None) -> None:
        """``path`` None keeps the nonces in memory only (tools and tests)."""
        self._db = sqlite3.connect(
            ":memory:" if path is None else path, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, ts INTEGER NOT NULL)")
        self._lock = threading.Lock()

    async def accept(self, nonce: str, ts: int, max_skew_ms: int) -> bool:
        """True the first time ``nonce`` is seen; False for a replay."""
        return await asyncio.to_thread(self._accept, nonce, ts, max_skew_ms)

    def _accept(self, nonce: str, ts: int, max_skew_ms: int) -> bool:
        with self._lock:
            # A nonce older than the skew window is refused as expired anyway: forget it.
            self._db.execute("DELETE FROM nonces WHERE ts < ?", (now_ms() - 2 * max_skew_ms,))
            before = self._db.total_changes
            self._db.execute("INSERT OR IGNORE INTO nonces VALUES (?, ?)", (nonce, ts))
            return self._db.total_changes > before

    def close(self) -> None:
        with self._lock:
            self._db.close()
