"""Outbox invariants under random submits, acknowledgements and restarts (hypothesis)."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uplink_support import reading

from agent.uplink.outbox import Outbox

operation = st.one_of(
    st.tuples(st.just("submit"), st.integers(1, 20)),
    st.tuples(st.just("ack"), st.integers(0, 30)),
    st.tuples(st.just("restart"), st.just(0)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_seqs_increase_and_waiting_events_are_exactly_the_unacknowledged(ops, rng) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outbox.sqlite"

        async def main() -> tuple[list[int], set[int], int]:
            outbox = await Outbox.open(path, "pole-p", 10**9)
            handed_out: list[int] = []
            waiting: set[int] = set()
            for op, n in ops:
                if op == "submit":
                    events = await asyncio.gather(*(outbox.submit(reading(i)) for i in range(n)))
                    handed_out += sorted(e.seq for e in events)
                    waiting |= {e.seq for e in events}
                elif op == "ack":
                    for seq in rng.sample(sorted(waiting), min(n, len(waiting))):
                        outbox.ack(seq)
                        waiting.discard(seq)
                else:
                    await outbox.close()
                    outbox = await Outbox.open(path, "pole-p", 10**9)
            await outbox.flushed()
            depth = outbox.stats.depth
            await outbox.close()
            return handed_out, waiting, depth

        handed_out, waiting, depth = asyncio.run(main())
        db = sqlite3.connect(path)
        try:
            stored = {seq for (seq,) in db.execute("SELECT seq FROM events")}
        finally:
            db.close()
        assert handed_out == sorted(set(handed_out)), "sequence numbers only go up, never repeat"
        assert stored == waiting
        assert depth == len(waiting)
