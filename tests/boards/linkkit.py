"""Helpers for the serial link tests: the real firmware loop on a pseudo-terminal, driven by dial sensors a
test turns, and a real BoardSession reading it through pyserial."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agent.boards.session import BoardSession
from agent.config.board import BoardConfig
from agent.events import Event
from firmware.sim.board import SimulatedBoard
from firmware.sim.dials import ClockHAL, Dial, Dials  # noqa: F401  (re-exported for the tests)


def setup_doc(interval_s: float = 0.05, report_s: float = 0.05, threshold: float = 20.0) -> dict[str, Any]:
    return {
        "board_id": "pole-7-b1",
        "report_interval_s": report_s,
        "sensors": [
            {"type": "dial", "id": "water", "interval_s": interval_s, "thresholds": {"level": threshold}}
        ],
    }


class SlowSink:
    """An outbox stand-in that can be held: submissions wait until released (a slow disk)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.open = asyncio.Event()
        self.open.set()

    async def submit(self, event: Event) -> Event:
        await self.open.wait()
        event = event.stamped("gw", len(self.events) + 1)
        self.events.append(event)
        return event


def session_for(board: SimulatedBoard, sink: Any) -> BoardSession:
    return BoardSession(BoardConfig(id="pole-7-b1", port=board.port, time_sync_interval_s=600), sink)


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
