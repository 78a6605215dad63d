# The hardware abstraction of the firmware: the few things the drivers and the main loop need from
# `machine`, behind one object, so that the same code runs on a board (MachineHAL) and under CPython
# against simulated devices (firmware/sim/hal.py offers the same methods).
import time

try:
    import machine
    import micropython
except ImportError:  # CPython: only the simulated HAL is usable there
    machine = None  # type: ignore[assignment]
    micropython = None  # type: ignore[assignment]

PROFILE_DIR = "/profiles"


def load_profile(family, folder=PROFILE_DIR):
    import json

    with open(folder + "/" + family + ".json") as f:
        return json.load(f)


class MachineHAL:
    """`machine` on a real board. ``profile`` is the board family's data (firmware/profiles/*.json):
    which UART and I2C peripherals exist and which pins they may use."""

    def __init__(self, profile=None):
        self.profile = profile or {"family": "esp32", "uart_ids": [1, 2], "i2c_ids": [0, 1]}
        self._i2c = {}
        self._uarts = 0

    # -- buses --------------------------------------------------------------------------------------
    def uart(self, tx, rx, baudrate):
        uid = _bus_id(self.profile, "uart", tx, rx, self._uarts)
        self._uarts += 1
        return machine.UART(uid, baudrate=baudrate, tx=tx, rx=rx, rxbuf=512)

    def i2c(self, sda, scl, freq=100000):
        key = (sda, scl)
        if key not in self._i2c:
            bid = _bus_id(self.profile, "i2c", sda, scl, len(self._i2c))
            self._i2c[key] = machine.I2C(bid, sda=machine.Pin(sda), scl=machine.Pin(scl), freq=freq)
        return self._i2c[key]

    def adc(self, pin):
        allowed = self.profile.get("adc_pins")
        if allowed and pin not in allowed:
            raise ValueError(
                "pin %d has no ADC on %s (use one of %s)" % (pin, self.profile["family"], allowed)
            )
        adc = machine.ADC(machine.Pin(pin))
        if hasattr(adc, "atten") and hasattr(machine.ADC, "ATTN_11DB"):
            adc.atten(machine.ADC.ATTN_11DB)  # ESP32: full 0-3.3 V range
        return adc

    def pwm(self, pin, freq):
        return machine.PWM(machine.Pin(pin), freq=freq)

    def pin_out(self, pin):
        return machine.Pin(pin, machine.Pin.OUT)

    def pin_in(self, pin):
        return machine.Pin(pin, machine.Pin.IN)

    def time_pulse_us(self, pin, level, timeout_us):
        return machine.time_pulse_us(pin, level, timeout_us)

    # -- time -------------------------------------------------------------------------------------------
    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def sleep_ms(self, ms):
        time.sleep_ms(ms)

    def sleep_us(self, us):
        time.sleep_us(us)

    # -- control ----------------------------------------------------------------------------------------
    def watchdog(self, timeout_ms):
        return machine.WDT(timeout=timeout_ms)

    def reset(self):
        machine.reset()

    def kbd_intr(self, ch):
        micropython.kbd_intr(ch)

    def link(self):
        uart = self.profile.get("link_uart")
        if uart:
            return UartLink(
                machine.UART(uart["id"], baudrate=uart.get("baud", 115200), tx=uart["tx"], rx=uart["rx"])
            )
        return StdioLink()


def _bus_id(profile, kind, a, b, index):
    """The peripheral id for a pair of pins: any id on families with a pin matrix (ESP32), the id
    whose pin groups contain both pins on families with fixed pins (RP2040)."""
    groups = profile.get(kind + "_pins")
    if not groups:
        ids = profile.get(kind + "_ids") or [0]
        if index >= len(ids):
            raise ValueError("%s has only %d %s buses" % (profile.get("family"), len(ids), kind.upper()))
        return ids[index]
    for bus_id in groups:
        pins = groups[bus_id]
        if a in pins[0] and b in pins[1]:
            return int(bus_id)
    raise ValueError(
        "pins %d and %d cannot form a %s bus on %s" % (a, b, kind.upper(), profile.get("family"))
    )


class UartLink:
    """The gateway link on a UART of its own."""

    def __init__(self, uart):
        self.uart = uart

    def any(self):
        return self.uart.any()

    def readinto(self, buf):
        if not self.uart.any():
            return 0
        return self.uart.readinto(buf) or 0

    def write(self, data):
        self.uart.write(data)


class StdioLink:
    """The gateway link on the USB REPL (sys.stdin/stdout), polled without blocking."""

    def __init__(self):
        import select
        import sys

        self.inp = sys.stdin.buffer
        self.out = sys.stdout.buffer
        self.poll = select.poll()
        self.poll.register(sys.stdin, select.POLLIN)

    def any(self):
        return 1 if self.poll.poll(0) else 0

    def readinto(self, buf):
        n = 0
        while n < len(buf) and self.poll.poll(0):
            b = self.inp.read(1)
            if not b:
                break
            buf[n] = b[0]
            n += 1
        return n

    def write(self, data):
        self.out.write(data)
