"""The sequence numbers' high-water mark, kept in a small file beside the outbox.

The outbox's own mark lives in the SQLite file, so whatever happens to that file happens to the mark
too: cut to 0 bytes, deleted, or its ``-wal`` lost while the agent is stopped, and the next start
would hand out numbers that already named delivered events, which consumers deduplicating on
(``d``, ``s``) then throw away. This file survives that and tells the outbox how far numbers went:

- ``committed``: a sequence number known committed when the file was written;
- ``reserved``: no number above it was handed out before the file was rewritten;
- ``clean``: written at a clean close, when ``committed`` is exactly the last number.

It is rewritten (atomically, fsynced) every ``EVERY`` events or ``EVERY_S`` seconds, at close, and
never on an event's own path, so it costs the outbox nothing measurable.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

EVERY = 256  # events between rewrites
EVERY_S = 1.0  # and at most this long
# A commit holds at most MAX_BATCH (4096) events, so between two rewrites at most EVERY + 4096
# numbers can be committed: ``reserved`` leaves room for all of them.
HEADROOM = 8192


@dataclass(frozen=True)
class Mark:
    committed: int
    reserved: int
    clean: bool

    @property
    def floor(self) -> int:
        """No number above this was handed out: after a clean stop ``committed`` is exact."""
        return self.committed if self.clean else self.reserved


def seqmark_path(outbox: Path) -> Path:
    return outbox.with_name(outbox.name + ".seq")


class SeqMark:
    """Reads and writes the mark file of one outbox; used from the outbox's writer thread only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: Mark | None = None
        self._written_at = 0.0

    def load(self) -> Mark | None:
        """The last mark written, or None when there is none (first start) or it cannot be read."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            mark = Mark(int(data["committed"]), int(data["reserved"]), bool(data["clean"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("sequence mark %s is unreadable (%s); relying on the outbox alone", self.path, exc)
            return None
        if mark.committed < 0 or mark.reserved < mark.committed:
            log.warning("sequence mark %s is inconsistent (%s); relying on the outbox alone", self.path, mark)
            return None
        self._written = mark
        return mark

    def after_commit(self, committed: int) -> None:
        """Called after each commit: rewrites the file when enough numbers or time went by."""
        last = self._written
        if last is not None and not last.clean:
            if committed - last.committed < EVERY and time.monotonic() - self._written_at < EVERY_S:
                return
            if committed == last.committed:
                return
        self._write(Mark(committed, committed + HEADROOM, clean=False))

    def close(self, committed: int) -> None:
        reserved = max(committed, self._written.reserved if self._written else committed)
        self._write(Mark(committed, reserved, clean=True))

    def _write(self, mark: Mark) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = json.dumps({"committed": mark.committed, "reserved": mark.reserved, "clean": mark.clean})
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(body + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            # The outbox goes on: the mark only matters if the outbox file is later lost as well.
            log.warning("cannot write the sequence mark %s: %s", self.path, exc)
            return
        self._written, self._written_at = mark, time.monotonic()


def floor_after(mark: Mark | None, outbox_top: int, wal_present: bool = True) -> tuple[int, str | None]:
    """The number to continue after, and why the outbox lost numbers (None: it did not).

    ``outbox_top`` is the highest number the outbox file remembers handing out; ``wal_present``
    whether its ``-wal`` file is there. After a stop that was not clean (a crash, SIGKILL, power
    cut) SQLite always leaves the ``-wal`` behind: without it, events committed since the last
    checkpoint are gone, however high ``outbox_top`` still is.
    """
    if mark is None:
        return outbox_top, None
    if outbox_top < mark.committed:
        how = "at a clean stop" if mark.clean else "before the agent last stopped"
        why = (
            f"the outbox file remembers sequence numbers up to {outbox_top} but {mark.committed} had been "
            f"committed {how}: it was emptied, replaced or lost its -wal file while the agent was stopped"
        )
    elif not mark.clean and not wal_present and outbox_top < mark.reserved:
        why = (
            "the outbox's -wal file is missing after a stop that was not clean: events committed since "
            f"the last checkpoint (after sequence number {outbox_top}) are lost"
        )
    else:
        return outbox_top, None
    floor = max(mark.floor, outbox_top)
    return floor, f"{why}; new events continue above {floor} so no number names two events"
