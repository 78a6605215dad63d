"""Device health telemetry: the gateway's own figures plus every part's registered section."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psutil

from agent.clock import clock_synchronized
from agent.events import HEALTH, Event, now_ms
from agent.health import Health


def system_figures(started: float, disk_path: Path) -> dict[str, Any]:
    """Uptime, CPU, memory and disk: what a technician asks first about a pole."""
    memory = psutil.virtual_memory()
    process = psutil.Process(os.getpid())
    figures: dict[str, Any] = {
        "uptime_s": round(time.monotonic() - started),
        "boot_s": round(time.time() - psutil.boot_time()),
        "cpu_pct": psutil.cpu_percent(interval=None),  # since the previous report
        "load1": round(os.getloadavg()[0], 2),
        "mem_pct": memory.percent,
        "mem_avail_mb": round(memory.available / 2**20),
        "rss_mb": round(process.memory_info().rss / 2**20, 1),
    }
    try:
        disk = psutil.disk_usage(str(disk_path))
        figures["disk_pct"] = disk.percent
        figures["disk_free_mb"] = round(disk.free / 2**20)
    except OSError:
        figures["disk_pct"] = None
    return figures


def health_event(started: float, disk_path: Path, health: Health) -> Event:
    report = system_figures(started, disk_path)
    report.update(health.snapshot())
    return Event(kind=HEALTH, captured_ms=now_ms(), clock_synced=clock_synchronized(), health=report)
