"""Sensor boards on serial ports."""

from __future__ import annotations

from pydantic import Field

from .base import Section
from .device import DEVICE_ID_PATTERN


class BoardConfig(Section):
    id: str = Field(pattern=DEVICE_ID_PATTERN)
    port: str = Field(description="serial port, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...")
    baud: int = Field(default=115200, ge=1200, le=4_000_000)
    time_sync_interval_s: float = Field(default=600.0, gt=0)
