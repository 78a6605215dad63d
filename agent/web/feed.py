"""What the page lists and plots: committed events as integrators decode them, the boards' latest
readings and open alarms (from the same events), and health samples for the time-series plots.

Everything is tapped from the outbox after commit (the events that will be delivered, in sequence
order) and kept in bounded rings: the page never reads the outbox's disk.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..events import ALARM, END, READING, START, EventFormatError, decode, now_ms, to_json
from ..uplink.outbox import Stored

log = logging.getLogger(__name__)

EVENTS_KEPT = 300
SAMPLES_KEPT = 180  # at one sample every 2 s: the last six minutes


@dataclass
class Reading:
    values: dict[str, float]
    units: dict[str, str]
    captured_ms: int


@dataclass
class Feed:
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT))
    readings: dict[str, dict[str, Reading]] = field(default_factory=dict)  # board -> sensor -> newest
    alarms: dict[str, dict[str, Any]] = field(default_factory=dict)  # start event id (hex) -> alarm
    undecodable: int = 0

    def on_commit(self, rows: list[Stored]) -> None:
        """Outbox listener: runs on the event loop after each commit, so it must stay quick."""
        for row in rows:
            try:
                event = decode(row.payload)
            except EventFormatError as exc:
                self.undecodable += 1
                log.debug("web: event %d not decoded: %s", row.seq, exc)
                continue
            view = to_json(event)
            if isinstance(view.get("img"), str):  # the snapshot JPEG: its size, not megabytes of hex
                view["img"] = f"<{len(event.image or b'')} bytes JPEG, blurred>"
            self.events.append(view)
            if event.kind == READING and event.board and event.sensor and event.values:
                board = self.readings.setdefault(event.board, {})
                board[event.sensor] = Reading(dict(event.values), dict(event.units or {}), event.captured_ms)
            elif event.kind == ALARM and event.board:
                if event.phase == START:
                    self.alarms[event.event_id.hex()] = {
                        "board": event.board,
                        "sensor": event.sensor,
                        "label": event.label,
                        "severity": event.severity,
                        "values": event.values,
                        "units": event.units,
                        "since_ms": event.captured_ms,
                    }
                elif event.phase == END and event.ref is not None:
                    self.alarms.pop(event.ref.hex(), None)

    def last_events(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        picked = [e for e in reversed(self.events) if kind is None or e.get("k") == kind]
        return picked[:limit]

    def boards(self, link: dict[str, Any]) -> list[dict[str, Any]]:
        """Each board with its link statistics, readings (with units and age) and open alarms."""
        now = now_ms()
        out = []
        for board in sorted(set(link) | set(self.readings)):
            readings = [
                {
                    "sensor": sensor,
                    "values": r.values,
                    "units": r.units,
                    "age_s": round(max(0, now - r.captured_ms) / 1000, 1),
                }
                for sensor, r in sorted(self.readings.get(board, {}).items())
            ]
            alarms = [
                {**a, "age_s": round(max(0, now - a["since_ms"]) / 1000, 1)}
                for a in self.alarms.values()
                if a["board"] == board
            ]
            out.append({"board": board, "link": link.get(board, {}), "readings": readings, "alarms": alarms})
        return out


@dataclass
class HealthSamples:
    """Samples of the figures the page plots; frame rates from counter differences, not averages."""

    samples: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))
    _last: tuple[float, dict[str, tuple[int, int]]] | None = None

    def take(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        cameras = (snapshot.get("vision") or {}).get("cameras") or {}
        counts = {
            cam: (int(h.get("frames", 0)), int(h.get("inferred", 0)))
            for cam, h in cameras.items()
            if isinstance(h, dict) and h.get("state") == "running"
        }
        sample: dict[str, Any] = {"t": now_ms(), "cameras": {}}
        for cam, (frames, inferred) in counts.items():
            fps = infer_fps = None
            if self._last is not None and cam in self._last[1]:
                dt = max(1e-6, now - self._last[0])
                before = self._last[1][cam]
                if frames >= before[0] and inferred >= before[1]:  # else a new pipeline began counting
                    fps = round((frames - before[0]) / dt, 2)
                    infer_fps = round((inferred - before[1]) / dt, 2)
            sample["cameras"][cam] = {
                "fps": fps,
                "infer_fps": infer_fps,
                "infer_ms": cameras[cam].get("infer_ms"),
            }
        self._last = (now, counts)
        outbox = snapshot.get("outbox") or {}
        uplink = snapshot.get("uplink") or {}
        sample["outbox_depth"] = outbox.get("depth")
        sample["outbox_oldest_s"] = outbox.get("oldest_age_s")
        sample["uplink_connected"] = uplink.get("connected")
        sample["uplink_last_error"] = uplink.get("last_error")
        self.samples.append(sample)
        return sample
