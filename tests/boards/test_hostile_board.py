"""A board that misbehaves on a real pseudo-terminal: floods, CRC-valid nonsense, forged log lines.

The "board" here is the test itself writing frames into the master end of a pty; the agent's real
BoardSession reads the slave end through pyserial. Whatever the board sends, the session keeps
running, memory stays bounded, drops are counted, and an alarm still gets through at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import tty
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.boards import session as board_session
from agent.boards.session import BoardSession
from agent.config.board import BoardConfig
from agent.events import ALARM, READING, Event
from firmware.streetfw import wire

HELLO = {"id": "pole-9-b1", "fw": "1.4.0", "boot": 77, "proto": wire.PROTOCOL, "sensors": [{"n": "water"}]}


class Sink:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.events: list[Event] = []
        self.delay_s = delay_s

    async def submit(self, event: Event) -> Event:
        await asyncio.sleep(self.delay_s)  # a disk that commits about this fast
        event = event.stamped("gw", len(self.events) + 1)
        self.events.append(event)
        return event


class FakeBoard:
    """The master end of a pty: answers the agent's HELLO and TIME, and sends what a test says."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave  # kept open so the pty does not hang up between agent reconnects
        os.set_blocking(self.master, False)
        self.deframer = wire.Deframer()
        self.seq = 0
        self.hello: dict[str, Any] | Any = HELLO
        self._writing = asyncio.Lock()

    async def asend(self, ftype: int, body: Any) -> None:
        """Write a whole frame, waiting (without blocking the loop) while the pty is full; one
        frame at a time, as a board's UART sends them."""
        async with self._writing:
            self.seq = (self.seq + 1) & 0xFFFF
            data = wire.encode_frame(ftype, self.seq, body)
            while data:
                try:
                    data = data[os.write(self.master, data) :]
                except BlockingIOError:
                    await asyncio.sleep(0.002)

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        loop.add_reader(self.master, ready.set)
        try:
            while True:
                await ready.wait()
                ready.clear()
                try:
                    frames = self.deframer.feed(os.read(self.master, 4096))
                except (BlockingIOError, OSError):
                    continue
                for ftype, seq, _body in frames:
                    if ftype == wire.HELLO:
                        await self.asend(wire.HELLO, self.hello)
                    elif ftype == wire.TIME:
                        await self.asend(wire.ACK, seq)
        finally:
            loop.remove_reader(self.master)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@contextlib.asynccontextmanager
async def connected(
    sink: Sink, board: FakeBoard | None = None
) -> AsyncIterator[tuple[FakeBoard, BoardSession]]:
    board = board or FakeBoard()
    session = BoardSession(BoardConfig(id="pole-9-b1", port=board.port, time_sync_interval_s=600), sink)
    tasks = [asyncio.create_task(board.serve()), asyncio.create_task(session.run())]
    try:
        await asyncio.wait_for(session.connected.wait(), 15)
        yield board, session
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        board.close()


def _reading(i: int) -> dict[str, Any]:
    return {"s": "water", "v": {"level_cm": float(i)}, "age": 0}


async def test_a_flood_of_readings_is_bounded_counted_and_an_alarm_overtakes_it() -> None:
    sink = Sink(delay_s=0.005)  # 200 commits a second
    async with connected(sink) as (board, session):
        sent = 0
        started = time.monotonic()
        while time.monotonic() - started < 3.0:  # as fast as the pty takes them
            await board.asend(wire.READING, _reading(sent))
            sent += 1
            assert session.backlog() <= board_session.READING_BACKLOG + board_session.URGENT_BACKLOG
        await board.asend(
            wire.ALARM, {"a": 1, "ph": "start", "s": "water", "k": "level_cm", "v": 90.0, "sev": "critical"}
        )
        alarm_sent = time.monotonic()
        while not any(e.kind == ALARM for e in sink.events):
            assert time.monotonic() - alarm_sent < 3.0, (
                f"the alarm waited behind the readings: {session.health()}"
            )
            await asyncio.sleep(0.01)
        stats = session.health()
    readings = sum(e.kind == READING for e in sink.events)
    assert sent > 5 * readings, "the flood was not faster than the sink; the test proves nothing"
    assert stats["readings_dropped"] > 0
    # every reading is accounted for: taken, dropped, still waiting or still in the pty
    assert readings + stats["readings_dropped"] <= sent


@pytest.mark.parametrize(
    "body",
    [
        ["not", "a", "map"],
        {**HELLO, "proto": float("inf")},
        {**HELLO, "boot": float("inf")},
        {**HELLO, "sensors": "water"},
    ],
    ids=["list", "proto-inf", "boot-inf", "sensors-str"],
)
async def test_a_crc_valid_nonsense_hello_is_refused_and_the_session_goes_on(body) -> None:
    sink = Sink()
    async with connected(sink) as (board, session):
        await board.asend(wire.HELLO, body)
        await board.asend(wire.LOG, ["a", "list"])
        for i in range(20):
            await board.asend(wire.READING, _reading(i))
        deadline = time.monotonic() + 10
        while sum(e.kind == READING for e in sink.events) < 20:
            assert time.monotonic() < deadline, f"readings lost after a bad frame: {session.health()}"
            await asyncio.sleep(0.02)
        assert session.stats.frames_rejected >= 2
        assert session.stats.connects == 1, "the bad frames ended the session"


async def test_a_newline_in_a_board_log_cannot_forge_a_log_line(caplog) -> None:
    sink = Sink()
    async with connected(sink) as (board, _session):
        with caplog.at_level(logging.INFO, logger="agent.boards.session"):
            await board.asend(
                wire.LOG, {"l": "info", "m": "ok\n2026-12-01 ERROR agent: admin password reset\x1b[2J"}
            )
            deadline = time.monotonic() + 5
            while not any("says" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
    (line,) = [r.getMessage() for r in caplog.records if "says" in r.getMessage()]
    assert "\n" not in line and "\x1b" not in line
    assert "ok\\n2026-12-01 ERROR" in line


@pytest.mark.parametrize(
    ("ftype", "body"),
    [
        (wire.READING, {"s": "water", "v": {"level_cm": float("nan")}, "age": 0}),
        (wire.READING, {"s": "", "v": {"level_cm": 1.0}, "age": 0}),
        (wire.READING, {"s": "water", "v": {"level_cm": 1.0}, "t": -1000}),
        (wire.ALARM, {"a": 5, "ph": "start", "s": "water", "k": 7, "v": 1.0}),
    ],
    ids=["nan", "empty-sensor", "negative-time", "int-key-alarm"],
)
async def test_a_frame_that_would_make_an_undecodable_event_is_refused(ftype, body) -> None:
    sink = Sink()
    async with connected(sink) as (board, session):
        await board.asend(ftype, body)
        await board.asend(wire.READING, _reading(1))
        deadline = time.monotonic() + 10
        while not sink.events:
            assert time.monotonic() < deadline, session.health()
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert session.stats.frames_rejected == 1
    (event,) = sink.events
    assert event.values == {"level_cm": 1.0}
