"""`edgectl firmware new-driver NAME`: a working driver skeleton for an integrator's sensor, its tests
against a simulated device (down to readings on MQTT), and its board-setup entry.

The skeleton reads a plausible device on the chosen bus so that the generated tests pass as written;
the integrator then replaces the register map, the frame format or the conversion with the
datasheet's, and the tests with the device's real answers (docs/firmware-sdk.md walks through it).
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import USAGE, EdgectlError

BUSES = ("i2c", "uart", "adc")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
# Our own drivers and firmware modules: an integrator's module of the same name would shadow them.
RESERVED = {
    "pms5003", "sht3x", "adxl345", "mpu6050", "tilt", "noise", "water_ultrasonic", "water_analog",
    "streetfw", "firmware", "main", "boot", "machine", "lamp", "sensor", "wire", "app", "hal",
}  # fmt: skip


@dataclass(frozen=True)
class DriverSpec:
    name: str  # module name and config "type"
    bus: str
    key: str  # the value the driver reports
    unit: str
    severity: str = "warning"

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))


def check_spec(spec: DriverSpec) -> None:
    """Refuse names that would not import on a board or would shadow a module there."""
    if not NAME_RE.match(spec.name) or keyword.iskeyword(spec.name):
        raise EdgectlError(
            f"driver name {spec.name!r}: use 2-31 lowercase letters, digits and underscores, "
            "starting with a letter (it is the module name on the board and the setup's sensor type)",
            USAGE,
        )
    if spec.name in RESERVED or spec.name in sys.stdlib_module_names:
        raise EdgectlError(
            f"driver name {spec.name!r} is taken by a module on the board; choose another", USAGE
        )
    if spec.bus not in BUSES:
        raise EdgectlError(f"bus {spec.bus!r}: expected one of {', '.join(BUSES)}", USAGE)
    if not KEY_RE.match(spec.key):
        raise EdgectlError(f"value key {spec.key!r}: use lowercase letters, digits and underscores", USAGE)
    if spec.severity not in ("info", "warning", "critical"):
        raise EdgectlError(f"severity {spec.severity!r}: expected info, warning or critical", USAGE)


# -- the driver, per bus ---------------------------------------------------------------------------
_HEAD = """# __NAME__: __KEY__ in __UNIT__, read over __BUS__. Written by `edgectl firmware new-driver`;
# replace the marked parts with your device's datasheet (docs/firmware-sdk.md). MicroPython code: it
# runs on the board and, for the tests, under CPython with the simulated HAL.
from streetfw.sensor import Sensor, SensorError, register
"""

_DRIVERS = {
    "i2c": '''
# DATASHEET: the device's address, the register holding the measurement and its scale.
ADDRESS = 0x40  # setup.toml can give another one as options.i2c_address
REG_VALUE = 0x00  # 16 bits, most significant byte first
SCALE = 0.01  # __UNIT__ per count


def convert(raw):
    """__KEY__ from the register's two bytes."""
    return ((raw[0] << 8) | raw[1]) * SCALE


@register
class __CLASS__(Sensor):
    TYPE = "__NAME__"
    PINS = ("sda", "scl")
    UNITS = {"__KEY__": "__UNIT__"}
    SEVERITY = {"__KEY__": "__SEVERITY__"}
    DEFAULT_ADDRESS = ADDRESS

    def setup(self):
        self.bus = self.i2c()
        self.raw = bytearray(2)

    def read(self):
        try:
            self.bus.readfrom_mem_into(self.address, REG_VALUE, self.raw)
        except OSError as exc:
            raise SensorError(
                "__NAME__: no answer at I2C address 0x%02x (%s: wiring, address?)" % (self.address, exc)
            ) from None
        return {"__KEY__": convert(self.raw) + self.offset("__KEY__")}
''',
    "uart": '''
# DATASHEET: the request the device answers and its reply. This skeleton's device answers the
# request b"R" with a 6-byte frame: 0xA5, the value as a 16-bit count (MSB first) in 0.01 __UNIT__,
# two reserved bytes, and a checksum (the low byte of the sum of the five bytes before it).
REQUEST = b"R"
FRAME_LEN = 6
SCALE = 0.01


def parse(frame):
    """__KEY__ from one reply frame; SensorError naming what is wrong with it."""
    if len(frame) != FRAME_LEN or frame[0] != 0xA5:
        raise SensorError("__NAME__: bad reply (%d bytes)" % len(frame))
    if sum(frame[:5]) & 0xFF != frame[5]:
        raise SensorError("__NAME__: checksum mismatch")
    return ((frame[1] << 8) | frame[2]) * SCALE


