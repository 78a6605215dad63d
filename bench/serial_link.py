"""Serial link benchmark: bytes per message, line utilisation, gateway CPU per frame, alarm latency.

    python bench/serial_link.py [--quick]

The simulated board paces its bytes at the configured baud rate (10 bits per byte: start, 8 data,
stop), because a pseudo-terminal has none. Everything is measured in this one run on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgpack

from agent.boards.session import BoardSession
from agent.config.board import BoardConfig
from agent.events import ALARM, READING, Event
from firmware.sim.board import SimulatedBoard
from firmware.sim.dials import ClockHAL, Dials
from firmware.streetfw import wire

READING_BODY = {
    "s": "pms5003",
    "v": {"pm1_0": 8.0, "pm2_5": 12.0, "pm10": 19.0},
    "age": 12,
    "t": 1_795_000_000_123,
}
ALARM_BODY = {
    "a": 17,
    "s": "cover",
    "k": "tilt_deg",
    "ph": "start",
    "sev": "critical",
    "v": 34.6,
    "th": 15.0,
    "age": 3,
    "t": 1_795_000_000_456,
}


class CountingSink:
    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []

    async def submit(self, event: Event) -> Event:
        event = event.stamped("bench", len(self.events) + 1)
        self.events.append((time.monotonic(), event))
        return event


def sizes() -> None:
    print("== bytes on the wire")
    for name, ftype, body in (
        ("reading (PMS5003)", wire.READING, READING_BODY),
        ("alarm", wire.ALARM, ALARM_BODY),
    ):
        frame = wire.encode_frame(ftype, 1000, body)
        payload = len(wire.packb(body))
        print(
            f"{name:<18} {len(frame):4d} B on the wire, {payload} B msgpack body, framing {len(frame) - payload} B "
            f"(goal <= 12), payload share {payload / len(frame):.0%}"
        )


def setup_doc(interval_s: float, report_s: float) -> dict[str, Any]:
    return {
        "board_id": "bench",
        "report_interval_s": report_s,
        "sensors": [{"type": "dial", "id": "water", "interval_s": interval_s, "thresholds": {"level": 20.0}}],
    }


async def _connected(board: SimulatedBoard, sink: CountingSink) -> tuple[BoardSession, asyncio.Task[None]]:
    session = BoardSession(BoardConfig(id="bench", port=board.port, baud=board.link.baud), sink)
    task = asyncio.create_task(session.run())
    await asyncio.wait_for(session.connected.wait(), 20)
    return session, task


async def throughput(baud: int, seconds: float) -> None:
    print(f"== line utilisation at {baud} baud (readings sent back to back for {seconds:.0f} s)")
    board = SimulatedBoard(setup_doc(0.0, 0.0), hal=ClockHAL(), make_sensor=Dials(), baud=baud).start()
    sink = CountingSink()
    try:
        session, task = await _connected(board, sink)
        await asyncio.sleep(1.0)
        n0, b0, t0 = len(sink.events), session.health()["bytes_in"], time.monotonic()
        await asyncio.sleep(seconds)
        n1, b1, t1 = len(sink.events), session.health()["bytes_in"], time.monotonic()
        task.cancel()
    finally:
        board.close()
    line = baud / 10
    rate = (b1 - b0) / (t1 - t0)
    per = (b1 - b0) / max(1, n1 - n0)
    print(
        f"readings/s {(n1 - n0) / (t1 - t0):7.1f}  ({per:.0f} B each); bytes/s {rate:8.0f} of the line's {line:.0f} "
        f"= {rate / line:.1%} (goal >= 90 %); the most the line allows at that size: {line / per:.1f} readings/s"
    )


def cpu_per_frame(n: int) -> None:
    print(f"== gateway CPU per frame ({n} reading frames: deframe, CRC, decode, build the event)")
    frames = b"".join(
        wire.encode_frame(wire.READING, i & 0xFFFF, {**READING_BODY, "age": i % 100}) for i in range(n)
    )
    chunks = [frames[i : i + 256] for i in range(0, len(frames), 256)]  # as the serial port hands them over

    def ours() -> int:
        deframer = wire.Deframer()
        count = 0
        for chunk in chunks:
            for _t, _s, body in deframer.feed(chunk):
                Event(
                    kind=READING,
                    captured_ms=body["t"],
                    clock_synced=True,
                    board="b",
                    sensor=body["s"],
                    values={k: float(v) for k, v in body["v"].items()},
                )
                count += 1
        return count

    bodies = [wire.packb({**READING_BODY, "age": i % 100}) for i in range(n)]
    rounds: dict[str, list[float]] = {
        "wire (pure Python, shared with the board)": [],
        "msgpack-python body decode only": [],
    }
    for _ in range(3):
        t = time.process_time()
        assert ours() == n
        rounds["wire (pure Python, shared with the board)"].append(time.process_time() - t)
        t = time.process_time()
        for b in bodies:
            msgpack.unpackb(b)
        rounds["msgpack-python body decode only"].append(time.process_time() - t)
    for name, times in rounds.items():
        print(f"{name:<44} {min(times) / n * 1e6:7.1f} µs/frame")
    at_line = 11520 / 60  # readings/s a 115200 baud line carries at ~60 B each
    cost = min(rounds["wire (pure Python, shared with the board)"]) / n
    print(f"a saturated 115200-baud link costs the gateway {at_line * cost:.2%} of one core")


async def alarm_latency(ber: float, count: int) -> list[float]:
    dials = Dials()
    # readings every 50 ms keep the line busy, so bit errors hit frames at the rate under test
    board = SimulatedBoard(setup_doc(0.01, 0.05), hal=ClockHAL(), make_sensor=dials, ber=ber, seed=11).start()
    sink = CountingSink()
    latencies = []
    try:
        session, task = await _connected(board, sink)
        while "water" not in dials.made:
            await asyncio.sleep(0.01)
        dial = dials.made["water"]
        for i in range(count):
            seen = sum(1 for _, e in sink.events if e.kind == ALARM)
            dial.value = 50.0 if i % 2 == 0 else 1.0
            t0 = time.monotonic()
            while sum(1 for _, e in sink.events if e.kind == ALARM) == seen:
                await asyncio.sleep(0.001)
            latencies.append((time.monotonic() - t0) * 1000)
        task.cancel()
        corrupt = session.stats.frames_corrupt
    finally:
        board.close()
    q = statistics.quantiles(latencies, n=20)
    print(
        f"BER {ber:<7g} {count} alarms: median {statistics.median(latencies):6.1f} ms, p95 {q[18]:6.1f} ms, "
        f"max {max(latencies):7.1f} ms; corrupt frames {corrupt}, all {count} delivered"
    )
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes()
    await throughput(115200, 4 if args.quick else 10)
    cpu_per_frame(2000 if args.quick else 20000)
    print(
        "== alarm delivery latency (value crosses the threshold -> event in the outbox; sampling every 10 ms)"
    )
    for ber in (0.0, 1e-5, 1e-4):
        await alarm_latency(ber, 20 if args.quick else 60)


if __name__ == "__main__":
    asyncio.run(main())
