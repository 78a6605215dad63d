"""A board without devices for link tests and benchmarks: the HAL's clock and control functions over
the host's monotonic clock, and dial sensors whose value the caller sets."""

from __future__ import annotations

import time
from typing import Any

TICKS_PERIOD = 1 << 30  # MicroPython's ticks_ms wraps here


class SimReset(Exception):
    """machine.reset() on the simulated board: the firmware starts again."""


class ClockHAL:
    """The HAL's clock and control functions over the host's monotonic clock (no devices)."""

    def __init__(self, start_ms: int = 0) -> None:
        self.offset = start_ms - int(time.monotonic() * 1000)
        self.intr: list[int] = []
        self.feeds = 0

    def ticks_ms(self) -> int:
        return (int(time.monotonic() * 1000) + self.offset) % TICKS_PERIOD

    def ticks_diff(self, a: int, b: int) -> int:
        d = (a - b) % TICKS_PERIOD
        return d - TICKS_PERIOD if d >= TICKS_PERIOD // 2 else d

    def sleep_ms(self, ms: int) -> None:
        time.sleep(ms / 1000)

    def watchdog(self, timeout_ms: int) -> ClockHAL:
        return self

    def feed(self) -> None:
        self.feeds += 1

    def kbd_intr(self, ch: int) -> None:
        self.intr.append(ch)

    def reset(self) -> None:
        raise SimReset


class Dial:
    """A sensor whose value the test sets. ``check`` is always twice ``level``: a corrupted reading
    accepted by the gateway would break that relation."""

    TYPE = "dial"
    UNITS = {"level": "cm", "check": "cm"}  # noqa: RUF012
    SEVERITY = {"level": "critical"}  # noqa: RUF012

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = 1.0
        self.reads = 0
        self.failing = False

    def read(self) -> dict[str, float]:
        if self.failing:
            raise OSError("no answer on the bus")
        self.reads += 1
        return {"level": self.value, "check": 2 * self.value}


class Dials:
    def __init__(self) -> None:
        self.made: dict[str, Dial] = {}

    def __call__(self, entry: dict[str, Any]) -> Dial:
        name = entry.get("id") or entry["type"]
        dial = self.made.get(name) or Dial(name)  # the same dial across reboots
        self.made[name] = dial
        return dial
