"""The simulated HAL: the methods of firmware/streetfw/hal.py's MachineHAL, backed by simulated devices
that produce the bytes the real ones do (PMS5003 frames with checksums, SHT3x words with CRC-8,
ADXL345 and MPU-6050 registers, a microphone's samples, an ultrasonic echo), from a World whose
physical quantities a scenario changes while the firmware runs. CPython only.

Contents, by ``# --`` section: ``World`` (the quantities); PMS5003 (UART frames); I2C devices (SHT3x,
ADXL345, MPU-6050 and the bus that routes to them); analog, pins, PWM (microphone, level ADC, pins,
PWM, watchdog); the HAL (``SimHAL``, what the firmware calls). One module because generated driver
tests import its device classes by this path (tools/driver_template.py).
"""

from __future__ import annotations

import errno
import math
import random
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from firmware.streetfw.drivers.sht3x import crc8
from firmware.streetfw.hal import _bus_id

from .dials import SimReset

TICKS_PERIOD = 1 << 30  # MicroPython's ticks_ms wraps here
MIC_OFFSET_DB = 30.0  # the simulated microphone: SPL = 20·log10(rms counts) + 30 (set db_offset = 30)


@dataclass
class World:
    """What the sensors measure. Scenarios write these while the board runs."""

    pm1_0: float = 12.0
    pm2_5: float = 18.0
    pm10: float = 29.0
    temperature_c: float = 21.5
    humidity_pct: float = 55.0
    tilt_deg: float = 0.8
    noise_db: float = 62.0
    water_level_cm: float = 2.0
    mount_cm: float = 100.0  # where the ultrasonic sensor hangs above the dry bottom


def nack() -> OSError:
    return OSError(errno.ENODEV, "ENODEV")  # what machine.I2C raises when no device acknowledges


# -- PMS5003 ---------------------------------------------------------------------------------------------


def pms_frame(pm1_0: float, pm2_5: float, pm10: float, counts: tuple[int, ...] = (0,) * 6) -> bytes:
    """A PMS5003 active-mode frame: CF=1 and atmospheric values (equal here), counts, checksum."""
    atm = [max(0, min(0xFFFF, round(v))) for v in (pm1_0, pm2_5, pm10)]
    words = [*atm, *atm, *(max(0, min(0xFFFF, c)) for c in counts), 0]
    body = b"\x42\x4d" + struct.pack(">H", 28) + struct.pack(">13H", *words)
    return body + struct.pack(">H", sum(body) & 0xFFFF)


class SimPMS5003:
    """The sensor's UART as the board sees it: a frame about every second, buffered like a UART."""

    def __init__(self, world: World, period_s: float = 1.0) -> None:
        self.world = world
        self.period_s = period_s
        self.buf = bytearray()
        self.next_at = time.monotonic()  # the first frame is there at once
        self.corrupt_next = False
        self.silent = False  # unplugged sensor or stopped fan

    def _pump(self) -> None:
        now = time.monotonic()
        while self.next_at <= now:
            self.next_at += self.period_s
            if self.silent:
                continue
            w = self.world
            frame = bytearray(
                pms_frame(w.pm1_0, w.pm2_5, w.pm10, (round(w.pm2_5 * 60), 0, 0, round(w.pm2_5 * 2), 0, 0))
            )
            if self.corrupt_next:
                frame[9] ^= 0x10
                self.corrupt_next = False
            self.buf += frame
        del self.buf[:-256]  # the UART's receive buffer keeps the newest bytes

    def any(self) -> int:
        self._pump()
        return len(self.buf)

    def read(self, n: int = -1) -> bytes | None:
        self._pump()
        if not self.buf:
            return None
        n = len(self.buf) if n < 0 else n
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def readinto(self, buf: Any) -> int | None:
        data = self.read(len(buf))
        if not data:
            return None
        buf[: len(data)] = data
        return len(data)

    def write(self, data: bytes) -> int:
        return len(data)  # commands (passive mode, sleep) are not simulated


# -- I2C devices -------------------------------------------------------------------------------------------