@register
class __CLASS__(Sensor):
    TYPE = "__NAME__"
    PINS = ("tx", "rx")
    UNITS = {"__KEY__": "__UNIT__"}
    SEVERITY = {"__KEY__": "__SEVERITY__"}

    def setup(self):
        self.uart = self.hal.uart(self.pins["tx"], self.pins["rx"], int(self.options.get("baud", 9600)))
        self.frame = bytearray(FRAME_LEN)

    def read(self):
        while self.uart.any():  # bytes left from an earlier, broken exchange
            self.uart.read()
        self.uart.write(REQUEST)
        self.hal.sleep_ms(20)  # DATASHEET: the device's answer time
        got = self.uart.readinto(self.frame) if self.uart.any() else 0
        if not got:
            raise SensorError("__NAME__: no reply (wiring, baud rate?)")
        return {"__KEY__": parse(memoryview(self.frame)[:got]) + self.offset("__KEY__")}
''',
    "adc": """
# DATASHEET: the output range. This skeleton maps 0..full scale of the ADC linearly onto
# 0..span (calibration span, default 100 __UNIT__) plus the calibration offset of __KEY__.
SAMPLES = 8  # averaged against ripple


@register
class __CLASS__(Sensor):
    TYPE = "__NAME__"
    PINS = ("adc",)
    UNITS = {"__KEY__": "__UNIT__"}
    SEVERITY = {"__KEY__": "__SEVERITY__"}

    def setup(self):
        self.adc = self.hal.adc(self.pins["adc"])

    def read(self):
        raw = 0
        for _ in range(SAMPLES):
            raw += self.adc.read_u16()
        if raw == 0:
            raise SensorError("__NAME__: the input reads 0 V (sensor unpowered or wire broken?)")
        return {"__KEY__": raw / SAMPLES / 65535 * self.offset("span", 100.0) + self.offset("__KEY__")}
""",
}

# -- the simulated device and what a reading of it gives, per bus ----------------------------------
_DEVICES = {
    "i2c": '''
class Simulated__CLASS__(I2CDevice):
    """The device on the simulated bus: its value register holds ``value`` in counts of 0.01."""

    def __init__(self) -> None:
        self.value = 12.34

    def read_reg(self, reg: int, n: int) -> bytes:
        assert reg == 0x00, f"the driver read register {reg:#x}"
        return round(self.value * 100).to_bytes(2, "big")[:n]


def wire(hal: SimHAL, entry: dict) -> Simulated__CLASS__:
    device = Simulated__CLASS__()
    hal.i2c(entry["pins"]["sda"], entry["pins"]["scl"]).devices[0x40] = device
    return device


def unplug(hal: SimHAL, entry: dict) -> None:
    hal.i2c(entry["pins"]["sda"], entry["pins"]["scl"]).devices.clear()
''',
    "uart": '''
class Simulated__CLASS__:
    """The device on the simulated UART: answers b"R" with the 6-byte frame the driver expects."""

    def __init__(self) -> None:
        self.value = 12.34
        self.silent = False
        self.out = b""

    def write(self, data: bytes) -> int:
        if data == b"R" and not self.silent:
            body = bytes((0xA5,)) + round(self.value * 100).to_bytes(2, "big") + bytes(2)
            self.out = body + bytes((sum(body) & 0xFF,))
        return len(data)

    def any(self) -> int:
        return len(self.out)

    def read(self, n: int = -1) -> bytes | None:
        data, self.out = self.out, b""
        return data or None

    def readinto(self, buf) -> int:
        n = min(len(buf), len(self.out))
        buf[:n] = self.out[:n]
        self.out = self.out[n:]
        return n


def wire(hal: SimHAL, entry: dict) -> Simulated__CLASS__:
    device = Simulated__CLASS__()
    hal.uarts[(entry["pins"]["tx"], entry["pins"]["rx"])] = device
    return device


def unplug(hal: SimHAL, entry: dict) -> None:
    hal.uarts[(entry["pins"]["tx"], entry["pins"]["rx"])].silent = True
''',
    "adc": '''
class Simulated__CLASS__:
    """The device on the simulated ADC pin: ``value`` out of a 100 __UNIT__ span."""

    def __init__(self) -> None:
        self.value = 12.34

    def read_u16(self) -> int:
        return round(self.value / 100 * 65535)


