"""Draining a 300,000-event backlog (about 83 hours of one reading per second) while live events
keep coming at 10 per second; the integrator's subscriber runs in its own process.

Reports: time until the whole backlog is acknowledged by the broker, the live events' lag from
commit to PUBACK (the device side), and from capture to arrival at the subscriber (end to end).
Run: ``python bench/uplink_drain.py [EVENTS] [REPLAY_RATE]`` (defaults 300000 and 10000/s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
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

LIVE_PER_S = 10


def reading(t: int, sensor: str = "aq") -> Event:
    return Event(
        kind=READING, captured_ms=t, clock_synced=True, board="b1", sensor=sensor, values={"pm2_5": 12.0}
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(n: int, replay_rate: float) -> None:
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        folder = Path(tmp)
        broker = Broker(folder / "broker")
        broker.start()
        path = folder / "outbox.sqlite"
        config = parse_config(
            {
                "device": {"id": "bench"},
                "uplink": {"url": broker.url, "inflight": 128, "replay_rate": replay_rate},
                "outbox": {"path": str(path)},
            }
        )
        outbox = await Outbox.open(path, "bench", 10**10)
        start_ms = now_ms() - n * 1000
        t0 = time.perf_counter()
        for i in range(0, n, 10_000):
            await outbox.submit_many(reading(start_ms + j * 1000) for j in range(i, min(n, i + 10_000)))
        print(f"backlog of {n:,} events written in {time.perf_counter() - t0:.1f} s")
        backlog_end = outbox.last_seq
        consumer = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "support" / "mqtt_consumer.py"),
                broker.host,
                str(broker.port),
                "city/bench/evt/#",
                "0",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert consumer.stdout is not None
        assert consumer.stdout.readline().strip() == "READY"
        publisher = Publisher(config.uplink, "bench", outbox)
        live: list[int] = []
        start = time.perf_counter()
        task = asyncio.create_task(publisher.run())
        while not publisher.stats.connected:  # events from before the link is up belong to the backlog
            await asyncio.sleep(0.001)
        drained_at = None
        while drained_at is None:
            event = await outbox.submit(reading(now_ms(), "cover"))
            live.append(event.seq)
            await asyncio.sleep(1 / LIVE_PER_S)
            if publisher.backlog_remaining == 0 and publisher.stats.published >= backlog_end:
                await outbox.flushed()
                if outbox.stats.depth <= len(live):
                    drained_at = time.perf_counter() - start
        await asyncio.sleep(1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await outbox.close()
        broker.stop()  # the consumer notices and prints what it saw
        report = json.loads(consumer.communicate(timeout=120)[0].splitlines()[-1])
        seen = {int(s): v for s, v in report["seen"].items()}
        device_lag = list(publisher.stats.live_lag_ms)
        end_to_end = [seen[s][0] - seen[s][1] for s in live if s in seen]
        print(
            f"drained {backlog_end:,} backlog events in {drained_at:.1f} s ({backlog_end / drained_at:,.0f} events/s, replay_rate {replay_rate:,.0f}/s)"
        )
        print(
            f"subscriber got {len(seen):,} distinct events of {backlog_end + len(live):,} ({report['copies'] - len(seen)} duplicates)"
        )
        print(
            f"{len(live)} live events during the drain; commit-to-PUBACK ms: median {statistics.median(device_lag):.0f}, "
            f"p99 {pct(device_lag, 0.99):.0f}, max {max(device_lag):.0f}"
        )
        print(
            f"capture-to-subscriber ms: median {statistics.median(end_to_end):.0f}, p99 {pct(end_to_end, 0.99):.0f}, "
            f"max {max(end_to_end):.0f}"
        )


if __name__ == "__main__":
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    asyncio.run(main(events, rate))
