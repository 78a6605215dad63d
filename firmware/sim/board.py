"""A simulated sensor board on a pseudo-terminal: the real firmware (streetfw.app) under CPython, with
simulated devices behind the HAL, and a serial line with the faults of a street cabinet.

The agent opens ``port`` (a stable symlink to the current pseudo-terminal) with pyserial exactly as a
real board's ``/dev/ttyUSB0``. A pseudo-terminal has no baud rate, so the board paces what it sends
at the configured one. Faults: bit flips at a given bit-error rate and dropped bytes, in both
directions, and unplugging (the pseudo-terminal disappears) and replugging (a new one behind the same
symlink, as udev's /dev/serial/by-id links do).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import tempfile
import threading
import time
import tty
from pathlib import Path
from typing import Any

from firmware.streetfw.app import CONFIG_PATH, Board, load_config

from .dials import SimReset
from .micropython_repl import BANNER, MicroPythonRepl


class LineFaults:
    """Bit flips and dropped bytes on one direction of the line."""

    def __init__(self, ber: float = 0.0, drop: float = 0.0, seed: int | None = None) -> None:
        self.ber = ber
        self.drop = drop
        self.rng = random.Random(seed)
        self.flipped = 0
        self.dropped = 0

    def apply(self, data: bytes) -> bytes:
        if not self.ber and not self.drop:
            return data
        out = bytearray()
        for b in data:
            if self.drop and self.rng.random() < self.drop:
                self.dropped += 1
                continue
            if self.ber:
                # Bits in error among 8: drawing per byte keeps the cost down at realistic rates.
                p_byte = 1 - (1 - self.ber) ** 8
                if self.rng.random() < p_byte:
                    b ^= 1 << self.rng.randrange(8)
                    self.flipped += 1
            out.append(b)
        return bytes(out)


class PtyLink:
    """The board's end of the line, modelled on a UART: writes go into a transmit buffer that a
    thread drains at the baud rate (a writer blocks only while the buffer is full); reads are
    non-blocking."""

    CHUNK = 16  # bytes handed to the pseudo-terminal at a time

    def __init__(
        self, baud: int, tx_faults: LineFaults, rx_faults: LineFaults, buffer_bytes: int = 512
    ) -> None:
        self.baud = baud
        self.tx_faults = tx_faults  # board -> gateway
        self.rx_faults = rx_faults  # gateway -> board
        self.buffer_bytes = buffer_bytes
        self.fd = -1
        self.bytes_out = 0
        self.bytes_in = 0
        self._lock = threading.Lock()
        self._tx = bytearray()
        self._tx_ready = threading.Condition()
        self._closed = False
        self._sender = threading.Thread(target=self._drain, name="sim-uart-tx", daemon=True)
        self._sender.start()

    def attach(self, fd: int) -> None:
        with self._lock:
            self.fd = fd
        if fd < 0:
            with self._tx_ready:
                self._tx.clear()  # what was in flight when the cable was pulled is gone
                self._tx_ready.notify_all()

    def any(self) -> int:
        if self.fd < 0:
            return 0
        try:
            ready, _, _ = select.select([self.fd], [], [], 0)
        except (OSError, ValueError):
            return 0
        return 1 if ready else 0

    def readinto(self, buf: bytearray) -> int:
        if self.fd < 0 or not self.any():
            return 0
        try:
            data = os.read(self.fd, len(buf))
        except OSError:  # unplugged, or the agent closed its end
            return 0
        data = self.rx_faults.apply(data)
        self.bytes_in += len(data)
        buf[: len(data)] = data
        return len(data)

    def write(self, data: bytes) -> None:
        with self._tx_ready:
            while len(self._tx) + len(data) > self.buffer_bytes and self._tx and not self._closed:
                self._tx_ready.wait(0.5)  # the transmit buffer is full: wait as a UART driver does
            self._tx.extend(data)
            self.bytes_out += len(data)
            self._tx_ready.notify_all()

    def _drain(self) -> None:
        chunk_s = self.CHUNK * 10 / self.baud  # 10 bits per byte: start, 8 data, stop
        next_at = time.monotonic()
        while True:
            with self._tx_ready:
                while not self._tx and not self._closed:
                    self._tx_ready.wait()
                if self._closed:
                    return
                chunk = bytes(self._tx[: self.CHUNK])
                del self._tx[: self.CHUNK]
                self._tx_ready.notify_all()
            now = time.monotonic()
            next_at = max(next_at, now - chunk_s)  # an idle line does not bank time
            next_at += len(chunk) * 10 / self.baud
            self._send(self.tx_faults.apply(chunk))
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def _send(self, data: bytes) -> None:
        with self._lock:
            if self.fd < 0:
                return  # cable pulled: the bytes go nowhere, as on a real UART
            view = memoryview(data)
            deadline = time.monotonic() + 1.0
            while view and time.monotonic() < deadline:
                try:
                    n = os.write(self.fd, view)
                    view = view[n:]
                except BlockingIOError:
                    time.sleep(0.001)
                except OSError:
                    return

    def close(self) -> None:
        with self._tx_ready:
            self._closed = True
            self._tx_ready.notify_all()


class SimulatedBoard:
    """The firmware running in a thread against ``hal``, reachable at ``port``.

    ``setup`` is the board's config document (what ``edgectl board provision`` writes as
    /config.json): it is written to the flash when the flash has no config yet (the board was
    provisioned at the depot), and every boot starts from the flash's /config.json, as the firmware
    does on a board, so provisioning and rebooting the simulated board behaves as on a real one.
    Use as a context manager, or ``start()``/``close()``.
    """

    def __init__(
        self,
        setup: dict[str, Any],
        hal: Any = None,
        world: Any = None,
        port: str | Path | None = None,
        baud: int = 115200,
        ber: float = 0.0,
        drop: float = 0.0,
        seed: int | None = None,
        flash: Path | None = None,
        make_sensor: Any = None,
    ) -> None:
        self.setup = setup
        self.make_sensor = make_sensor  # tests: sensors without the simulated devices
        self._own_hal = hal is None  # rewired on a boot under a new config, as the new pins say
        if hal is None:
            from .hal import SimHAL, World

            self.world = world if world is not None else World()
            hal = SimHAL(self.world, setup)
        else:
            self.world = world
        self.hal = hal
        self._tmp = tempfile.TemporaryDirectory(prefix="sim-board-")
        self.port = str(port) if port else os.path.join(self._tmp.name, "ttyBOARD")
        self.flash = Path(flash) if flash else Path(self._tmp.name) / "flash"
        self.flash.mkdir(parents=True, exist_ok=True)
        self.link = PtyLink(
            baud, LineFaults(ber, drop, seed), LineFaults(ber, drop, None if seed is None else seed + 1)
        )
        self.board: Board | None = None
        self.boots = 0
        self.repl_requests = 0  # times a tool asked our firmware for the REPL
        self.plugged = threading.Event()
        self._controller = -1
        self._peripheral = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # -- the cable ------------------------------------------------------------------------------------
    def plug(self) -> None:
        controller, peripheral = os.openpty()
        tty.setraw(peripheral)
        tty.setraw(controller)
        os.set_blocking(controller, False)
        self._controller, self._peripheral = controller, peripheral
        tmp_link = self.port + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_link)
        os.symlink(os.ttyname(peripheral), tmp_link)
        os.replace(tmp_link, self.port)  # atomic: the agent never sees a missing or half-made link
        self.link.attach(controller)
        self.plugged.set()

    def unplug(self) -> None:
        """The cable is pulled: the port disappears. The board itself keeps running on its own power."""
        self.plugged.clear()
        self.link.attach(-1)
        with self.link._lock:
            for fd in (self._controller, self._peripheral):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._controller = self._peripheral = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.port)

    def replug(self) -> None:
        if self.plugged.is_set():
            self.unplug()
        self.plug()

    # -- lifetime -------------------------------------------------------------------------------------
    def start(self) -> SimulatedBoard:
        config = self.flash / CONFIG_PATH.lstrip("/")
        if not config.is_file():
            config.write_text(json.dumps(self.setup))
        self.plug()
        self._thread = threading.Thread(target=self._run, name="sim-board", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.boots += 1
            config = self.boot_config()
            if self._own_hal and config != self.hal.setup:
                from .hal import SimHAL

                self.hal = SimHAL(self.world, config)
            self.board = Board(
                self.hal,
                self.link,
                config,
                make_sensor=self.make_sensor,
                root=str(self.flash),
                version=self.installed_version(),
            )
            try:
                self._loop(self.board)
            except SimReset:
                continue  # a reboot command: the firmware starts again, with a new boot nonce
            except Exception as exc:
                self.error = exc
                raise
            if self.board.to_repl:
                # The firmware handed the line back to MicroPython's REPL, as on a board: tools use
                # the raw REPL, and a reset or a soft reboot into main.py starts the firmware again.
                self.repl_requests += 1
                self._repl_session()

    def _repl_session(self) -> None:
        repl = _FirmwareRepl(self)
        repl.write_prompt(b"\r\n" + BANNER + b">>> ")
        buf = bytearray(256)
        while not self._stop.is_set() and not repl.leave:
            n = self.link.readinto(buf)
            for byte in bytes(buf[:n]):
                repl.receive(byte)
            if not n:
                fd = self.link.fd
                if fd >= 0:
                    with contextlib.suppress(OSError, ValueError):
                        select.select([fd], [], [], 0.02)
                else:
                    time.sleep(0.02)

    def boot_config(self) -> dict[str, Any]:
        """The config a boot starts with: the flash's /config.json, read as the firmware reads it."""
        return load_config(str(self.flash / CONFIG_PATH.lstrip("/")))

    def installed_version(self) -> str:
        """The version the loader would start: /fw/current once something was flashed, else ours."""
        from firmware.streetfw import VERSION

        current = self.flash / "fw" / "current"
        if current.is_file():
            return current.read_text().strip() or VERSION
        return VERSION

    def _loop(self, board: Board) -> None:
        wdt = board.hal.watchdog(8000)
        board.hal.kbd_intr(-1)
        board.hello()
        for name, reason in board.errors:
            board.log("error", f"{name}: {reason}")
        while not self._stop.is_set() and not board.to_repl:
            wait = board.step()
            wdt.feed()
            # Sleep until the next sensor is due or a byte arrives, whichever is first.
            fd = self.link.fd
            if fd >= 0:
                with contextlib.suppress(OSError, ValueError):
                    select.select([fd], [], [], min(wait, 20) / 1000)
            else:
                time.sleep(min(wait, 20) / 1000)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.link.close()
        self.unplug()
        self._tmp.cleanup()

    def __enter__(self) -> SimulatedBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FirmwareRepl(MicroPythonRepl):
    """MicroPython's REPL on the simulated board's line, after our firmware handed it back."""

    def __init__(self, board: SimulatedBoard) -> None:
        super().__init__(board.flash)
        self.link = board.link
        self.leave = False  # a reset that runs main.py (our firmware) again

    def _write(self, data: bytes) -> None:
        self.link.write(data)

    def write_prompt(self, data: bytes) -> None:
        self._write(data)

    def _on_reset(self, hard: bool, run_main: bool) -> None:
        if not hard:
            self._write(b"MPY: soft reboot\r\n")
        if hard or run_main:
            self.leave = True
        else:
            self._mode = "raw"  # Ctrl-D in the raw REPL: a soft reboot that stays in it
