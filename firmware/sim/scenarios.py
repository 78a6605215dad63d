"""Scripted street situations for the simulated board: what the physical world does over time.

A scenario is a function of the seconds since it started that sets the World's quantities; the
player calls it a few times a second. Baselines are plausible for a city street in daytime.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The board setup of the demo's pole (all our sensors, sampled often)
STREET_SETUP = Path(__file__).with_name("street-setup.toml")


def _ramp(t: float, t0: float, t1: float, a: float, b: float) -> float:
    """a before t0, b after t1, linear between."""
    if t <= t0:
        return a
    if t >= t1:
        return b
    return a + (b - a) * (t - t0) / (t1 - t0)


def _pulse(t: float, rise: float, top: float, fall: float, end: float, low: float, high: float) -> float:
    """low, ramping to high over [rise, top], staying until fall, back to low at end."""
    if t < top:
        return _ramp(t, rise, top, low, high)
    return _ramp(t, fall, end, high, low)


def calm(world: Any, t: float) -> None:
    world.pm2_5 = 18 + 3 * math.sin(t / 40)
    world.pm1_0 = world.pm2_5 * 0.7
    world.pm10 = world.pm2_5 * 1.6
    world.temperature_c = 21.5 + 0.5 * math.sin(t / 300)
    world.humidity_pct = 55 + 2 * math.sin(t / 200)
    world.noise_db = 62 + 4 * math.sin(t / 7)
    world.tilt_deg = 0.8
    world.water_level_cm = 2.0


def pollution(world: Any, t: float) -> None:
    """A pollution episode: PM2.5 climbs from street level past 75 µg/m³ and falls back."""
    calm(world, t)
    world.pm2_5 = _pulse(t, 10, 40, 70, 100, 18, 150)
    world.pm1_0 = world.pm2_5 * 0.7
    world.pm10 = world.pm2_5 * 1.6


def noise(world: Any, t: float) -> None:
    """A noise spike: construction at night, 95 dB for 8 s."""
    calm(world, t)
    world.noise_db = _pulse(t, 15, 16, 24, 25, 62, 95)


def cover(world: Any, t: float) -> None:
    """A manhole cover is lifted (tilts to 35°) and put back."""
    calm(world, t)
    world.tilt_deg = _pulse(t, 20, 21, 35, 36, 0.8, 35)


def flood(world: Any, t: float) -> None:
    """Rain: water rises under the street past the 20 cm alarm and recedes."""
    calm(world, t)
    world.water_level_cm = _pulse(t, 10, 50, 70, 110, 2, 40)


def street(world: Any, t: float) -> None:
    """Everything in one minute, staggered (the demo's script)."""
    calm(world, t)
    world.pm2_5 = _pulse(t, 5, 15, 35, 45, 18, 120)
    world.pm1_0 = world.pm2_5 * 0.7
    world.pm10 = world.pm2_5 * 1.6
    world.noise_db = _pulse(t, 12, 13, 18, 19, 62, 95)
    world.tilt_deg = _pulse(t, 20, 21, 32, 33, 0.8, 35)
    world.water_level_cm = _pulse(t, 25, 35, 45, 55, 2, 35)


SCENARIOS: dict[str, Callable[[Any, float], None]] = {
    "calm": calm,
    "pollution": pollution,
    "noise": noise,
    "cover": cover,
    "flood": flood,
    "street": street,
}


def describe() -> str:
    return "; ".join(f"{name}: {(fn.__doc__ or 'quiet street').strip()}" for name, fn in SCENARIOS.items())


@dataclass
class ScenarioPlayer:
    """Plays a scenario on a World in a thread; ``loop`` restarts it after ``period_s``."""

    world: Any
    name: str = "calm"
    speed: float = 1.0
    loop: bool = False
    period_s: float = 120.0

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(f"no scenario {self.name!r}; known: {', '.join(SCENARIOS)}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scenario", daemon=True)
        self.started = 0.0
        SCENARIOS[self.name](self.world, 0.0)

    def start(self) -> ScenarioPlayer:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def elapsed(self) -> float:
        t = (time.monotonic() - self.started) * self.speed
        return t % self.period_s if self.loop else t

    def _run(self) -> None:
        fn = SCENARIOS[self.name]
        while not self._stop.wait(0.1):
            fn(self.world, self.elapsed())

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
