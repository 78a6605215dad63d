"""A fault run against the real parts: what is sent, lost, duplicated and which numbers repeat.

    python bench/fault_run.py [--kills 10] [--restarts 4]

- SIGKILL: a producer process submitting to the outbox is killed at random moments; every event it
  was told was durable must be in the file, and no sequence number may be handed out twice.
- Outbox damage while stopped: emptied to 0 bytes, deleted, replaced by an older copy, -wal
  deleted after a SIGKILL; after each, the next events must take numbers never used before.
- Broker restarts: the uplink publishes a steady stream while Mosquitto is killed (-9) and started
  again; a subscriber on a persistent session counts what arrives.
- Disk full (as root): the outbox on a 6 MiB tmpfs fed ~12 MB of telemetry and then alarms.
- Serial flood: a "board" on a pseudo-terminal sends valid readings as fast as the pty takes them
  for 5 s, then an alarm; the session's backlog stays bounded and the alarm's delay is measured.

Prints one table; docs/reliability.md has the latest figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiomqtt  # noqa: E402

from agent.config import parse_config  # noqa: E402
from agent.events import ALARM, HEALTH, READING, START, Event, decode, now_ms  # noqa: E402
from agent.runtime import AgentContext  # noqa: E402
from agent.uplink import part  # noqa: E402
from agent.uplink.outbox import Outbox, OutboxError  # noqa: E402
from tools.broker import Broker  # noqa: E402

WRITER = """
import asyncio, sys
from agent.events import READING, Event, now_ms
from agent.uplink.outbox import Outbox

async def main(path):
    outbox = await Outbox.open(path, "pole-fault", 10**9)
    i = 0
    async def one(k):
        e = await outbox.submit(Event(kind=READING, captured_ms=now_ms(), clock_synced=True, board="b",
                                      sensor="s", values={"i": float(k)}))
        print(e.seq, flush=True)
    while True:
        await asyncio.gather(*(one(i + k) for k in range(16)))
        i += 16

asyncio.run(main(sys.argv[1]))
"""


def _reading(i: int, kind: str = READING) -> Event:
    if kind == HEALTH:
        return Event(kind=HEALTH, captured_ms=now_ms(), clock_synced=True, health={"i": i, "pad": "x" * 2000})
    if kind == ALARM:
        return Event(
            kind=ALARM, captured_ms=now_ms(), clock_synced=True, phase=START, label="level_cm_high",
            severity="critical", board="b", sensor="water", values={"level_cm": float(i)},
        )  # fmt: skip
    return Event(
        kind=READING, captured_ms=now_ms(), clock_synced=True, board="b", sensor="s", values={"i": float(i)}
    )


def _stored(path: Path) -> dict[int, Event]:
    db = sqlite3.connect(path)
    try:
        return {seq: decode(p) for seq, p in db.execute("SELECT seq, payload FROM events")}
    finally:
        db.close()


def _run_writer(path: Path, seconds: float) -> list[int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env)
    acked: list[int] = []
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    deadline = time.monotonic() + 30
    buf = b""
    started = None
    while time.monotonic() < deadline:
        chunk = proc.stdout.read() or b""
        buf += chunk
        *lines, buf = buf.split(b"\n")
        acked += [int(x) for x in lines if x]
        if acked and started is None:
            started = time.monotonic()
        if started is not None and time.monotonic() - started > seconds:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    rest = proc.stdout.read() or b""
    acked += [int(x) for x in (buf + rest).split(b"\n")[:-1] if x]  # a cut last line was not acked
    return acked


def sigkills(n: int) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outbox.sqlite"
        rng = random.Random(3)
        runs = [_run_writer(path, rng.uniform(0.1, 0.8)) for _ in range(n)]
        stored = _stored(path)
    acked = [s for run in runs for s in run]
    return {
        "acknowledged": len(acked),
        "lost": sum(1 for s in acked if s not in stored),
        "numbers handed out twice": len(acked) - len(set(acked)),
    }


async def _fill(path: Path, n: int) -> int:
    outbox = await Outbox.open(path, "pole-fault", 10**9)
    last = (await outbox.submit_many(_reading(i) for i in range(n)))[-1].seq
    await outbox.close()
    return last


async def _next(path: Path) -> tuple[int, str | None]:
    outbox = await Outbox.open(path, "pole-fault", 10**9)
    seq = (await outbox.submit(_reading(0))).seq
    reason = outbox.reset_reason
    await outbox.close()
    return seq, reason


def damage_cases() -> list[tuple[str, int, int, bool]]:
    """(case, highest number used before, next number after, alarm raised)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in ("emptied to 0 bytes", "deleted", "older copy put back", "-wal deleted after SIGKILL"):
            d = Path(tmp) / case.replace(" ", "_")
            d.mkdir()
            path = d / "outbox.sqlite"
            if case == "-wal deleted after SIGKILL":
                acked = _run_writer(path, 2.0)
                used = max(acked)
                Path(f"{path}-wal").unlink(missing_ok=True)
                Path(f"{path}-shm").unlink(missing_ok=True)
            else:
                used = asyncio.run(_fill(path, 300))
                if case == "older copy put back":
                    shutil.copy(path, d / "old")
                    used = asyncio.run(_fill(path, 300))
                    shutil.copy(d / "old", path)
                elif case == "deleted":
                    path.unlink()
                else:
                    path.write_bytes(b"")
            seq, reason = asyncio.run(_next(path))
            out.append((case, used, seq, reason is not None))
    return out