class I2CDevice:
    absent = False  # fault: the device does not acknowledge its address

    def read_reg(self, reg: int, n: int) -> bytes:
        raise nack()

    def write_reg(self, reg: int, data: bytes) -> None:
        raise nack()

    def write(self, data: bytes) -> None:
        raise nack()

    def read(self, n: int) -> bytes:
        raise nack()


class SimSHT3x(I2CDevice):
    def __init__(self, world: World) -> None:
        self.world = world
        self.started: float | None = None
        self.corrupt_next = False

    def write(self, data: bytes) -> None:
        if bytes(data[:2]) == b"\x24\x00":
            self.started = time.monotonic()

    def read(self, n: int) -> bytes:
        if self.started is None or time.monotonic() - self.started < 0.0125:
            raise nack()  # no measurement, or still converting: the SHT3x NACKs its read header
        self.started = None
        t = round((self.world.temperature_c + 45) / 175 * 65535)
        rh = round(self.world.humidity_pct / 100 * 65535)
        t, rh = max(0, min(65535, t)), max(0, min(65535, rh))
        tw, hw = struct.pack(">H", t), struct.pack(">H", rh)
        out = bytearray(tw + bytes([crc8(tw)]) + hw + bytes([crc8(hw)]))
        if self.corrupt_next:
            out[1] ^= 0x04
            self.corrupt_next = False
        return bytes(out[:n])


def _gravity(tilt_deg: float, rng: random.Random) -> tuple[float, float, float]:
    a = math.radians(tilt_deg)
    return math.sin(a) + rng.gauss(0, 0.004), rng.gauss(0, 0.004), math.cos(a) + rng.gauss(0, 0.004)


class SimADXL345(I2CDevice):
    def __init__(self, world: World) -> None:
        self.world = world
        self.regs = {0x2D: 0x00, 0x31: 0x00}
        self.rng = random.Random(1)

    def write_reg(self, reg: int, data: bytes) -> None:
        self.regs[reg] = data[0]

    def read_reg(self, reg: int, n: int) -> bytes:
        if reg == 0x00:
            return bytes([0xE5])[:n]
        if reg == 0x32:
            if not self.regs[0x2D] & 0x08:
                return bytes(n)  # standby: no measurements
            lsb = 0.0039 if self.regs[0x31] & 0x08 else 4.0 / 1024  # full resolution, or 10-bit ±2 g
            x, y, z = (
                max(-32768, min(32767, round(v / lsb))) for v in _gravity(self.world.tilt_deg, self.rng)
            )
            return struct.pack("<hhh", x, y, z)[:n]
        return bytes([self.regs.get(reg, 0)])[:n]


class SimMPU6050(I2CDevice):
    def __init__(self, world: World) -> None:
        self.world = world
        self.regs = {0x6B: 0x40}  # powers up asleep
        self.rng = random.Random(2)

    def write_reg(self, reg: int, data: bytes) -> None:
        self.regs[reg] = data[0]

    def read_reg(self, reg: int, n: int) -> bytes:
        if reg == 0x75:
            return bytes([0x68])[:n]
        if reg == 0x3B:
            if self.regs[0x6B] & 0x40:
                return bytes(n)  # asleep
            x, y, z = (
                max(-32768, min(32767, round(v * 16384))) for v in _gravity(self.world.tilt_deg, self.rng)
            )
            return struct.pack(">hhh", x, y, z)[:n]
        return bytes([self.regs.get(reg, 0)])[:n]


class SimI2C:
    """A bus with devices by address; the machine.I2C methods the drivers use."""

    def __init__(self) -> None:
        self.devices: dict[int, I2CDevice] = {}
        self.lock = threading.Lock()

    def _dev(self, addr: int) -> I2CDevice:
        dev = self.devices.get(addr)
        if dev is None or dev.absent:
            raise nack()
        return dev

    def scan(self) -> list[int]:
        return sorted(a for a, d in self.devices.items() if not d.absent)

    def readfrom_mem(self, addr: int, reg: int, n: int) -> bytes:
        with self.lock:
            return self._dev(addr).read_reg(reg, n)

    def readfrom_mem_into(self, addr: int, reg: int, buf: Any) -> None:
        data = self.readfrom_mem(addr, reg, len(buf))
        buf[: len(data)] = data

    def writeto_mem(self, addr: int, reg: int, buf: bytes) -> None:
        with self.lock:
            self._dev(addr).write_reg(reg, bytes(buf))

    def writeto(self, addr: int, buf: bytes) -> int:
        with self.lock:
            self._dev(addr).write(bytes(buf))
        return 1

    def readfrom(self, addr: int, n: int) -> bytes:
        with self.lock:
            return self._dev(addr).read(n)

    def readfrom_into(self, addr: int, buf: Any) -> None:
        data = self.readfrom(addr, len(buf))
        buf[: len(data)] = data


