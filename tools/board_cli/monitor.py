"""`edgectl board monitor`: live readings, alarms and link statistics of a pole's boards.

On a running gateway the agent holds the boards' serial ports, so the monitor watches what the agent
publishes instead: readings and alarms as the very events integrators receive, and the boards' link
statistics from the health telemetry. It connects with the gateway's own uplink settings.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.live import Live

from agent import topics
from agent.config import GatewayConfig
from agent.events import ALARM, HEALTH, READING, Event, EventFormatError, decode
from agent.redact import redact_url
from agent.uplink.connect import client_for

from .monitor_view import BoardView, event_line, link_line


@dataclass(frozen=True)
class MonitorOptions:
    board: str | None = None  # only this board's events
    json: bool = False
    duration_s: float | None = None  # stop after this long (scripts, tests)
    count: int | None = None  # stop after this many events


def link_sections(health: dict[str, Any], board: str | None = None) -> dict[str, dict[str, Any]]:
    """Each board's link statistics out of a health report, by board id (or only ``board``'s).

    The agent reports them as one section, ``boards``, mapping each board id to its figures; a
    section per board (``board.<id>``) is read the same way."""
    out: dict[str, dict[str, Any]] = {}
    for section, figures in health.items():
        if not section.startswith("board") or not isinstance(figures, dict):
            continue
        if section in ("board", "boards"):
            per_board = {str(k): v for k, v in figures.items() if isinstance(v, dict)}
        else:
            per_board = {section.split(".", 1)[-1]: figures}
        for board_id, stats in per_board.items():
            if board is None or board_id == board:
                out[board_id] = {k: v for k, v in stats.items() if not isinstance(v, dict | list)}
    return out


async def watch(
    config: GatewayConfig, options: MonitorOptions, show: Callable[[Event | None, dict], None]
) -> int:
    """Follow the device's reading, alarm and telemetry topics; returns the number of events shown."""
    prefix, device = config.uplink.topic_prefix, config.device.id
    wanted = [
        topics.event(prefix, device, READING),
        topics.event(prefix, device, ALARM),
        topics.telemetry(prefix, device),
    ]
    shown = 0
    link: dict[str, Any] = {}
    deadline = time.monotonic() + options.duration_s if options.duration_s else None
    async with client_for(config.uplink, f"edgectl-monitor-{os.getpid()}") as client:
        for t in wanted:
            await client.subscribe(t, qos=1)
        print(f"watching {', '.join(wanted)} on {redact_url(config.uplink.url)}", file=sys.stderr, flush=True)
        messages = aiter(client.messages)
        while options.count is None or shown < options.count:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            try:
                message = await asyncio.wait_for(anext(messages), remaining)
            except TimeoutError:
                break
            if not isinstance(message.payload, bytes | bytearray):
                continue
            try:
                event = decode(bytes(message.payload))
            except EventFormatError as exc:
                print(f"skipped a malformed message on {message.topic}: {exc}", file=sys.stderr)
                continue
            if event.kind == HEALTH:
                link = link_sections(event.health or {}, options.board)
                show(None, link)
                continue
            if options.board is not None and event.board != options.board:
                continue
            shown += 1
            show(event, link)
    return shown


def run_monitor(config: GatewayConfig, options: MonitorOptions) -> int:
    view = BoardView(device=config.device.id)
    if options.json:

        def show_json(event: Event | None, link: dict) -> None:
            print(event_line(event) if event is not None else link_line(link), flush=True)

        return asyncio.run(watch(config, options, show_json))
    console = Console()
    with Live(view.render(), console=console, refresh_per_second=4, transient=False) as live:

        def show_table(event: Event | None, link: dict) -> None:
            if event is not None:
                view.add(event)
            live.update(view.render(link))

        return asyncio.run(watch(config, options, show_table))
