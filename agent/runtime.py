"""Starts, supervises and stops the agent's parts on one asyncio event loop.

A part is a module with ``async def setup(ctx)`` (install sinks, register commands and health
figures) and ``async def run(ctx)`` (work until cancelled). Parts are found by module name, so a
part that is not installed is simply absent; a part that crashes is restarted with backoff while
the others keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import importlib.util
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .backoff import Backoff
from .commands import CommandRegistry
from .config import GatewayConfig
from .health import Health
from .sink import EventSink, PrintSink

log = logging.getLogger(__name__)

# In start order: the uplink installs the outbox as the sink before producers start.
PART_MODULES = ("agent.uplink.part", "agent.vision.part", "agent.boards.part", "agent.web.part")


@dataclass
class AgentContext:
    config: GatewayConfig
    config_path: Path | None = None
    sink: EventSink | None = None
    health: Health = field(default_factory=Health)
    commands: CommandRegistry = field(default_factory=CommandRegistry)
    started: float = field(default_factory=time.monotonic)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self) -> EventSink:
        assert self.sink is not None, "setup installs a sink before parts run"
        return self.sink


def available_parts(names: tuple[str, ...] = PART_MODULES) -> list[ModuleType]:
    parts = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            parts.append(importlib.import_module(name))
    return parts


async def supervise(name: str, factory: Callable[[], Awaitable[object]], stopping: asyncio.Event) -> None:
    """Run ``factory()`` until stopping; restart it with exponential backoff and jitter if it fails."""
    backoff = Backoff(first=1.0, most=60.0, jitter=(0.5, 1.5), healthy_after_s=60.0)
    while not stopping.is_set():
        started = time.monotonic()
        try:
            await factory()
            if stopping.is_set():
                return
            log.warning("%s stopped by itself; restarting", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; restarting in %.1f s", name, backoff.delay)
        backoff.ran(time.monotonic() - started)  # it ran for a while: the failure is new, not a crash loop
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), backoff.next())


async def run_agent(ctx: AgentContext, parts: list[ModuleType] | None = None) -> None:
    """Set up every part, run them until a stop signal, then stop them in reverse order."""
    parts = available_parts() if parts is None else parts
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, ctx.stopping.set)
    for part in parts:
        await part.setup(ctx)
    if ctx.sink is None:
        log.warning("no uplink part installed: events are printed, not delivered")
        ctx.sink = PrintSink(ctx.config.device.id)
    log.info(
        "agent %s running parts: %s", ctx.config.device.id, ", ".join(p.__name__ for p in parts) or "none"
    )
    tasks = [
        asyncio.create_task(
            supervise(part.__name__, functools.partial(part.run, ctx), ctx.stopping), name=part.__name__
        )
        for part in parts
    ]
    try:
        await ctx.stopping.wait()
    finally:
        log.info("stopping")
        await stop_parts(ctx, parts, tasks)


async def stop_parts(ctx: AgentContext, parts: list[ModuleType], tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel the parts' tasks and close the parts, last started first."""
    ctx.stopping.set()
    for task in reversed(tasks):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for part in reversed(parts):
        close = getattr(part, "close", None)
        if close is not None:
            await close(ctx)
