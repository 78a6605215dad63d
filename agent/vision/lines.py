"""Counting lines: tracked objects whose ground point crosses a line, counted once per direction.

A track's ground point (the bottom centre of its box, as zones use) is followed from frame to frame;
a step from one side of the line to the other that passes between the line's two ends is a crossing.
Facing from the line's first point to its second, ``in`` goes from the left side to the right. Each
track counts at most once each way on each line, so a person dithering on the line is one ``in``
(and perhaps one ``out``), not ten. The counts go out as one ``crossing`` event per line and model
every ``report_interval_s``, zeros included, so a platform can tell a quiet street from a lost one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config.camera import LineConfig
from ..events import CROSSING, Event, ModelRef
from .detections import Detections
from .frames import FrameInfo

IN, OUT = "in", "out"


def side(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> float:
    """Which side of the line a→b the point p is on: > 0 right (image y points down), < 0 left."""
    return float((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))


def crosses(a: np.ndarray, b: np.ndarray, p: np.ndarray, q: np.ndarray) -> bool:
    """Whether the step p→q passes between a and b (a touch at either end counts)."""
    return side(p, q, a) * side(p, q, b) <= 0 and side(a, b, p) * side(a, b, q) <= 0


@dataclass
class _Track:
    point: np.ndarray  # the ground point last seen
    seen: float
    sides: dict[str, float] = field(default_factory=dict)  # line id -> last side it was strictly on
    counted: set[tuple[str, str]] = field(default_factory=set)  # (line id, direction)


@dataclass
class LineTally:
    inward: int = 0  # this report interval
    outward: int = 0
    since: float | None = None  # when the interval began
    total_in: int = 0  # since the camera's pipeline started: drawn on the live view
    total_out: int = 0


class LineCounts:
    """One detector's tracks against a camera's counting lines."""

    def __init__(
        self, camera: str, model: ModelRef, classes: list[str], lines: list[LineConfig], forget_s: float
    ) -> None:
        self.camera = camera
        self.model = model
        self.classes = classes
        # only the lines that count something this model detects
        self.lines = [ln for ln in lines if not ln.classes or set(ln.classes) & set(classes)]
        self.ends = {ln.id: np.asarray(ln.points, np.float64) for ln in self.lines}
        self.forget_s = forget_s  # a track unseen this long is gone (the tracker's lost_s)
        self.tallies = {ln.id: LineTally() for ln in self.lines}
        self._tracks: dict[int, _Track] = {}

    def update(self, tracked: Detections, frame: FrameInfo) -> list[Event]:
        now = frame.now
        if self.lines and len(tracked):
            points = tracked.bottom_centers().astype(np.float64)
            for i in range(len(tracked)):
                tid = int(tracked.tracker_id[i])
                if tid >= 0:
                    self._step(tid, self.classes[int(tracked.class_id[i])], points[i], now)
        for tid in [t for t, tr in self._tracks.items() if now - tr.seen > self.forget_s]:
            del self._tracks[tid]
        return self._reports(frame)

    def _step(self, tid: int, label: str, point: np.ndarray, now: float) -> None:
        track = self._tracks.get(tid)
        if track is None:
            track = self._tracks[tid] = _Track(point, now)
        for line in self.lines:
            if line.classes and label not in line.classes:
                continue
            a, b = self.ends[line.id]
            s = side(a, b, point)
            if s == 0.0:
                continue  # on the line: not across it yet
            before = track.sides.get(line.id)
            track.sides[line.id] = s
            if before is None or (before > 0) == (s > 0) or not crosses(a, b, track.point, point):
                continue  # first sight, same side, or around the line's end
            direction = IN if s > 0 else OUT
            if (line.id, direction) in track.counted:
                continue
            track.counted.add((line.id, direction))
            tally = self.tallies[line.id]
            if direction == IN:
                tally.inward += 1
                tally.total_in += 1
            else:
                tally.outward += 1
                tally.total_out += 1
        track.point, track.seen = point, now

    def _reports(self, frame: FrameInfo) -> list[Event]:
        events = []
        for line in self.lines:
            tally = self.tallies[line.id]
            if tally.since is None:
                tally.since = frame.now
                continue
            if frame.now - tally.since < line.report_interval_s:
                continue
            events.append(
                Event(
                    kind=CROSSING,
                    captured_ms=frame.captured_ms,
                    clock_synced=frame.clock_synced,
                    camera=self.camera,
                    zone=line.id,
                    label=line.classes[0] if len(line.classes) == 1 else None,
                    model=self.model,
                    values={IN: float(tally.inward), OUT: float(tally.outward)},
                )
            )
            tally.inward = tally.outward = 0
            tally.since = frame.now
        return events