def wire(hal: SimHAL, entry: dict) -> Simulated__CLASS__:
    device = Simulated__CLASS__()
    hal.adcs[entry["pins"]["adc"]] = device
    return device


def unplug(hal: SimHAL, entry: dict) -> None:
    hal.adcs[entry["pins"]["adc"]].value = 0.0
''',
}

_PINS = {"i2c": "{ sda = 21, scl = 22 }", "uart": "{ tx = 17, rx = 16 }", "adc": "{ adc = 34 }"}
_FAULT = {"i2c": "no answer at I2C address 0x40", "uart": "no reply", "adc": "reads 0 V"}

_TEST = '''"""Tests of the __NAME__ driver against a simulated device: its reading, a fault, the ports'
MicroPython API, and its readings over the serial link and MQTT. Written by `edgectl firmware
new-driver`; when you change the driver to your datasheet, change the simulated device with it."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest
from streetfw import sensor
from streetfw.sensor import SensorError

from agent.config import load_config
from agent.events import READING, decode
from agent.runtime import AgentContext, run_agent
from firmware.sim.board import SimulatedBoard
__SIMIMPORT__
from tools.board_cli.board_setup import load_setup
from tools.broker import Broker

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "firmware" / "lib" / "__NAME__.py"
SETUP = ROOT / "setup" / "__NAME__.toml"

__DEVICE__

def entry() -> dict:
    return load_setup(SETUP).document()["sensors"][0]


def test_the_driver_reads_the_simulated_device() -> None:
    hal = SimHAL(World())
    device = wire(hal, entry())
    driver = sensor.create(hal, entry())
    assert driver.read() == {"__KEY__": pytest.approx(12.34, abs=0.01)}
    device.value = 56.78
    assert driver.read() == {"__KEY__": pytest.approx(56.78, abs=0.01)}
    assert driver.UNITS == {"__KEY__": "__UNIT__"}


def test_a_silent_device_is_a_named_fault() -> None:
    hal = SimHAL(World())
    wire(hal, entry())
    driver = sensor.create(hal, entry())
    unplug(hal, entry())
    with pytest.raises(SensorError, match="__FAULT__"):
        driver.read()


def test_the_driver_fits_the_ports_micropython() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.edgectl", "firmware", "check", str(DRIVER)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readings_of_the_driver_reach_mqtt(tmp_path: Path) -> None:
    setup = load_setup(SETUP).document()
    setup["report_interval_s"] = 1
    hal = SimHAL(World(), setup)
    wire(hal, setup["sensors"][0])
    broker = Broker(tmp_path / "broker")
    broker.start()
    board = SimulatedBoard(setup, hal=hal).start()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[device]\\nid = "gw-test"\\n[uplink]\\nurl = "{broker.url}"\\n'
        f'[outbox]\\npath = "{tmp_path / "outbox.sqlite"}"\\n'
        f'[[boards]]\\nid = "{setup["board_id"]}"\\nport = "{board.port}"\\n'
    )

    async def first_reading():
        ctx = AgentContext(config=load_config(config), config_path=config)
        agent = asyncio.create_task(run_agent(ctx))
        try:
            async with aiomqtt.Client(broker.host, broker.port) as client:
                await client.subscribe("+/gw-test/evt/#", qos=1)
                async with asyncio.timeout(60):
                    async for message in client.messages:
                        event = decode(message.payload)
                        if event.kind == READING and event.sensor == "__NAME__":
                            return event
        finally:
            ctx.stopping.set()
            with contextlib.suppress(asyncio.CancelledError):
                await agent

    try:
        event = asyncio.run(first_reading())
    finally:
        board.close()
        broker.stop()
    assert event.values["__KEY__"] == pytest.approx(12.34, abs=0.01)
    assert event.units == {"__KEY__": "__UNIT__"}
'''

_CONFTEST = '''"""Puts the drivers in firmware/lib on the path, as the board does with /fw/<version>/lib, and makes
`streetfw` importable under CPython (the board's name for firmware.streetfw)."""

from __future__ import annotations

import sys
from pathlib import Path

import firmware  # noqa: F401  (installs the streetfw alias)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware" / "lib"))
'''

_SETUP = """# A board with the __NAME__ sensor: `edgectl board provision setup/__NAME__.toml --port PORT`.
# Copy the [[sensors]] entry into your pole's board setup to add the sensor to it.
board_id = "dev-__DASHED__"
report_interval_s = 60

[[sensors]]
type = "__NAME__"
id = "__NAME__"
pins = __PINS__  # your board's pins (firmware/profiles/*.json list them)
interval_s = 10
thresholds = { __KEY__ = 50.0 }  # an alarm above this; set yours
"""


def render(spec: DriverSpec) -> dict[str, str]:
    """The files to write, relative to the integrator's project root."""
    subs = {
        "__NAME__": spec.name,
        "__CLASS__": spec.class_name,
        "__KEY__": spec.key,
        "__UNIT__": spec.unit,
        "__SEVERITY__": spec.severity,
        "__BUS__": {"i2c": "I2C", "uart": "a UART", "adc": "an ADC pin"}[spec.bus],
        "__PINS__": _PINS[spec.bus],
        "__FAULT__": _FAULT[spec.bus],
        "__DASHED__": spec.name.replace("_", "-"),
    }

    def fill(text: str) -> str:
        for k, v in subs.items():
            text = text.replace(k, v)
        return text

    names = "I2CDevice, SimHAL, World" if spec.bus == "i2c" else "SimHAL, World"
    test = _TEST.replace("__DEVICE__", _DEVICES[spec.bus])
    test = test.replace("__SIMIMPORT__", f"from firmware.sim.hal import {names}")
    return {
        f"firmware/lib/{spec.name}.py": fill(_HEAD + _DRIVERS[spec.bus]),
        f"tests/drivers/test_{spec.name}.py": fill(test),
        "tests/drivers/conftest.py": _CONFTEST,
        f"setup/{spec.name}.toml": fill(_SETUP),
    }


def write_driver(spec: DriverSpec, root: Path, force: bool = False) -> list[Path]:
    """Write the skeleton under ``root``; refuses to overwrite a driver unless ``force``."""
    check_spec(spec)
    files = render(spec)
    taken = [rel for rel in files if (root / rel).exists() and not rel.endswith("conftest.py")]
    if taken and not force:
        raise EdgectlError(f"{', '.join(taken)} exist under {root}; pass --force to replace them", USAGE)
    written = []
    for rel, text in files.items():
        path = root / rel
        if rel.endswith("conftest.py") and path.exists():
            continue  # shared by every driver's tests
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def register(cmds: argparse._SubParsersAction) -> None:
    new = cmds.add_parser(
        "new-driver",
        help="write a driver skeleton for a new sensor, its tests and its board-setup entry",
        description="Writes firmware/lib/NAME.py (a working driver for a plausible device on the bus), "
        "tests/drivers/test_NAME.py (against a simulated device, the ports' MicroPython API, and its "
        "readings over MQTT) and setup/NAME.toml, under --root. Then edit them to your datasheet: "
        "docs/firmware-sdk.md.",
    )
    new.add_argument("name", help="module name and sensor type, e.g. flood_gauge")
    new.add_argument("--bus", choices=BUSES, default="i2c", help="how the sensor is wired (default i2c)")
    new.add_argument("--key", default="value", help="name of the value it reports (default: value)")
    new.add_argument("--unit", default="1", help="unit of that value, e.g. cm, mg/m3 (default: 1)")
    new.add_argument(
        "--severity", choices=("info", "warning", "critical"), default="warning", help="of its alarms"
    )
    new.add_argument("--root", type=Path, default=Path("."), help="project folder (default: .)")
    new.add_argument("--force", action="store_true", help="replace the driver's files if they exist")
    new.set_defaults(func=cmd_new_driver)


def cmd_new_driver(args: argparse.Namespace) -> int:
    spec = DriverSpec(args.name, args.bus, args.key, args.unit, args.severity)
    for path in write_driver(spec, args.root, args.force):
        print(f"wrote {path}")
    if not (args.root / "firmware" / "streetfw").is_dir():
        # Outside a checkout, the project's own firmware/ folder would hide our firmware package.
        print(
            f"note: {args.root} is not a checkout of this repository; run its tests from one: "
            f"python -m pytest --rootdir {args.root} {args.root / 'tests' / 'drivers'}"
        )
    print(
        f"next: edit firmware/lib/{spec.name}.py to your datasheet, then run "
        f"`python -m pytest tests/drivers/test_{spec.name}.py` and `edgectl firmware check "
        f"firmware/lib/{spec.name}.py` (docs/firmware-sdk.md)"
    )
    return 0
