"""The serial link end to end: the real firmware loop on a pseudo-terminal, a real BoardSession on
pyserial, events into a sink."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time

import pytest
from linkkit import SlowSink, session_for, setup_doc, wait_for

from agent.boards.session import BoardError
from agent.events import ALARM, END, READING, START
from firmware.streetfw import wire


@contextlib.asynccontextmanager
async def running(session):
    task = asyncio.create_task(session.run())
    try:
        await asyncio.wait_for(session.connected.wait(), 20)
        yield session
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def readings(sink):
    return [e for e in sink.events if e.kind == READING]


def alarms(sink):
    return [e for e in sink.events if e.kind == ALARM]


async def test_handshake_readings_with_units_and_synced_time(make_board) -> None:
    board = make_board()
    sink = SlowSink()
    async with running(session_for(board, sink)) as session:
        await wait_for(lambda: len(readings(sink)) >= 5)
        assert session.info is not None and session.info.board_id == "pole-7-b1"
        assert session.info.firmware and "water" in session.info.sensors
        ev = readings(sink)[-1]
        assert ev.board == "pole-7-b1" and ev.sensor == "water"
        assert ev.values == {"level": 1.0, "check": 2.0} and ev.units == {"level": "cm", "check": "cm"}
        assert board.board is not None and board.board.synced_epoch is not None, "TIME set the board's clock"
        assert abs(ev.captured_ms - time.time() * 1000) < 5000
        assert board.hal.intr[0] == -1, "Ctrl-C is disabled while the board speaks the protocol"


async def test_an_alarm_opens_once_and_closes_with_a_reference_to_its_start(make_board, dials) -> None:
    board = make_board()
    sink = SlowSink()
    async with running(session_for(board, sink)):
        await wait_for(lambda: "water" in dials.made)
        dials.made["water"].value = 35.0
        await wait_for(lambda: len(alarms(sink)) == 1)
        await asyncio.sleep(0.5)  # stays above: no second start
        dials.made["water"].value = 19.5  # within the 5 % hysteresis: still open
        await asyncio.sleep(0.5)
        assert len(alarms(sink)) == 1
        dials.made["water"].value = 3.0
        await wait_for(lambda: len(alarms(sink)) == 2)
        await wait_for(lambda: not board.board.pending)  # the board forgot both once acknowledged
    start, end = alarms(sink)
    assert (start.phase, start.label, start.severity, start.sensor) == (
        START,
        "level_high",
        "critical",
        "water",
    )
    assert start.values == {"level": 35.0, "level_threshold": 20.0}
    assert end.phase == END and end.ref == start.event_id


async def test_an_alarm_is_acknowledged_only_after_the_sink_made_it_durable(make_board, dials) -> None:
    board = make_board()
    sink = SlowSink()
    async with running(session_for(board, sink)):
        await wait_for(lambda: "water" in dials.made)
        sink.open.clear()  # the outbox is stuck (disk busy)
        dials.made["water"].value = 50.0
        await wait_for(lambda: board.board.retransmits >= 2, timeout=30)
        assert board.board.pending, "unacknowledged: the board still holds it"
        sink.open.set()
        await wait_for(lambda: not board.board.pending, timeout=30)
        assert len(alarms(sink)) == 1, "retransmissions are not new alarms"


async def test_a_threshold_set_by_command_takes_effect_at_once(make_board, dials) -> None:
    board = make_board()
    sink = SlowSink()
    async with running(session_for(board, sink)) as session:
        result = await session.command("threshold", sensor="water", key="level", value=0.5)
        assert result["thresholds"] == {"level": 0.5}
        await wait_for(lambda: len(alarms(sink)) == 1)  # the dial reads 1.0, now above 0.5
    assert alarms(sink)[0].values == {"level": 1.0, "level_threshold": 0.5}


async def test_unknown_operations_and_bad_arguments_are_refused_with_the_reason(make_board) -> None:
    board = make_board()
    async with running(session_for(board, SlowSink())) as session:
        with pytest.raises(BoardError, match="unknown command 'explode'"):
            await session.command("explode")
        with pytest.raises(BoardError, match="no sensor named 'air'"):
            await session.command("interval", sensor="air", interval_s=5)
        with pytest.raises(BoardError, match="interval_s must be"):
            await session.command("interval", sensor="water", interval_s=-1)
        with pytest.raises(BoardError, match="no lamp"):
            await session.command("lamp", level=0.5)
        config = await session.command("read_config")
        assert config == setup_doc()
        assert (await session.command("status"))["fw"]


async def test_on_a_noisy_line_no_corrupted_reading_is_accepted_and_every_alarm_arrives(
    make_board, dials
) -> None:
    # Twice the bit-error rate the issue asks for (1e-4); readings at 20 Hz keep the line busy.
    board = make_board(ber=2e-4, drop=2e-5, seed=7)
    sink = SlowSink()
    rng = random.Random(3)
    async with running(session_for(board, sink)) as session:
        await wait_for(lambda: "water" in dials.made)
        dial = dials.made["water"]
        for _ in range(8):
            dial.value = 30 + rng.random() * 50  # above the threshold of 20
            await wait_for(
                lambda: (
                    sum(e.phase == START for e in alarms(sink)) > sum(e.phase == END for e in alarms(sink))
                )
            )
            for _ in range(5):
                dial.value = rng.random() * 10
                await asyncio.sleep(0.05)
            await wait_for(
                lambda: (
                    sum(e.phase == START for e in alarms(sink)) == sum(e.phase == END for e in alarms(sink))
                )
            )
        await wait_for(lambda: not board.board.pending)
        assert session.stats.frames_corrupt > 0, "the line really was noisy"
    assert board.link.tx_faults.flipped > 0
    for ev in readings(sink):
        assert ev.values["check"] == 2 * ev.values["level"], f"a corrupted reading was accepted: {ev.values}"
    starts = [e for e in alarms(sink) if e.phase == START]
    ends = [e for e in alarms(sink) if e.phase == END]
    assert len(starts) == len(ends) == 8, "every alarm arrived, once"
    assert [e.ref for e in ends] == [e.event_id for e in starts]


async def test_unplugged_and_replugged_the_link_comes_back_and_the_alarm_raised_meanwhile_arrives(
    make_board, dials
) -> None:
    board = make_board()
    sink = SlowSink()
    async with running(session_for(board, sink)) as session:
        await wait_for(lambda: "water" in dials.made)
        board.unplug()
        await wait_for(lambda: not session.connected.is_set())
        dials.made["water"].value = 42.0  # the cover is lifted while the cable is out
        await asyncio.sleep(1.5)
        assert not alarms(sink)
        board.plug()
        await wait_for(lambda: len(alarms(sink)) == 1, timeout=30)
        assert session.stats.connects == 2
        await asyncio.sleep(1.0)
    assert len(alarms(sink)) == 1 and alarms(sink)[0].values["level"] == 42.0


async def test_a_file_sent_in_chunks_lands_only_when_its_sha256_matches(make_board) -> None:
    board = make_board()
    data = bytes(range(256)) * 9  # several chunks
    async with running(session_for(board, SlowSink())) as session:
        await session.send_file("/fw/1.1.0/lib/app.mpy", data, chunk=300)
        assert (board.flash / "fw/1.1.0/lib/app.mpy").read_bytes() == data
        assert not (board.flash / "fw/1.1.0/lib/app.mpy.part").exists()
        # A transfer whose bytes do not add up to the announced hash is refused and not installed.
        bad = session.request
        await bad(wire.FILE_OPEN, {"p": "/fw/current", "n": 5, "h": hashlib.sha256(b"1.1.0").digest()})
        await bad(wire.FILE_DATA, {"o": 0, "d": b"9.9.9"})
        with pytest.raises(BoardError, match="does not match its size and sha256"):
            await bad(wire.FILE_CLOSE, {})
        assert not (board.flash / "fw/current").exists()
        with pytest.raises(BoardError, match="path must be absolute"):
            await bad(wire.FILE_OPEN, {"p": "../etc/passwd", "n": 1, "h": b"0" * 32})


async def test_at_a_bit_error_rate_of_1e3_the_board_connects_and_readings_flow(make_board) -> None:
    # Five sensors: a full HELLO would be ~400 bytes and almost never arrive whole at this rate; the
    # brief HELLO and per-sensor "describe" get through.
    setup = setup_doc()
    setup["sensors"] = [
        {"type": "dial", "id": f"water{k}", "interval_s": 0.05, "thresholds": {"level": 20.0}}
        for k in range(5)
    ]
    board = make_board(setup=setup, ber=1e-3, seed=5)
    sink = SlowSink()
    started = time.monotonic()
    async with running(session_for(board, sink)) as session:
        await wait_for(lambda: len(readings(sink)) >= 20, timeout=60)
        took = time.monotonic() - started
        assert session.stats.frames_corrupt > 0, "the line really was noisy"
        await wait_for(
            lambda: session.info is not None and all("u" in d for d in session.info.sensors.values()), 60
        )
    assert took < 30, f"20 readings took {took:.0f} s"
    for ev in readings(sink):
        assert ev.values["check"] == 2 * ev.values["level"], f"a corrupted reading was accepted: {ev.values}"


async def test_the_boards_warnings_reach_its_link_statistics(make_board, dials) -> None:
    """What the board logs (a sensor that stopped answering) is in its health figures, which
    `edgectl board monitor` shows: the technician sees why without reading the agent's log."""
    board = make_board()
    sink = SlowSink()
    async with running(session_for(board, sink)) as session:
        await wait_for(lambda: "water" in dials.made)
        assert session.stats.board_log == ""
        dials.made["water"].failing = True
        await wait_for(lambda: session.stats.board_log != "")
        assert session.stats.board_log == "warning: water: no answer on the bus"
        assert session.health()["board_log"] == session.stats.board_log
