"""What the web tests share: the password and the running gateway's handles."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.runtime import AgentContext
from tools.demo import DemoBoard

PASSWORD = "correct horse battery staple"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@dataclass
class Gateway:
    ctx: AgentContext
    url: str
    config_file: Path
    board: DemoBoard
    loop: asyncio.AbstractEventLoop

    def call(self, coro: Any, timeout: float = 10) -> Any:
        """Run a coroutine on the agent's loop (its objects belong to that thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)