# -- analog, pins, PWM -------------------------------------------------------------------------------------


class SimMicrophone:
    """An electret microphone with amplifier on an ADC: a 1 kHz tone sampled at 8 kHz around mid-scale."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.phase = 0
        self.rng = random.Random(3)

    def read_u16(self) -> int:
        rms = 10 ** ((self.world.noise_db - MIC_OFFSET_DB) / 20)
        amplitude = rms * math.sqrt(2)
        self.phase = (self.phase + 1) % 8
        v = 32768 + amplitude * math.sin(2 * math.pi * self.phase / 8) + self.rng.gauss(0, 2)
        return max(0, min(65535, round(v)))


class SimLevelADC:
    def __init__(self, world: World, span_cm: float, zero_cm: float) -> None:
        self.world = world
        self.span_cm = span_cm
        self.zero_cm = zero_cm

    def read_u16(self) -> int:
        share = (self.world.water_level_cm - self.zero_cm) / self.span_cm
        return max(0, min(65535, round(share * 65535)))


class SimPin:
    def __init__(self, number: int) -> None:
        self.number = number
        self.level = 0

    def value(self, v: int | None = None) -> int:
        if v is not None:
            self.level = 1 if v else 0
        return self.level


class SimPWM:
    def __init__(self, pin: int, freq: int) -> None:
        self.pin = pin
        self._freq = freq
        self.duty = 0

    def duty_u16(self, value: int | None = None) -> int:
        if value is not None:
            if not 0 <= value <= 65535:
                raise ValueError("duty out of range")
            self.duty = value
        return self.duty

    def freq(self, f: int | None = None) -> int:
        if f is not None:
            self._freq = f
        return self._freq


class SimWatchdog:
    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.feeds = 0

    def feed(self) -> None:
        self.feeds += 1


# -- the HAL -------------------------------------------------------------------------------------------------


class SimHAL:
    """MachineHAL's methods over the simulated devices that ``setup`` (the board's config document)
    wires to its pins."""

    def __init__(
        self, world: World | None = None, setup: dict[str, Any] | None = None, start_ms: int = 0
    ) -> None:
        self.world = world or World()
        self.setup = setup or {"sensors": []}
        self.offset_ms = start_ms - int(time.monotonic() * 1000)
        self.uarts: dict[tuple[int, int], SimPMS5003] = {}
        self.buses: dict[tuple[int, int], SimI2C] = {}
        self.adcs: dict[int, Any] = {}
        self.echo: dict[int, float] = {}  # echo pin -> mount_cm
        self.pwms: dict[int, SimPWM] = {}
        self.devices: dict[str, Any] = {}
        self.intr: list[int] = []
        self.watchdogs: list[SimWatchdog] = []
        self.resets = 0
        # The board family's profile, as provisioning ships it: the simulated board refuses the pins
        # the real one would refuse (an ADC on a pin without one, a UART on pins of no UART).
        self.profile: dict[str, Any] | None = self.setup.get("profile")
        self._pairs: dict[str, list[tuple[int, int]]] = {"uart": [], "i2c": []}
        for entry in self.setup.get("sensors", []):
            self._wire(entry)

    def _wire(self, entry: dict[str, Any]) -> None:
        kind, pins = entry["type"], entry.get("pins", {})
        name = entry.get("id") or kind
        cal = entry.get("calibration") or {}
        w = self.world
        if kind == "pms5003":
            dev: Any = SimPMS5003(w)
            self.uarts[(pins["tx"], pins["rx"])] = dev
        elif kind in ("sht3x", "adxl345", "mpu6050"):
            bus = self.buses.setdefault((pins["sda"], pins["scl"]), SimI2C())
            cls, default = {
                "sht3x": (SimSHT3x, 0x44),
                "adxl345": (SimADXL345, 0x53),
                "mpu6050": (SimMPU6050, 0x68),
            }[kind]
            dev = cls(w)
            bus.devices[entry.get("i2c_address") or default] = dev
        elif kind == "noise":
            dev = SimMicrophone(w)
            self.adcs[pins["adc"]] = dev
        elif kind == "water_analog":
            dev = SimLevelADC(w, float(cal.get("span_cm", 100.0)), float(cal.get("zero_cm", 0.0)))
            self.adcs[pins["adc"]] = dev
        elif kind == "water_ultrasonic":
            dev = self.echo
            self.echo[pins["echo"]] = float(cal.get("mount_cm", w.mount_cm))
        else:
            return  # an integrator's sensor: its test wires its own device
        self.devices[name] = dev

    def device(self, name: str) -> Any:
        """A simulated device by sensor name, for fault injection (``corrupt_next``, ``absent``, ...)."""
        return self.devices[name]

    # -- buses ---------------------------------------------------------------------------------------
    def _check_bus(self, kind: str, a: int, b: int) -> None:
        if self.profile is not None:
            pairs = self._pairs[kind]
            if (a, b) not in pairs:
                pairs.append((a, b))
            _bus_id(self.profile, kind, a, b, pairs.index((a, b)))

    def uart(self, tx: int, rx: int, baudrate: int) -> SimPMS5003:
        self._check_bus("uart", tx, rx)
        try:
            return self.uarts[(tx, rx)]
        except KeyError:
            raise ValueError(
                f"nothing is wired to UART pins tx={tx} rx={rx} on the simulated board"
            ) from None

    def i2c(self, sda: int, scl: int, freq: int = 100000) -> SimI2C:
        self._check_bus("i2c", sda, scl)
        return self.buses.setdefault((sda, scl), SimI2C())

    def adc(self, pin: int) -> Any:
        allowed = (self.profile or {}).get("adc_pins")
        if allowed and pin not in allowed:
            raise ValueError(f"pin {pin} has no ADC on {self.profile['family']} (use one of {allowed})")
        if pin not in self.adcs:
            raise ValueError(f"nothing is wired to ADC pin {pin} on the simulated board")
        return self.adcs[pin]

    def pwm(self, pin: int, freq: int) -> SimPWM:
        self.pwms[pin] = SimPWM(pin, freq)
        return self.pwms[pin]

    def pin_out(self, pin: int) -> SimPin:
        return SimPin(pin)

    def pin_in(self, pin: int) -> SimPin:
        return SimPin(pin)

    def time_pulse_us(self, pin: Any, level: int, timeout_us: int) -> int:
        number = pin.number if isinstance(pin, SimPin) else pin
        if number not in self.echo:
            return -2  # nothing answers: timeout
        distance = self.echo[number] - self.world.water_level_cm
        us = round(distance * 58.0)
        return us if 0 < us <= timeout_us else -2

    # -- time ------------------------------------------------------------------------------------------
    def ticks_ms(self) -> int:
        return (int(time.monotonic() * 1000) + self.offset_ms) % TICKS_PERIOD

    def ticks_diff(self, a: int, b: int) -> int:
        d = (a - b) % TICKS_PERIOD
        return d - TICKS_PERIOD if d >= TICKS_PERIOD // 2 else d

    def sleep_ms(self, ms: int) -> None:
        time.sleep(ms / 1000)

    def sleep_us(self, us: int) -> None:
        time.sleep(us / 1_000_000)

    # -- control -----------------------------------------------------------------------------------------
    def watchdog(self, timeout_ms: int) -> SimWatchdog:
        wdt = SimWatchdog(timeout_ms)
        self.watchdogs.append(wdt)
        return wdt

    def reset(self) -> None:
        self.resets += 1
        raise SimReset()

    def kbd_intr(self, ch: int) -> None:
        self.intr.append(ch)
