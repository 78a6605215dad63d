"""A producer process for the SIGKILL test: submits events to an outbox and prints each accepted seq.

Run as ``python outbox_writer.py OUTBOX_PATH``; a line ``SEQ`` on stdout means ``submit`` returned,
i.e. the event was acknowledged as durable.
"""

from __future__ import annotations

import asyncio
import sys

from agent.events import READING, Event, now_ms
from agent.uplink.outbox import Outbox


async def main(path: str) -> None:
    outbox = await Outbox.open(path, "pole-kill", 10**9)
    out = sys.stdout

    async def one(i: int) -> None:
        event = await outbox.submit(
            Event(
                kind=READING, captured_ms=now_ms(), clock_synced=True, board="b", sensor="s", values={"i": i}
            )
        )
        out.write(f"{event.seq}\n")
        out.flush()

    i = 0
    while True:
        # Several submitters at once, as cameras and boards do: they share group commits.
        await asyncio.gather(*(one(i + k) for k in range(16)))
        i += 16


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
