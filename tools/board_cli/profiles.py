"""Board profiles (firmware/profiles/*.json): which pins, UARTs, I2C buses and ADC inputs a board
family offers. `edgectl board provision` checks a setup against its board's profile and ships the
profile in the board's config, where the firmware's MachineHAL maps pins to peripherals with it; the
simulated board checks its wiring against the same file."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import firmware
from firmware.streetfw.hal import _bus_id

PROFILE_DIR = Path(firmware.__file__).resolve().parent / "profiles"
# Pin roles the board drives: they cannot be input-only pins. I2C lines are driven both ways.
OUTPUT_ROLES = {"tx", "trig", "sda", "scl", "pwm", "out"}


def families() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


@cache
def load_profile(family: str) -> dict[str, Any]:
    path = PROFILE_DIR / f"{family}.json"
    if not path.is_file():
        raise ValueError(f"no board profile {family!r} (we have: {', '.join(families())})")
    return json.loads(path.read_text(encoding="utf-8"))


def pin_problems(profile: dict[str, Any], sensors: list[dict[str, Any]], lamp_pin: int | None) -> list[str]:
    """Every way the sensors' and the lamp's pins do not fit the board family, each naming the pin."""
    family = profile["family"]
    problems: list[str] = []
    reserved = set(profile.get("reserved_pins", []))
    input_only = set(profile.get("input_only_pins", []))
    adc_pins = profile.get("adc_pins")
    uart_pairs: list[tuple[int, int]] = []
    i2c_pairs: list[tuple[int, int]] = []
    roles = [
        (s.get("id") or s["type"], role, pin) for s in sensors for role, pin in s.get("pins", {}).items()
    ]
    if lamp_pin is not None:
        roles.append(("lamp", "pwm", lamp_pin))
    for name, role, pin in roles:
        where = f"{name}.{role} = {pin}"
        if pin > profile.get("gpio_max", 48):
            problems.append(f"{where}: {family} has GPIO 0-{profile['gpio_max']}")
        elif pin in reserved:
            problems.append(f"{where}: reserved on {family} (flash, LEDs or power; see its profile)")
        elif role in OUTPUT_ROLES and pin in input_only:
            problems.append(f"{where}: input-only on {family}, and this pin is driven by the board")
        elif role == "adc" and adc_pins and pin not in adc_pins:
            problems.append(f"{where}: no ADC on {family} (ADC pins: {', '.join(map(str, adc_pins))})")
    for s in sensors:
        pins = s.get("pins", {})
        if "tx" in pins and "rx" in pins and (pins["tx"], pins["rx"]) not in uart_pairs:
            uart_pairs.append((pins["tx"], pins["rx"]))
        if "sda" in pins and "scl" in pins and (pins["sda"], pins["scl"]) not in i2c_pairs:
            i2c_pairs.append((pins["sda"], pins["scl"]))
    for kind, pairs in (("uart", uart_pairs), ("i2c", i2c_pairs)):
        for index, (a, b) in enumerate(pairs):
            try:
                _bus_id(profile, kind, a, b, index)
            except ValueError as exc:
                problems.append(f"{kind} pins {a}/{b}: {exc}")
    return problems
