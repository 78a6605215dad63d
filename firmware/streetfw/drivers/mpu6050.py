# InvenSense MPU-6050 accelerometer/gyroscope on I2C: manhole-cover tilt from its accelerometer.
#
# WHO_AM_I (0x75) reads 0x68. PWR_MGMT_1 (0x6B) = 0 wakes it from sleep. ACCEL_XOUT_H (0x3B) starts
# 6 bytes: x, y, z as signed 16-bit big-endian; at the default ±2 g range, 16384 LSB per g.
import struct

from ..sensor import Sensor, SensorError, register
from .tilt import tilt_deg

WHO_AM_I = 0x68
LSB_PER_G = 16384.0


def convert(raw):
    x, y, z = struct.unpack(">hhh", raw)
    return x / LSB_PER_G, y / LSB_PER_G, z / LSB_PER_G


@register
class MPU6050(Sensor):
    TYPE = "mpu6050"
    PINS = ("sda", "scl")
    UNITS = {"tilt_deg": "deg", "accel_g": "g"}
    SEVERITY = {"tilt_deg": "critical"}
    DEFAULT_ADDRESS = 0x68

    def setup(self):
        self.bus = self.i2c()
        self.raw = bytearray(6)
        self.ready = False

    def _start(self):
        try:
            who = self.bus.readfrom_mem(self.address, 0x75, 1)[0]
            if who != WHO_AM_I:
                raise SensorError("MPU-6050: WHO_AM_I reads 0x%02x, expected 0x68" % who)
            self.bus.writeto_mem(self.address, 0x6B, b"\x00")
        except OSError as exc:
            raise SensorError("MPU-6050 at 0x%02x does not answer (%s)" % (self.address, exc)) from None
        self.ready = True

    def read(self):
        if not self.ready:
            self._start()
        try:
            self.bus.readfrom_mem_into(self.address, 0x3B, self.raw)
        except OSError as exc:
            self.ready = False
            raise SensorError("MPU-6050 at 0x%02x does not answer (%s)" % (self.address, exc)) from None
        x, y, z = convert(self.raw)
        return {
            "tilt_deg": tilt_deg(x, y, z) + self.offset("tilt_deg"),
            "accel_g": (x * x + y * y + z * z) ** 0.5,
        }
