"""An asyncio byte link over a pyserial port, for the board session.

pyserial has no asyncio API; on POSIX its port is a file descriptor, so reads are driven by the event
loop's reader callback and never block the loop. Frames are small (a few hundred bytes), so writes go
straight to the port. Bytes read and not yet consumed are bounded (``MAX_QUEUED``): above it the link
stops reading until the session catches up, so the kernel's buffer and the line hold the rest.
"""

from __future__ import annotations

import asyncio
import contextlib

import serial

MAX_QUEUED = 256 * 1024  # bytes read and not yet consumed by the session


class LinkClosed(ConnectionError):
    """The port went away (cable pulled, board reset its USB) or was closed."""


class SerialLink:
    def __init__(self, port: serial.Serial) -> None:
        self.port = port
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closed = False
        self._paused = False
        self._queued = 0
        self.pauses = 0  # times reading stopped because the session fell behind
        self.bytes_in = 0
        self.bytes_out = 0
        self._loop.add_reader(port.fileno(), self._readable)

    @classmethod
    async def open(cls, path: str, baud: int) -> SerialLink:
        # exclusive: a second agent or a technician's terminal must not read half the frames
        port = serial.Serial(path, baud, timeout=0, write_timeout=2, exclusive=True)
        with contextlib.suppress(OSError, serial.SerialException):
            port.reset_input_buffer()  # bytes from before we opened are someone else's conversation
        return cls(port)

    def _readable(self) -> None:
        try:
            data = self.port.read(self.port.in_waiting or 1)
        except (OSError, serial.SerialException, TypeError):
            data = b""
        if not data:  # readable but empty: the other end is gone
            self._shutdown()
            return
        self.bytes_in += len(data)
        self._queued += len(data)
        self._queue.put_nowait(data)
        if self._queued > MAX_QUEUED and not self._paused:
            self._paused = True
            self.pauses += 1
            self._loop.remove_reader(self.port.fileno())

    def _shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.port.fileno())
            self._queue.put_nowait(None)

    async def read(self) -> bytes:
        data = await self._queue.get()
        if data is None:
            self._queue.put_nowait(None)
            raise LinkClosed("the serial port closed")
        self._queued -= len(data)
        if self._paused and self._queued <= MAX_QUEUED // 2 and not self._closed:
            self._paused = False
            self._loop.add_reader(self.port.fileno(), self._readable)
        return data

    def write(self, data: bytes) -> None:
        if self._closed:
            raise LinkClosed("the serial port closed")
        try:
            self.port.write(data)
        except (OSError, serial.SerialException) as exc:
            self._shutdown()
            raise LinkClosed(f"write failed: {exc}") from None
        self.bytes_out += len(data)

    def close(self) -> None:
        self._shutdown()
        with contextlib.suppress(Exception):
            self.port.close()
