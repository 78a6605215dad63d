# Analog Devices ADXL345 accelerometer on I2C: manhole-cover tilt.
#
# DEVID (register 0x00) reads 0xE5. POWER_CTL (0x2D) = 0x08 starts measuring; DATA_FORMAT (0x31) =
# 0x08 selects full resolution at ±2 g, where one LSB is 3.9 mg. DATAX0 (0x32) starts 6 bytes:
# x, y, z as signed 16-bit little-endian.
import struct

from ..sensor import Sensor, SensorError, register
from .tilt import tilt_deg

DEVID = 0xE5
SCALE_G = 0.0039


def convert(raw):
    """(x, y, z) in g from the 6 data bytes."""
    x, y, z = struct.unpack("<hhh", raw)
    return x * SCALE_G, y * SCALE_G, z * SCALE_G


@register
class ADXL345(Sensor):
    TYPE = "adxl345"
    PINS = ("sda", "scl")
    UNITS = {"tilt_deg": "deg", "accel_g": "g"}
    SEVERITY = {"tilt_deg": "critical"}
    DEFAULT_ADDRESS = 0x53

    def setup(self):
        self.bus = self.i2c()
        self.raw = bytearray(6)
        self.ready = False

    def _start(self):
        try:
            devid = self.bus.readfrom_mem(self.address, 0x00, 1)[0]
            if devid != DEVID:
                raise SensorError(
                    "ADXL345: DEVID reads 0x%02x, expected 0xE5 (another chip at 0x%02x?)"
                    % (devid, self.address)
                )
            self.bus.writeto_mem(self.address, 0x31, b"\x08")
            self.bus.writeto_mem(self.address, 0x2D, b"\x08")
        except OSError as exc:
            raise SensorError("ADXL345 at 0x%02x does not answer (%s)" % (self.address, exc)) from None
        self.ready = True

    def read(self):
        if not self.ready:
            self._start()
        try:
            self.bus.readfrom_mem_into(self.address, 0x32, self.raw)
        except OSError as exc:
            self.ready = False  # set it up again once it answers: it may have lost power
            raise SensorError("ADXL345 at 0x%02x does not answer (%s)" % (self.address, exc)) from None
        x, y, z = convert(self.raw)
        return {
            "tilt_deg": tilt_deg(x, y, z) + self.offset("tilt_deg"),
            "accel_g": (x * x + y * y + z * z) ** 0.5,
        }
