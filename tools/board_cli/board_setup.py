"""What a technician provisions on a sensor board: its id, which sensors on which pins, how often they
are read, when they raise an alarm, and their calibration offsets.

Written by the technician as TOML (or JSON), validated here before anything reaches the board, stored
on the board as ``/config.json`` (MicroPython reads JSON natively), read back and compared.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .profiles import load_profile, pin_problems

CONFIG_PATH = "/config.json"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

# The pins each kind of sensor is wired with.
PINS: dict[str, tuple[str, ...]] = {
    "pms5003": ("tx", "rx"),  # UART particulate sensor
    "sht3x": ("sda", "scl"),  # I2C temperature / humidity
    "adxl345": ("sda", "scl"),  # I2C accelerometer: manhole-cover tilt
    "mpu6050": ("sda", "scl"),
    "noise": ("adc",),  # microphone on an ADC pin
    "water_ultrasonic": ("trig", "echo"),
    "water_analog": ("adc",),
}
SHARED_BUS_PINS = {"sda", "scl"}  # I2C sensors share their bus


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SensorSetup(_Strict):
    type: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="one of our drivers, or the module name of an integrator's driver (firmware/lib/TYPE.py)",
    )
    id: str | None = Field(default=None, pattern=ID_PATTERN, description="default: the type")
    pins: dict[str, int]
    interval_s: float = Field(default=10.0, gt=0, le=86400)
    thresholds: dict[str, float] = Field(default_factory=dict, description="alarm thresholds, e.g. tilt_deg")
    calibration: dict[str, float] = Field(default_factory=dict, description="offsets, e.g. db_offset")
    i2c_address: int | None = Field(default=None, ge=0x08, le=0x77)
    options: dict[str, str | float | int | bool] = Field(
        default_factory=dict, description="driver settings beyond pins, e.g. a Modbus address"
    )

    @model_validator(mode="after")
    def _pins_of_type(self) -> SensorSetup:
        for name, pin in self.pins.items():
            if not 0 <= pin <= 48:
                raise ValueError(f"pin {name} = {pin} is not a GPIO number (0-48)")
        if self.type not in PINS:
            return self  # an integrator's driver: its own PINS are checked by the firmware at start
        wanted = set(PINS[self.type])
        missing = sorted(wanted - set(self.pins))
        unknown = sorted(set(self.pins) - wanted)
        if missing:
            raise ValueError(
                f"a {self.type} needs pins {', '.join(sorted(wanted))}; missing {', '.join(missing)}"
            )
        if unknown:
            raise ValueError(
                f"a {self.type} has no pin named {', '.join(unknown)} (it uses {', '.join(sorted(wanted))})"
            )
        return self

    @property
    def name(self) -> str:
        return self.id or self.type


class LampSetup(_Strict):
    pin: int = Field(ge=0, le=48)
    frequency_hz: int = Field(default=1000, ge=100, le=40000)
    level: float = Field(default=1.0, ge=0, le=1, description="brightness at start, 0..1")


class BoardSetup(_Strict):
    board_id: str = Field(pattern=ID_PATTERN)
    board: str = Field(
        default="esp32", description="board family, a profile in firmware/profiles (esp32, rp2040)"
    )
    sensors: list[SensorSetup] = Field(default_factory=list)
    lamp: LampSetup | None = None
    report_interval_s: float = Field(default=60.0, gt=0, description="readings sent at least this often")

    @model_validator(mode="after")
    def _no_pin_twice(self) -> BoardSetup:
        names = [s.name for s in self.sensors]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sensor ids must be unique (give each an id): {', '.join(dupes)}")
        owner: dict[int, str] = {}
        for sensor in self.sensors:
            for role, pin in sensor.pins.items():
                if role in SHARED_BUS_PINS:
                    continue
                if pin in owner:
                    raise ValueError(f"pin {pin} is used twice: {owner[pin]} and {sensor.name}.{role}")
                owner[pin] = f"{sensor.name}.{role}"
        if self.lamp is not None and self.lamp.pin in owner:
            raise ValueError(f"the lamp's pin {self.lamp.pin} is also {owner[self.lamp.pin]}")
        profile = load_profile(self.board)
        sensors = [s.model_dump() for s in self.sensors]
        problems = pin_problems(profile, sensors, self.lamp.pin if self.lamp else None)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def document(self) -> dict[str, Any]:
        """The JSON document the board stores: defaults filled in, so what is read back is comparable,
        and the board family's profile, with which the firmware maps pins to its peripherals."""
        doc = self.model_dump(mode="json")
        doc["profile"] = load_profile(self.board)
        return doc


def setup_warnings(setup: BoardSetup) -> list[str]:
    """What is valid but probably a mistake: a sensor type that is none of our drivers, which the
    board can only start if the firmware bundle carries an integrator's driver of that name."""
    out = []
    for i, sensor in enumerate(setup.sensors):
        if sensor.type in PINS:
            continue
        close = difflib.get_close_matches(sensor.type, list(PINS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        out.append(
            f"sensors.{i}.type {sensor.type!r} is not one of our drivers ({', '.join(PINS)}); {hint}"
            f"otherwise the firmware bundle must carry an integrator's driver as lib/{sensor.type}.py "
            f"(firmware/lib/{sensor.type}.py in the source), or the board starts without {sensor.name}"
        )
    return out


class SetupError(ValueError):
    """A setup file that cannot be provisioned; the message names every problem."""


def load_setup(path: Path, board_id: str | None = None) -> BoardSetup:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SetupError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise SetupError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from None
    if board_id is not None:
        data["board_id"] = board_id
    try:
        return BoardSetup.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise SetupError(f"{path}: {problems}") from None


def differences(wanted: dict[str, Any], got: Any, where: str = "") -> list[str]:
    """Paths where the board's config differs from what was written."""
    if isinstance(wanted, dict) and isinstance(got, dict):
        out = []
        for key in sorted(set(wanted) | set(got)):
            path = f"{where}.{key}" if where else key
            if key not in got:
                out.append(f"{path}: missing on the board")
            elif key not in wanted:
                out.append(f"{path}: on the board but not written")
            else:
                out.extend(differences(wanted[key], got[key], path))
        return out
    if isinstance(wanted, list) and isinstance(got, list) and len(wanted) == len(got):
        return [
            d
            for i, (a, b) in enumerate(zip(wanted, got, strict=True))
            for d in differences(a, b, f"{where}[{i}]")
        ]
    return [] if wanted == got else [f"{where or '(config)'}: wrote {wanted!r}, board has {got!r}"]
