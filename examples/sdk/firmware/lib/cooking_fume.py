# Worked example of the firmware SDK (docs/firmware-sdk.md): a restaurant's cooking-fume monitor on
# RS-485, read with Modbus RTU through a UART and an RS-485 transceiver. We do not ship this sensor;
# this file is what an integrator writes for it.
#
# The monitor is a Modbus slave (address 1 by default). Function 0x03 reads holding registers:
#   0  oil fume concentration, 0.01 mg/m3      1  particulate matter, 0.01 mg/m3
#   2  non-methane hydrocarbons, 0.01 mg/m3
# (check your device's register map: vendors differ). A Modbus RTU frame ends with a CRC-16
# (polynomial 0xA001 reflected, initial 0xFFFF), low byte first.
from streetfw.sensor import Sensor, SensorError, register

REGISTERS = 3
REPLY_LEN = 5 + 2 * REGISTERS  # address, function, byte count, data, CRC


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def read_request(slave, first, count):
    """The 8-byte Modbus RTU request for ``count`` holding registers from ``first``."""
    frame = bytearray((slave, 0x03, first >> 8, first & 0xFF, count >> 8, count & 0xFF))
    crc = crc16(frame)
    frame.append(crc & 0xFF)
    frame.append(crc >> 8)
    return bytes(frame)


def parse_reply(frame, slave, count):
    """The register values of a reply; SensorError naming what is wrong with it."""
    if len(frame) >= 5 and frame[1] == 0x83:
        raise SensorError("cooking fume monitor: Modbus exception %d" % frame[2])
    if len(frame) != 5 + 2 * count:
        raise SensorError("cooking fume monitor: %d-byte reply, expected %d" % (len(frame), 5 + 2 * count))
    crc = crc16(frame[:-2])
    if frame[-2] != crc & 0xFF or frame[-1] != crc >> 8:
        raise SensorError("cooking fume monitor: CRC mismatch")
    if frame[0] != slave or frame[1] != 0x03 or frame[2] != 2 * count:
        raise SensorError("cooking fume monitor: reply from slave %d function %d" % (frame[0], frame[1]))
    return [(frame[3 + 2 * i] << 8) | frame[4 + 2 * i] for i in range(count)]


@register
class CookingFume(Sensor):
    TYPE = "cooking_fume"
    PINS = ("tx", "rx")
    UNITS = {"fume_mg_m3": "mg/m3", "pm_mg_m3": "mg/m3", "nmhc_mg_m3": "mg/m3"}
    SEVERITY = {"fume_mg_m3": "warning"}

    def setup(self):
        self.slave = int(self.options.get("modbus_address", 1))
        self.uart = self.hal.uart(self.pins["tx"], self.pins["rx"], int(self.options.get("baud", 9600)))
        self.request = read_request(self.slave, 0, REGISTERS)
        self.reply = bytearray(REPLY_LEN)

    def read(self):
        while self.uart.any():  # bytes left from an earlier, broken exchange
            self.uart.read()
        self.uart.write(self.request)
        self.hal.sleep_ms(50)  # 11 bytes at 9600 baud take 12 ms; the monitor answers within 40 ms
        got = self.uart.readinto(self.reply) if self.uart.any() else 0
        if not got:
            raise SensorError(
                "cooking fume monitor: no reply from slave %d (wiring, A/B swapped?)" % self.slave
            )
        fume, pm, nmhc = parse_reply(memoryview(self.reply)[:got], self.slave, REGISTERS)
        return {
            "fume_mg_m3": fume / 100 + self.offset("fume_mg_m3"),
            "pm_mg_m3": pm / 100,
            "nmhc_mg_m3": nmhc / 100,
        }