async def broker_restarts(n: int) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "broker", persistent=True)
        broker.start()
        cfg = parse_config(
            {
                "device": {"id": "pole-fault"},
                "uplink": {"url": broker.url, "reconnect_max_s": 1, "telemetry_interval_s": 3600},
                "outbox": {"path": str(Path(tmp) / "outbox.sqlite")},
            }
        )
        ctx = AgentContext(config=cfg)
        await part.setup(ctx)
        runner = asyncio.create_task(part.run(ctx))
        got: list[int] = []

        async def listen() -> None:
            while True:
                with contextlib.suppress(aiomqtt.MqttError):
                    async with aiomqtt.Client(
                        broker.host, broker.port, identifier="fault-listener", clean_session=False
                    ) as client:
                        await client.subscribe("city/pole-fault/evt/#", qos=1)
                        async for message in client.messages:
                            got.append(decode(message.payload).seq)  # type: ignore[arg-type]
                await asyncio.sleep(0.2)

        listener = asyncio.create_task(listen())
        await asyncio.sleep(1.0)
        sent = 0

        async def produce(seconds: float) -> None:
            nonlocal sent
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await ctx.uplink.outbox.submit(_reading(sent))
                sent += 1
                await asyncio.sleep(0.005)

        for _ in range(n):
            await produce(2.0)
            assert broker._proc is not None
            broker._proc.kill()  # -9: no clean shutdown; persistence keeps the listener's queue
            broker._proc.wait()
            await produce(1.0)
            broker.start()
        await produce(2.0)
        deadline = time.monotonic() + 30
        while len(set(got)) < sent and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        listener.cancel()
        runner.cancel()
        for t in (listener, runner):
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await part.close(ctx)
        broker.stop()
    return {
        "sent": sent,
        "received": len(set(got)),
        "lost": sent - len(set(got)),
        "duplicates": len(got) - len(set(got)),
    }


def disk_full() -> dict[str, int] | None:
    if os.geteuid() != 0:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        mount = Path(tmp) / "disk"
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], check=True)
        try:

            async def main() -> dict[str, int]:
                outbox = await Outbox.open(mount / "outbox.sqlite", "pole-fault", 10**9)
                refused = 0
                for i in range(6000):
                    try:
                        await outbox.submit(_reading(i, HEALTH))
                    except OutboxError:
                        refused += 1
                alarms = [(await outbox.submit(_reading(i, ALARM))).seq for i in range(50)]
                await outbox.close()
                stored = _stored(mount / "outbox.sqlite")
                return {
                    "telemetry submitted": 6000,
                    "telemetry dropped (counted)": outbox.stats.dropped.get(HEALTH, 0),
                    "refused": refused,
                    "alarms accepted": len(alarms),
                    "alarms lost": sum(1 for s in alarms if s not in stored),
                    "uncounted gaps": max(stored) - len(stored) - sum(outbox.stats.dropped.values()),
                }

            return asyncio.run(main())
        finally:
            subprocess.run(["umount", "-l", str(mount)], check=False)


