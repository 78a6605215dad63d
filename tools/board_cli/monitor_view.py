"""What `edgectl board monitor` shows: the latest reading of each sensor, open alarms, link statistics.

``BoardView`` is an event sink: the board session hands it the very ``Event``s it would hand the
outbox, so the technician sees exactly what the gateway would publish. It renders as a table that
``rich.live`` redraws in place, or as JSON lines for machines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from agent.events import ALARM, READING, Event, to_json


@dataclass
class SensorLine:
    board: str
    sensor: str
    values: dict[str, Any]
    units: dict[str, str]
    captured_ms: int
    readings: int = 0


@dataclass
class AlarmLine:
    board: str
    sensor: str
    code: str
    severity: str
    values: dict[str, Any]
    since_ms: int
    open: bool = True


@dataclass
class BoardView:
    """Accumulates a board's events for display; implements the ``EventSink`` protocol."""

    device: str = "edgectl-monitor"
    sensors: dict[tuple[str, str], SensorLine] = field(default_factory=dict)
    alarms: dict[tuple[str, str, str], AlarmLine] = field(default_factory=dict)
    events: int = 0
    started: float = field(default_factory=time.monotonic)

    async def submit(self, event: Event) -> Event:
        self.events += 1
        event = event.stamped(self.device, self.events)
        self.add(event)
        return event

    def add(self, event: Event) -> None:
        board, sensor = event.board or "?", event.sensor or "?"
        if event.kind == READING:
            line = self.sensors.get((board, sensor))
            count = line.readings if line else 0
            self.sensors[(board, sensor)] = SensorLine(
                board, sensor, dict(event.values or {}), dict(event.units or {}), event.captured_ms, count + 1
            )
        elif event.kind == ALARM:
            key = (board, sensor, event.label or "?")
            if event.phase == "end":
                if key in self.alarms:
                    self.alarms[key].open = False
                    self.alarms[key].values = dict(event.values or {})
                return
            current = self.alarms.get(key)
            since = current.since_ms if current and current.open else event.captured_ms
            self.alarms[key] = AlarmLine(
                board, sensor, event.label or "?", event.severity or "", dict(event.values or {}), since
            )

    def render(self, link: Mapping[str, Any] | None = None) -> Group:
        readings = Table(title="readings", expand=False, title_justify="left")
        for column in ("board", "sensor", "values", "age", "n"):
            readings.add_column(column, justify="right" if column in ("age", "n") else "left")
        now_ms = time.time() * 1000
        for line in sorted(self.sensors.values(), key=lambda s: (s.board, s.sensor)):
            readings.add_row(
                line.board,
                line.sensor,
                _values(line.values, line.units),
                _age(now_ms - line.captured_ms),
                str(line.readings),
            )
        alarms = Table(title="alarms", expand=False, title_justify="left")
        for column in ("board", "sensor", "alarm", "severity", "values", "state"):
            alarms.add_column(column)
        for a in sorted(self.alarms.values(), key=lambda a: (not a.open, -a.since_ms)):
            state = (
                Text(f"OPEN {_age(now_ms - a.since_ms)}", style="bold red")
                if a.open
                else Text("cleared", style="green")
            )
            alarms.add_row(a.board, a.sensor, a.code, a.severity, _values(a.values, {}), state)
        parts: list[Any] = [readings, alarms]
        if link:
            parts.append(link_table(link))
        return Group(*parts)

    def snapshot(self) -> dict[str, Any]:
        """The current state as plain data (what --json prints periodically)."""
        return {
            "sensors": [vars(s) for s in self.sensors.values()],
            "alarms": [vars(a) for a in self.alarms.values()],
            "events": self.events,
        }


# The link figures a technician reads first (agent/boards/session.py LinkStats); --json has them all.
LINK_COLUMNS = (
    ("connected", "up"),
    ("frames_good", "frames ok"),
    ("frames_corrupt", "corrupt"),
    ("rtt_ms", "rtt ms"),
    ("rtt_max_ms", "rtt max"),
    ("readings", "readings"),
    ("alarms", "alarms"),
    ("command_retries", "retries"),
    ("connects", "connects"),
    ("last_error", "last error"),
    ("board_log", "board says"),
)


def link_table(link: Mapping[str, Mapping[str, Any]]) -> Table:
    """One row per board: its serial link's statistics from the agent's health telemetry."""
    table = Table(title="link", expand=False, title_justify="left")
    table.add_column("board")
    for _, header in LINK_COLUMNS:
        table.add_column(header, justify="left" if header in ("up", "last error", "board says") else "right")
    for board in sorted(link):
        stats = link[board]
        cells = []
        for key, _ in LINK_COLUMNS:
            value = stats.get(key)
            if key == "connected" and isinstance(value, bool):
                cells.append(Text("yes", style="green") if value else Text("NO", style="bold red"))
            else:
                cells.append(Text("-" if value is None or value == "" else _fmt(value)))
        table.add_row(board, *cells)
    return table


def event_line(event: Event) -> str:
    return json.dumps({"event": to_json(event)}, separators=(",", ":"))


def link_line(link: Mapping[str, Mapping[str, Any]]) -> str:
    return json.dumps({"link": dict(link)}, separators=(",", ":"), default=str)


def _values(values: Mapping[str, Any], units: Mapping[str, str]) -> str:
    return "  ".join(f"{k} {_fmt(v)}{(' ' + units[k]) if k in units else ''}" for k, v in values.items())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _age(ms: float) -> str:
    s = max(ms, 0) / 1000
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"
