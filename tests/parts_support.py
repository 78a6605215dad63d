"""The agent's parts run in a test's event loop, as ``run_agent`` runs them, without its signal handling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

from agent.runtime import AgentContext, stop_parts


@contextlib.asynccontextmanager
async def running_parts(
    ctx: AgentContext,
    parts: list[ModuleType],
    ready: Callable[[AgentContext], bool] = lambda ctx: True,
    wait: bool = True,
) -> AsyncIterator[AgentContext]:
    """Set up ``parts`` in order, run them, and yield once the uplink is connected and ``ready``
    (at once without ``wait``)."""
    for part in parts:
        await part.setup(ctx)
    tasks = [asyncio.create_task(part.run(ctx)) for part in parts]
    try:
        uplink: Any = getattr(ctx, "uplink", None)
        while wait and ((uplink is not None and not uplink.publisher.stats.connected) or not ready(ctx)):
            await asyncio.sleep(0.05)
        if wait:
            await asyncio.sleep(0.3)  # the command subscription follows the birth message
        yield ctx
    finally:
        await stop_parts(ctx, parts, tasks)