class _SlowSink:
    """The agent's outbox as a disk committing about 200 times a second."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def submit(self, event: Event) -> Event:
        await asyncio.sleep(0.005)
        event = event.stamped("gw", len(self.events) + 1)
        self.events.append(event)
        return event


class _PtyBoard:
    """The board's end of a pseudo-terminal: says HELLO, acks TIME, answers every CMD."""

    def __init__(self) -> None:
        import tty

        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.seq = 0
        self.lock = asyncio.Lock()

    async def send(self, ftype: int, body: object) -> None:
        from firmware.streetfw import wire

        async with self.lock:
            self.seq = (self.seq + 1) & 0xFFFF
            data = wire.encode_frame(ftype, self.seq, body)
            while data:
                try:
                    data = data[os.write(self.master, data) :]
                except BlockingIOError:
                    await asyncio.sleep(0.002)

    async def answer(self) -> None:
        from firmware.streetfw import wire

        deframer = wire.Deframer()
        ready = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.master, ready.set)
        hello = {"id": "b1", "fw": "1", "boot": 1, "proto": wire.PROTOCOL, "sensors": [{"n": "water"}]}
        while True:
            await ready.wait()
            ready.clear()
            with contextlib.suppress(BlockingIOError, OSError):
                for ftype, s, body in deframer.feed(os.read(self.master, 4096)):
                    if ftype == wire.HELLO:
                        await self.send(wire.HELLO, hello)
                    elif ftype == wire.TIME:
                        await self.send(wire.ACK, s)
                    elif ftype == wire.CMD:
                        result = {"n": "water", "u": {"level_cm": "cm"}}
                        await self.send(wire.RESULT, {"id": body["id"], "ok": True, "r": result})

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


async def serial_flood(seconds: float = 5.0) -> dict[str, float]:
    import psutil

    from agent.boards.session import BoardSession
    from agent.config.board import BoardConfig
    from firmware.streetfw import wire

    board = _PtyBoard()
    send = board.send
    sink = _SlowSink()
    session = BoardSession(BoardConfig(id="b1", port=os.ttyname(board.slave), time_sync_interval_s=600), sink)
    tasks = [asyncio.create_task(board.answer()), asyncio.create_task(session.run())]
    await asyncio.wait_for(session.connected.wait(), 15)
    rss0 = psutil.Process().memory_info().rss
    sent, worst_backlog, end = 0, 0, time.monotonic() + seconds
    while time.monotonic() < end:
        await send(wire.READING, {"s": "water", "v": {"level_cm": float(sent)}, "age": 0})
        sent += 1
        worst_backlog = max(worst_backlog, session.backlog())
    await send(
        wire.ALARM, {"a": 1, "ph": "start", "s": "water", "k": "level_cm", "v": 90.0, "sev": "critical"}
    )
    t0 = time.monotonic()
    while not any(e.kind == ALARM for e in sink.events) and time.monotonic() - t0 < 30:
        await asyncio.sleep(0.005)
    delay = time.monotonic() - t0
    health = session.health()
    grown = (psutil.Process().memory_info().rss - rss0) / 2**20
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t
    board.close()
    return {
        "readings sent": sent,
        "readings taken": sum(e.kind == READING for e in sink.events),
        "readings dropped (counted)": health["readings_dropped"],
        "largest backlog": worst_backlog,
        "memory growth MiB": round(grown, 1),
        "alarm delay s": round(delay, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=4)
    args = parser.parse_args()
    print(f"SIGKILL x{args.kills}: {sigkills(args.kills)}")
    for case, used, seq, alarm in damage_cases():
        verdict = "no reuse" if seq > used else f"REUSED {used - seq + 1} numbers"
        print(f"outbox {case}: numbers used up to {used}, next {seq}: {verdict}; outbox_reset alarm: {alarm}")
    print(f"broker killed x{args.restarts}: {asyncio.run(broker_restarts(args.restarts))}")
    print(f"serial flood 5 s: {asyncio.run(serial_flood())}")
    full = disk_full()
    print(f"disk full: {full if full is not None else 'skipped (needs root to mount a tmpfs)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
