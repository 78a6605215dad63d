"""The runtime keeps parts running: a part that crashes is restarted, the others carry on."""

from __future__ import annotations

import asyncio
import types

from agent.config import parse_config
from agent.events import HEALTH, Event, now_ms
from agent.runtime import AgentContext, run_agent
from agent.sink import MemorySink


def _part(name: str, setup, run) -> types.ModuleType:
    module = types.ModuleType(name)
    module.setup = setup
    module.run = run
    return module


def test_crashing_part_is_restarted_while_the_other_keeps_producing() -> None:
    ctx = AgentContext(config=parse_config({"device": {"id": "pole-1"}}))
    sink = MemorySink("pole-1")
    crashes = 0

    async def setup_sink(c: AgentContext) -> None:
        c.sink = sink

    async def producer(c: AgentContext) -> None:
        while True:
            await c.events().submit(Event(kind=HEALTH, captured_ms=now_ms(), clock_synced=False, health={}))
            await asyncio.sleep(0.01)

    async def setup_nothing(c: AgentContext) -> None:
        return None

    async def flaky(c: AgentContext) -> None:
        nonlocal crashes
        crashes += 1
        if crashes >= 2:
            c.stopping.set()
        raise RuntimeError("camera driver blew up")

    parts = [_part("good", setup_sink, producer), _part("flaky", setup_nothing, flaky)]
    asyncio.run(asyncio.wait_for(run_agent(ctx, parts), timeout=30))
    assert crashes == 2
    assert len(sink.events) >= 1
    assert [e.seq for e in sink.events] == list(range(1, len(sink.events) + 1))
    assert all(e.device == "pole-1" for e in sink.events)


def test_without_an_uplink_events_are_printed(capsys) -> None:
    ctx = AgentContext(config=parse_config({"device": {"id": "pole-2"}}))

    async def setup_nothing(c: AgentContext) -> None:
        return None

    async def once(c: AgentContext) -> None:
        await c.events().submit(Event(kind=HEALTH, captured_ms=1, clock_synced=True, health={"ok": 1}))
        c.stopping.set()

    asyncio.run(asyncio.wait_for(run_agent(ctx, [_part("once", setup_nothing, once)]), timeout=30))
    out = capsys.readouterr().out
    assert '"d":"pole-2"' in out and '"s":1' in out and '"h":{"ok":1}' in out
