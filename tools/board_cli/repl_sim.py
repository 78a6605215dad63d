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
"""

from __future__ import annotations

import codeop
import contextlib
import os
import select
import struct
import threading
import time
import tty
from pathlib import Path
from typing import Any

from .repl_sim_modules import Reboot
from .repl_sim_runtime import BoardRuntime

BANNER = b'MicroPython v1.27.0 on 2025-12-09; Generic ESP32 module with ESP32\r\nType "help()" for more information.\r\n'
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
RAW_PASTE_WINDOW = 128
PASTE_BANNER = b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== "
# sys.implementation._mpy of MicroPython 1.27 on an ESP32: bytecode 6, sub-version 3, arch xtensawin (10).
MPY_ESP32 = 6 | (3 << 8) | (10 << 10)


class StockBoard:
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
        self.flash = Path(flash)
        self.flash.mkdir(parents=True, exist_ok=True)
        self.boot_delay_s = boot_delay_s
        self.mpy = mpy
        # Fault injection: the cable is pulled once this many bytes have arrived (the port vanishes).
        self.unplug_after = unplug_after
        self.capacity = capacity  # bytes of the simulated flash filesystem
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
        self.resets = 0
        self._mode = "booting"
        self._booted_at = 0.0
        self._line = bytearray()
        self._code = bytearray()
        self._paste_count = 0
        self._paste_granted = 0
        self.paste_overruns = 0  # bytes a host sent beyond the raw-paste window (flow control broken)
        self._escape = b""
        self._pending = ""  # a compound statement being typed in the friendly REPL
        self._csi = 0  # 1 after ESC, 2 inside an ESC [ sequence
        self._lock = threading.RLock()  # the REPL state: the port's reader and the code's end change it
        self.runtime = BoardRuntime(self.flash, capacity, mpy, self._write, self._lock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="stock-board", daemon=True)
        self._running_main = False

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
                with self._lock:
                    if self.runtime.running:
                        self.runtime.feed(byte)  # Ctrl-C or input for the code that runs
                    elif self._mode != "booting":  # a booting board drops what it receives
                        self._receive(byte)

    # -- boot ---------------------------------------------------------------------------------------
    def _reset(self, hard: bool, run_main: bool = True) -> None:
        self.resets += 1
        self.runtime.reset()
        self._pending = ""
        self._line.clear()
        self._code.clear()
        self._running_main = False
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

    # -- the REPL state machine -------------------------------------------------------------------------
    def _receive(self, byte: int) -> None:
        if self._mode == "paste":
            self._paste_byte(byte)
            return
        if self._mode == "friendly-paste":
            self._paste_mode_byte(byte)
            return
        if self._escape:  # raw-paste request: b"\x05A\x01" in the raw REPL
            self._escape += bytes([byte])
            if len(self._escape) == 3:
                esc, self._escape = self._escape, b""
                if esc == b"\x05A\x01":
                    self._mode = "paste"
                    self._code.clear()
                    self._paste_count = 0
                    self._paste_granted = RAW_PASTE_WINDOW
                    self._write(b"R\x01" + struct.pack("<H", RAW_PASTE_WINDOW))
                else:
                    self._write(b"R\x00")
            return
        if byte == 0x03:  # Ctrl-C
            self._line.clear()
            self._code.clear()
            self._pending = ""
            if self._running_main:
                self._running_main = False
                self._write(
                    b'Traceback (most recent call last):\r\n  File "main.py", line 7, in <module>\r\n'
                )
                self._write(b"KeyboardInterrupt: \r\n" + BANNER + b">>> ")
            elif self._mode == "friendly":
                self._write(b"\r\n>>> ")
            return
        if self._running_main:
            return  # a running program does not read the REPL
        if byte == 0x01:  # Ctrl-A: raw REPL
            self._mode = "raw"
            self._code.clear()
            self._write(b"\r\n" + RAW_BANNER)
            return
        if byte == 0x02:  # Ctrl-B: friendly REPL
            self._mode = "friendly"
            self._write(b"\r\n" + BANNER + b">>> ")
            return
        if self._mode == "raw":
            self._raw_byte(byte)
        else:
            self._friendly_byte(byte)

    def _raw_byte(self, byte: int) -> None:
        if byte == 0x05 and not self._code:
            self._escape = b"\x05"
            return
        if byte == 0x04:
            if not self._code:  # Ctrl-D on an empty raw REPL: soft reboot, stay in the raw REPL
                self._write(b"OK\r\n")
                self._reset(hard=False, run_main=False)  # the raw REPL does not run main.py
                self._write(RAW_BANNER)
                return
            code, self._code = bytes(self._code), bytearray()
            self._write(b"OK")
            self._run(code)
            return
        self._code.append(byte)

    def _paste_byte(self, byte: int) -> None:
        if byte == 0x04:
            self._write(b"\x04")
            self._mode = "raw"
            code, self._code = bytes(self._code), bytearray()
            self._run(code)
            return
        self._code.append(byte)
        self._paste_count += 1
        if self._paste_count > self._paste_granted:
            self.paste_overruns += 1  # a real board's buffer would have dropped this byte
        if self._paste_count % RAW_PASTE_WINDOW == 0:
            self._paste_granted += RAW_PASTE_WINDOW
            self._write(b"\x01")  # room for another window

    def _run(self, code: bytes) -> None:
        """Run code from the raw REPL; its output streams out, then the end markers and the error."""
        self.runtime.start(code, echo=False, done=self._raw_done)

    def _raw_done(self, err: str, reboot: Reboot | None) -> None:
        self._write(b"\x04" + err.replace("\n", "\r\n").encode() + b"\x04")
        if reboot is not None:
            self._reset(hard=reboot.hard)
        elif self._mode == "raw":
            self._write(b">")

    def _friendly_done(self, err: str, reboot: Reboot | None) -> None:
        self._write(err.replace("\n", "\r\n").encode())
        if reboot is not None:
            self._reset(hard=reboot.hard)
        elif self._mode == "friendly":
            self._write(b">>> ")

    def _friendly_byte(self, byte: int) -> None:
        if byte == 0x04 and not self._line and not self._pending:  # Ctrl-D: soft reboot, runs main.py
            self._reset(hard=False)
            return
        if byte == 0x05 and not self._line and not self._pending:  # Ctrl-E: paste mode
            self._mode = "friendly-paste"
            self._code.clear()
            self._write(PASTE_BANNER)
            return
        if byte == 0x0D:  # Enter; a line feed is ignored, as by MicroPython's readline
            self._enter()
            return
        if byte in (0x08, 0x7F):
            if self._line:
                # Backspace over auto-indent takes a whole level, as MicroPython's readline does.
                n = 4 if len(self._line) >= 4 and not bytes(self._line).strip(b" ") else 1
                del self._line[-n:]
                self._write(b"\x08 \x08" * n)
            return
        if self._csi or byte == 0x1B:
            # Escape sequences (arrow keys, history) are swallowed: no line editing here.
            self._csi = 0 if self._csi == 2 and 0x40 <= byte <= 0x7E else (2 if byte == 0x5B else 1)
            if self._csi == 1 and byte != 0x1B:
                self._csi = 0
            return
        if byte < 0x20 and byte != 0x09:
            return
        self._line.append(byte)
        self._write(bytes([byte]))

    def _enter(self) -> None:
        """End of a typed line: run it, or continue a compound statement with auto-indent."""
        line = bytes(self._line).decode("utf-8", "replace")
        self._line.clear()
        self._write(b"\r\n")
        source = f"{self._pending}\n{line}" if self._pending else line
        if not source.strip():
            self._pending = ""
            self._write(b">>> ")
            return
        if self._continues(source, line):
            self._pending = source
            indent = self._auto_indent(source)
            self._line.extend(indent.encode())
            self._write(b"... " + indent.encode())
            return
        self._pending = ""
        self.runtime.start(source.encode(), echo=True, done=self._friendly_done)

    @staticmethod
    def _continues(source: str, line: str) -> bool:
        """More input is needed: an open bracket or string, or a compound statement not yet ended by
        an empty line (MicroPython's mp_repl_continue_with_input)."""
        first = source.lstrip().split(None, 1)[0].rstrip(":") if source.strip() else ""
        compound = first in {"if", "while", "for", "def", "class", "with", "try", "async", "@"} or (
            first.startswith("@")
        )
        if compound:
            return line != ""
        try:
            return codeop.compile_command(source, "<stdin>", "exec") is None
        except (SyntaxError, ValueError, OverflowError):
            return False  # the error is reported when it runs

    @staticmethod
    def _auto_indent(source: str) -> str:
        """MicroPython's readline auto-indent: the last line's indent, one level more after a ':';
        none after two lines of only spaces."""
        lines = source.split("\n")
        last = lines[-1]
        if len(lines) > 1 and not last.strip(" ") and not lines[-2].strip(" "):
            return ""
        level = (len(last) - len(last.lstrip(" "))) // 4 + (1 if last.rstrip().endswith(":") else 0)
        return "    " * level

    def _paste_mode_byte(self, byte: int) -> None:
        if byte == 0x03:  # Ctrl-C: cancel
            self._mode = "friendly"
            self._code.clear()
            self._write(b"\r\n>>> ")
            return
        if byte == 0x04:  # Ctrl-D: run what was pasted
            self._mode = "friendly"
            code, self._code = bytes(self._code), bytearray()
            self._write(b"\r\n")
            self.runtime.start(code, echo=False, done=self._friendly_done)  # compiled as a file: no echo
            return
        if byte == 0x0D:
            self._code.append(0x0A)
            self._write(b"\r\n=== ")
            return
        if byte == 0x0A:
            return
        self._code.append(byte)
        self._write(bytes([byte]))
