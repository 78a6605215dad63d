"""A simulated board that runs only stock MicroPython, with its REPL on a pseudo-terminal.

It speaks the REPL byte protocol the way MicroPython does (friendly REPL, raw REPL, raw-paste mode with
flow control, soft reboot on Ctrl-D, Ctrl-C interrupting a running ``main.py``), so the unmodified
``mpremote`` tool can list, copy and hash files on it, and ``edgectl board flash`` can install our
firmware on it exactly as on a fresh board from the box. Code sent to the REPL runs under CPython with
MicroPython's ``os``/``sys``/``machine`` surface laid over a folder that plays the board's flash.

The friendly REPL behaves as MicroPython's: it echoes the value of an expression, continues compound
statements with ``...`` and auto-indent, has paste mode (Ctrl-E), ``help()``, and imports modules from
the flash and ``/lib``. Given a baud rate, the board's bytes take the time they take on that line, so
progress and interruption can be practised; without one it runs at USB speed, as native-USB boards do.

Two behaviours of real boards are simulated because tools stumble on them: after a reset the board
ignores input while it boots (a tool must pause before its Ctrl-C), and a ``main.py`` that runs keeps
printing until interrupted.

Where its parts are: this file is the board (pseudo-terminal, boot, reset, unplug); the REPL's byte
protocol is ``micropython_repl.py``, the built-in modules it lays over the flash folder
(``os``, ``machine``, ``sys``, ...) ``stock_modules.py``, running code and imports
``stock_runtime.py``.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from pathlib import Path
from typing import Any

from .micropython_repl import BANNER, MPY_ESP32, RAW_BANNER, MicroPythonRepl

__all__ = ["BANNER", "MPY_ESP32", "RAW_BANNER", "StockBoard"]


class StockBoard(MicroPythonRepl):
    """One simulated board; ``port`` is the path a tool opens. Use as a context manager."""

    def __init__(
        self,
        flash: Path,
        boot_delay_s: float = 0.3,
        mpy: int = MPY_ESP32,
        unplug_after: int | None = None,
        capacity: int = 2 * 1024 * 1024,
        port: str | Path | None = None,
        baud: int | None = None,
    ) -> None:
        Path(flash).mkdir(parents=True, exist_ok=True)
        super().__init__(flash, mpy, capacity)
        self.boot_delay_s = boot_delay_s
        # Fault injection: the cable is pulled once this many bytes have arrived (the port vanishes).
        self.unplug_after = unplug_after
        self.received = 0
        self.unplugged = threading.Event()
        self.booted = threading.Event()  # set once the board listens (tools like mpremote need that)
        self.baud = baud  # None: no pacing (a native-USB board)
        self.controller, self.peripheral = os.openpty()
        tty.setraw(self.peripheral)
        self.link_path = Path(port) if port else None
        if self.link_path is not None:
            # A stable name, as udev's /dev/serial/by-id links give a real board.
            with contextlib.suppress(FileNotFoundError):
                self.link_path.unlink()
            self.link_path.symlink_to(os.ttyname(self.peripheral))
        self.port = str(self.link_path) if self.link_path else os.ttyname(self.peripheral)
        self._tx: Any = None
        if baud:
            from firmware.sim.board import LineFaults, PtyLink

            self._tx = PtyLink(baud, LineFaults(), LineFaults(), buffer_bytes=256)
            self._tx.attach(self.controller)
        self._mode = "booting"
        self._booted_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="stock-board", daemon=True)

    # -- lifetime -------------------------------------------------------------------------------------
    def __enter__(self) -> StockBoard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._reset(hard=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.runtime.interrupt()  # the board is switched off: code still running stops
        if not self.unplugged.is_set():
            self._unplug()

    def _unplug(self) -> None:
        self.unplugged.set()  # before the port vanishes: whoever sees it vanish may ask at once
        if self._tx is not None:
            self._tx.attach(-1)
            self._tx.close()
        if self.link_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link_path.unlink()
        for fd in (self.controller, self.peripheral):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.controller = self.peripheral = -1

    # -- byte I/O ---------------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self._tx is not None:
            self._tx.write(data)  # drained at the baud rate; blocks while the UART buffer is full
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.controller, view)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            except OSError:
                return
            view = view[n:]

    def _serve(self) -> None:
        last_tick = 0.0
        next_rx = 0.0
        while not self._stop.is_set():
            ready, _, _ = select.select([self.controller], [], [], 0.05)
            now = time.monotonic()
            if self._mode == "booting" and now - self._booted_at >= self.boot_delay_s:
                self._finish_boot()
            if self._running_main and now - last_tick > 0.2:
                self._write(b"main: sampling\r\n")
                last_tick = now
            if not ready:
                continue
            try:
                # At a baud rate, bytes arrive no faster than the line carries them (10 bits a byte).
                data = os.read(self.controller, 32 if self.baud else 4096)
            except OSError:
                continue
            if self.baud:
                next_rx = max(next_rx, now) + len(data) * 10 / self.baud
                time.sleep(max(0.0, next_rx - time.monotonic()))
            for byte in data:
                self.received += 1
                if self.unplug_after is not None and self.received >= self.unplug_after:
                    self._unplug()
                    return
                self.receive(byte)

    # -- boot ---------------------------------------------------------------------------------------
    def _on_reset(self, hard: bool, run_main: bool) -> None:
        if hard:
            self._mode = "booting"
            self._booted_at = time.monotonic()
            self._write(
                b"ets Jul 29 2019 12:21:46\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
            )
        else:
            self._write(b"MPY: soft reboot\r\n")
            if run_main:
                self._finish_boot()

    def _finish_boot(self) -> None:
        self._mode = "friendly"
        self.booted.set()
        if (self.flash / "main.py").is_file():
            self._running_main = True  # runs until interrupted, printing as it goes
            return
        self._write(BANNER + b">>> ")
