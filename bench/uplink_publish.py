"""QoS 1 events per second from the outbox to a local mosquitto: a window of publishes in flight
against one publish at a time (each waits for its PUBACK), side by side in one run.

Run: ``python bench/uplink_publish.py``. Counts events acknowledged by the broker (PUBACK) and
deleted from the outbox, i.e. delivered in the sense the agent guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import parse_config  # noqa: E402
from agent.events import READING, Event, now_ms  # noqa: E402
from agent.uplink.outbox import Outbox  # noqa: E402
from agent.uplink.publisher import Publisher  # noqa: E402
from tools.broker import Broker  # noqa: E402


def reading(i: int) -> Event:
    return Event(
        kind=READING,
        captured_ms=now_ms(),
        clock_synced=True,
        board="b1",
        sensor="aq",
        values={"pm2_5": i / 10},
    )


async def delivered_per_second(broker: Broker, folder: Path, n: int, inflight: int) -> float:
    path = folder / f"outbox-{inflight}.sqlite"
    config = parse_config(
        {
            "device": {"id": "bench"},
            "uplink": {"url": broker.url, "inflight": inflight, "replay_rate": 1e9},
            "outbox": {"path": str(path)},
        }
    )
    outbox = await Outbox.open(path, "bench", 10**10)
    for i in range(0, n, 10_000):
        await outbox.submit_many(reading(j) for j in range(i, min(n, i + 10_000)))
    publisher = Publisher(config.uplink, "bench", outbox)
    start = time.perf_counter()
    task = asyncio.create_task(publisher.run())
    while publisher.stats.published < n:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await outbox.close()
    return n / elapsed


async def main() -> None:
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        folder = Path(tmp)
        broker = Broker(folder / "broker")
        broker.start()
        try:
            single = await delivered_per_second(broker, folder, 3_000, 1)
            print(f"one at a time (inflight 1):   {single:>8,.0f} events/s acknowledged")
            for inflight in (16, 64, 256):
                rate = await delivered_per_second(broker, folder, 60_000, inflight)
                print(
                    f"window of {inflight:>3} in flight:      {rate:>8,.0f} events/s  ({rate / single:.1f}x one at a time)"
                )
        finally:
            broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
