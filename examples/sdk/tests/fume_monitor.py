"""A simulated cooking-fume monitor: answers Modbus RTU read requests on the board's UART, like the
real one, from values the test sets. CPython only (it stands for the device, not the firmware)."""

from __future__ import annotations

import struct

from cooking_fume import crc16


class FumeMonitor:
    def __init__(self, slave: int = 1) -> None:
        self.slave = slave
        self.fume_mg_m3 = 0.4
        self.pm_mg_m3 = 0.8
        self.nmhc_mg_m3 = 1.5
        self.corrupt_next = False
        self.pending = b""
        self.requests = 0

    # the UART methods the driver uses
    def any(self) -> int:
        return len(self.pending)

    def read(self, n: int = -1) -> bytes:
        out, self.pending = self.pending, b""
        return out

    def readinto(self, buf) -> int:
        n = min(len(buf), len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def write(self, data: bytes) -> int:
        data = bytes(data)
        self.requests += 1
        ok = len(data) == 8 and data[0] == self.slave and data[1] == 0x03
        if not ok or crc16(data[:-2]) != data[6] | data[7] << 8:
            return len(data)  # a real slave ignores a request that is not for it or is corrupt
        words = [round(v * 100) for v in (self.fume_mg_m3, self.pm_mg_m3, self.nmhc_mg_m3)]
        reply = bytearray(bytes((self.slave, 0x03, 6)) + struct.pack(">3H", *words))
        crc = crc16(reply)
        reply += bytes((crc & 0xFF, crc >> 8))
        if self.corrupt_next:
            reply[4] ^= 0x01
            self.corrupt_next = False
        self.pending = bytes(reply)
        return len(data)
