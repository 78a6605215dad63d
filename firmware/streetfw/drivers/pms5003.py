# Plantower PMS5003-class particulate sensor on a UART (9600 8N1, active mode).
#
# The sensor sends a 32-byte frame about once a second: 0x42 0x4D, a frame length of 28 (big-endian),
# 13 big-endian data words, and a 16-bit checksum that is the sum of the first 30 bytes. Words 1-3
# are PM1.0/2.5/10 at "standard particle" (CF=1, factory calibration), words 4-6 the same under
# atmospheric environment, which is what outdoor monitoring reports; words 7-12 count particles
# larger than 0.3/0.5/1/2.5/5/10 µm per 0.1 L of air.
import struct

from ..sensor import Sensor, SensorError, register

FRAME = 32
START = b"\x42\x4d"


def parse_frame(frame):
    """Values of one 32-byte frame; SensorError when it is not a valid one."""
    if len(frame) != FRAME or frame[0] != 0x42 or frame[1] != 0x4D:
        raise SensorError("PMS5003: frame does not start with 42 4D")
    length = (frame[2] << 8) | frame[3]
    if length != 28:
        raise SensorError("PMS5003: frame length %d, expected 28" % length)
    total = 0
    for i in range(30):
        total += frame[i]
    check = (frame[30] << 8) | frame[31]
    if total & 0xFFFF != check:
        raise SensorError("PMS5003: checksum %04x, computed %04x" % (check, total & 0xFFFF))
    w = struct.unpack(">13H", frame[4:30])
    return {
        "pm1_0": float(w[3]),
        "pm2_5": float(w[4]),
        "pm10": float(w[5]),
        "n0_3": float(w[6]),
        "n2_5": float(w[9]),
    }


def newest_frame(data):
    """The newest complete, valid frame in a burst of UART bytes, or None."""
    i = len(data) - FRAME
    while i >= 0:
        if data[i] == 0x42 and data[i + 1] == 0x4D:
            frame = data[i : i + FRAME]
            try:
                return parse_frame(frame)
            except SensorError:
                pass  # a torn or corrupted frame: try an older one
        i -= 1
    return None


@register
class PMS5003(Sensor):
    TYPE = "pms5003"
    PINS = ("tx", "rx")
    UNITS = {"pm1_0": "ug/m3", "pm2_5": "ug/m3", "pm10": "ug/m3", "n0_3": "/0.1L", "n2_5": "/0.1L"}
    SEVERITY = {"pm2_5": "warning", "pm10": "warning"}

    def setup(self):
        self.uart = self.hal.uart(self.pins["tx"], self.pins["rx"], 9600)
        self.buf = bytearray(4 * FRAME)
        self.last = None

    def read(self):
        got = self.uart.readinto(self.buf) if self.uart.any() else 0
        if got:
            values = newest_frame(memoryview(self.buf)[:got])
            if values is None:
                raise SensorError("PMS5003: no valid frame in %d bytes (checksum or framing)" % got)
            values["pm2_5"] += self.offset("pm2_5")
            values["pm10"] += self.offset("pm10")
            self.last = values
            return values
        raise SensorError("PMS5003: no data on the UART (wiring, power, or the fan is not running)")
