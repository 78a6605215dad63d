"""Durable outbox appends per second: group commit (many submitters share each fsync'd commit)
against one commit per event (a single submitter waiting for each), side by side, same file system.

Run: ``python bench/uplink_outbox.py``. Both use WAL with synchronous=FULL. The group commit is
also run with the payloads sealed at rest (AES-256-GCM, as the agent does by default), alternating
with plain runs so both see the same machine.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.events import READING, Event, now_ms  # noqa: E402
from agent.uplink.atrest import Sealer  # noqa: E402
from agent.uplink.outbox import Outbox  # noqa: E402


def reading(i: int) -> Event:
    return Event(
        kind=READING,
        captured_ms=now_ms(),
        clock_synced=True,
        board="b1",
        sensor="aq",
        values={"pm2_5": i / 10},
    )


async def one_at_a_time(path: Path, n: int) -> float:
    outbox = await Outbox.open(path, "bench", 10**10)
    start = time.perf_counter()
    for i in range(n):
        await outbox.submit(reading(i))
    elapsed = time.perf_counter() - start
    await outbox.close()
    return n / elapsed


async def group_commit(path: Path, n: int, submitters: int, sealer: Sealer | None = None) -> float:
    outbox = await Outbox.open(path, "bench", 10**10, sealer=sealer)
    per = n // submitters

    async def producer() -> None:
        for i in range(per):
            await outbox.submit(reading(i))

    start = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(submitters)))
    elapsed = time.perf_counter() - start
    await outbox.close()
    return per * submitters / elapsed


async def main() -> None:
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        folder = Path(tmp)
        single = await one_at_a_time(folder / "single.sqlite", 2_000)
        print(f"one commit per event (1 submitter):  {single:>9,.0f} durable appends/s")
        sealer = Sealer.from_file(folder / "outbox.key", "bench")
        for submitters in (16, 256):
            plain, sealed = [], []
            for r in range(3):  # alternating, so a busy moment costs both alike
                plain.append(await group_commit(folder / f"p{submitters}-{r}.sqlite", 60_000, submitters))
                sealed.append(
                    await group_commit(folder / f"s{submitters}-{r}.sqlite", 60_000, submitters, sealer)
                )
            grouped, enc = sorted(plain)[1], sorted(sealed)[1]
            print(
                f"group commit ({submitters:>3} submitters):       {grouped:>9,.0f} durable appends/s  "
                f"({grouped / single:.0f}x one-per-event); sealed at rest {enc:>9,.0f}/s ({enc / grouped:.2f}x)"
            )


if __name__ == "__main__":
    asyncio.run(main())
