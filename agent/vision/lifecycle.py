"""The start/update/end lifecycle that street issues, count rules and crowding alarms share.

A condition (a stall at a place, too many bikes in a zone, a crowded square) opens once it has held
without a break for its on-delay, stays open while it comes back within its off-delay, and ends once
it has been gone that long. The ``start`` event carries a fresh id; every ``update`` and the ``end``
refer to it. Updates are timed from the last one sent (a heartbeat). What a condition is and what its
events carry stays with each rule; this module only keeps the clocks and the id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple

from ..events import END, START


def new_id() -> bytes:
    """An event id: random, so ids from two gateways or two runs never collide."""
    return os.urandom(16)


@dataclass
class Onset:
    """A condition not (yet) open: since when it has held without a break."""

    since: float | None = None

    def hold(self, now: float) -> float:
        """It holds at ``now``: how long it has held so far."""
        if self.since is None:
            self.since = now
        return now - self.since

    def drop(self) -> None:
        """It no longer holds: the next time it holds, the on-delay starts over."""
        self.since = None


@dataclass
class Occurrence:
    """One open condition, from its start to its end: the start's id and its clocks."""

    start_id: bytes = field(default_factory=new_id)
    last_held: float = 0.0  # when the condition was last seen to hold
    last_sent: float = 0.0  # when its last event (start or update) went out
    ended: float | None = None

    def resume(self, now: float) -> None:
        """Its clocks start at ``now``: held and sent (a fresh start, or one restored after a restart)."""
        self.last_held = self.last_sent = now

    def held(self, now: float) -> None:
        self.last_held = now

    def gone_for(self, now: float) -> float:
        return now - self.last_held

    def due(self, now: float, every_s: float) -> bool:
        """Whether a heartbeat update is due: nothing sent for ``every_s``."""
        return now - self.last_sent >= every_s

    def sent(self, now: float) -> None:
        self.last_sent = now

    def end(self, now: float) -> None:
        self.ended = now

    def cooling(self, now: float, cooldown_s: float) -> bool:
        """Ended less than ``cooldown_s`` ago: the same condition must not open again yet."""
        return self.ended is not None and now - self.ended < cooldown_s


class Change(NamedTuple):
    """A lifecycle's step that opened (``START``) or closed (``END``) it, and the start's id."""

    phase: str
    start_id: bytes


@dataclass
class Lifecycle:
    """One condition that opens and closes again and again (a zone's count, a zone's crowding):
    open after it has held ``on_after_s``, closed once it has not held for ``off_after_s``."""

    on_after_s: float
    off_after_s: float
    onset: Onset = field(default_factory=Onset)
    current: Occurrence | None = None

    @property
    def is_open(self) -> bool:
        return self.current is not None

    def step(self, holds: bool, now: float) -> Change | None:
        """One frame: whether the condition holds. The change it makes, if any; updates while it is
        open are the rule's to decide (what changed is the rule's business)."""
        if holds:
            held_for = self.onset.hold(now)
            if self.current is not None:
                self.current.held(now)
            elif held_for >= self.on_after_s:
                self.current = Occurrence()
                self.current.resume(now)
                return Change(START, self.current.start_id)
            return None
        if self.current is None:
            self.onset.drop()  # never confirmed: a dip resets the on-delay
        elif self.current.gone_for(now) >= self.off_after_s:
            ended, self.current = self.current, None
            ended.end(now)
            self.onset.drop()
            return Change(END, ended.start_id)
        return None
