# Sensirion SHT3x-class temperature and humidity sensor on I2C.
#
# Single-shot measurement, high repeatability, no clock stretching: command 0x24 0x00, then after
# the conversion (15 ms max) 6 bytes: temperature MSB, LSB, CRC, humidity MSB, LSB, CRC. The CRC is
# CRC-8 with polynomial 0x31 and initial value 0xFF (the datasheet's check: 0xBE 0xEF -> 0x92).
from ..sensor import Sensor, SensorError, register


def crc8(data):
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def convert(raw):
    """(temperature °C, relative humidity %) from the 6 bytes; SensorError on a CRC mismatch."""
    if len(raw) != 6:
        raise SensorError("SHT3x: %d bytes, expected 6" % len(raw))
    if crc8(raw[0:2]) != raw[2]:
        raise SensorError("SHT3x: temperature CRC mismatch")
    if crc8(raw[3:5]) != raw[5]:
        raise SensorError("SHT3x: humidity CRC mismatch")
    t = (raw[0] << 8) | raw[1]
    rh = (raw[3] << 8) | raw[4]
    return -45 + 175 * t / 65535, 100 * rh / 65535


@register
class SHT3x(Sensor):
    TYPE = "sht3x"
    PINS = ("sda", "scl")
    UNITS = {"temperature_c": "C", "humidity_pct": "%"}
    DEFAULT_ADDRESS = 0x44

    def setup(self):
        self.bus = self.i2c()
        self.raw = bytearray(6)
        self.cmd = bytes((0x24, 0x00))

    def read(self):
        try:
            self.bus.writeto(self.address, self.cmd)
            self.hal.sleep_ms(16)
            self.bus.readfrom_into(self.address, self.raw)
        except OSError as exc:
            raise SensorError("SHT3x at 0x%02x does not answer (%s)" % (self.address, exc)) from None
        t, rh = convert(self.raw)
        rh = min(100.0, max(0.0, rh + self.offset("humidity_pct")))
        return {"temperature_c": t + self.offset("temperature_c"), "humidity_pct": rh}
