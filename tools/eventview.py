"""Events as one line of text for people (the demo, ``events tail``), and a running summary."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.events import ALARM, BOX_SCALE, CONF_SCALE, CROWD, HEALTH, ISSUE, READING, Event


def _clock(ms: int, utc: bool = False) -> str:
    if utc:  # a fleet's events, as a platform logs them: full UTC date and time
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000)) + f".{ms % 1000:03d}"


def _values(event: Event) -> str:
    units = event.units or {}
    parts = []
    for name, value in (event.values or {}).items():
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        parts.append(f"{name}={shown}{units.get(name, '')}")
    return " ".join(parts)


def _issue(event: Event) -> str:
    text = f"{event.phase or '':<6} {event.label or '?'}"
    if event.camera:
        text += f" on {event.camera}"
    if event.zone:
        text += f" in {event.zone}"
    if event.track is not None:
        text += f" track {event.track}"
    if event.confidence is not None:
        text += f" conf {event.confidence / CONF_SCALE:.2f}"
    if event.count is not None:
        text += f" count {event.count:g}"
    if event.box is not None:
        x1, y1, x2, y2 = (v / BOX_SCALE for v in event.box)
        text += f" box [{x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f}]"
    return text


def _crowd(event: Event) -> str:
    text = f"{event.count:g} people" if event.count is not None else "count ?"
    if event.density is not None:
        text += f", {event.density:.2f}/m²"
    where = " ".join(x for x in (event.camera, event.zone and f"zone {event.zone}") if x)
    return f"{text} {where}".rstrip()


def _reading(event: Event) -> str:
    return f"{event.board or '?'}/{event.sensor or '?'} {_values(event)}"


def _alarm(event: Event) -> str:
    if event.board:
        source = f"{event.board}/{event.sensor}"
    elif event.camera:
        source = event.camera + (f" zone {event.zone}" if event.zone else "")
    else:
        source = event.sensor or "device"
    values = _values(event)
    why = event.extra.get("why")
    return (
        f"{event.phase or '':<6} {(event.severity or '').upper()} {event.label or '?'}"
        f" from {source}" + (f" {values}" if values else "") + (f" ({why})" if why else "")
    )


def _health(event: Event) -> str:
    h = event.health or {}
    keys = ("uptime_s", "cpu_pct", "mem_pct", "disk_pct")
    shown = " ".join(f"{k}={h[k]}" for k in keys if h.get(k) is not None)
    outbox, uplink = h.get("outbox") or {}, h.get("uplink") or {}
    if isinstance(outbox, dict) and "depth" in outbox:
        shown += f" outbox={outbox['depth']}"
    if isinstance(uplink, dict) and "reconnects" in uplink:
        shown += f" reconnects={uplink['reconnects']}"
    return shown.strip() or f"{len(h)} figures"


# What follows the time, sequence and kind, by kind.
_BODIES: dict[str, Callable[[Event], str]] = {
    ISSUE: _issue,
    CROWD: _crowd,
    READING: _reading,
    ALARM: _alarm,
    HEALTH: _health,
}


def describe(event: Event, utc: bool = False) -> str:
    """``12:00:03.120 #17 issue start garbage cam-1 zone pavement conf 0.81 box ...``."""
    head = f"{_clock(event.captured_ms, utc)} #{event.seq:<5} {event.kind:<7}"
    if not event.clock_synced:
        head += " (clock unsynced)"
    body = _BODIES.get(event.kind)
    return f"{head} {body(event) if body else '(kind unknown to this version)'}"


@dataclass
class Summary:
    """What arrived: counts by kind and label, redeliveries, and gaps in each device's sequence.

    Live events may overtake a backlog being replayed, so order is not assumed: a gap is a sequence
    number between a device's lowest and highest seen that never arrived.
    """

    kinds: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    seen: dict[str, set[int]] = field(default_factory=dict)
    duplicates: int = 0

    def add(self, event: Event) -> bool:
        """Count the event; False when it is a redelivery of one already seen (QoS 1 may repeat)."""
        seen = self.seen.setdefault(event.device, set())
        if event.seq in seen:
            self.duplicates += 1
            return False
        seen.add(event.seq)
        self.kinds[event.kind] += 1
        if event.kind in (ISSUE, ALARM) and event.phase:
            self.labels[f"{event.kind} {event.label} {event.phase}"] += 1
        return True

    @property
    def gaps(self) -> int:
        return sum(max(s) - min(s) + 1 - len(s) for s in self.seen.values() if s)

    def lines(self) -> list[str]:
        out = [", ".join(f"{n} {kind}" for kind, n in sorted(self.kinds.items())) or "no events"]
        out += [f"  {name}: {n}" for name, n in sorted(self.labels.items())]
        out.append(f"  sequence gaps: {self.gaps}, redeliveries ignored: {self.duplicates}")
        return out
