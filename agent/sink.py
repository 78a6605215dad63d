"""Where producers hand their events: the outbox, or a printer when trying a model."""

from __future__ import annotations

import json
import sys
from typing import Protocol, TextIO

from .events import Event, to_json


class EventSink(Protocol):
    async def submit(self, event: Event) -> Event:
        """Accept an event; on return it is durable, stamped with the device id and sequence."""
        ...


class PrintSink:
    """Prints events as JSON lines; stamps device and sequence like the outbox (not durable)."""

    def __init__(self, device: str, out: TextIO | None = None) -> None:
        self.device = device
        self.out = out if out is not None else sys.stdout
        self.seq = 0

    async def submit(self, event: Event) -> Event:
        self.seq += 1
        event = event.stamped(self.device, self.seq)
        self.out.write(json.dumps(to_json(event), separators=(",", ":")) + "\n")
        self.out.flush()
        return event


class MemorySink:
    """Keeps events in a list; for tools and tests that look at what a producer made."""

    def __init__(self, device: str = "test-device") -> None:
        self.device = device
        self.events: list[Event] = []

    async def submit(self, event: Event) -> Event:
        event = event.stamped(self.device, len(self.events) + 1)
        self.events.append(event)
        return event
