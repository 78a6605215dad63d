"""MicroPython's REPL over a byte line, as a board runs it: the friendly REPL (echoed values, compound
statements continued with auto-indent, paste mode), the raw REPL and its raw-paste mode with flow
control, soft reboot, and code run by ``stock_runtime``. The line and what a reset does are the
owner's: the simulated stock board (``stock_board.StockBoard``) and our firmware's simulated board when
its firmware hands the REPL back.
"""

from __future__ import annotations

import codeop
import struct
import threading
from pathlib import Path

from .stock_modules import Reboot
from .stock_runtime import BoardRuntime

BANNER = b'MicroPython v1.27.0 on 2025-12-09; Generic ESP32 module with ESP32\r\nType "help()" for more information.\r\n'
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
RAW_PASTE_WINDOW = 128
PASTE_BANNER = b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== "
# sys.implementation._mpy of MicroPython 1.27 on an ESP32: bytecode 6, sub-version 3, arch xtensawin (10).
MPY_ESP32 = 6 | (3 << 8) | (10 << 10)


class MicroPythonRepl:
    """The REPL state of one board. Subclasses give ``_write`` (bytes to the line) and ``_on_reset``
    (what a reset does: boot messages, starting main.py); bytes from the line go to ``receive``."""

    def __init__(self, flash: Path, mpy: int = MPY_ESP32, capacity: int = 2 * 1024 * 1024) -> None:
        self.flash = Path(flash)
        self.mpy = mpy
        self.capacity = capacity  # bytes of the simulated flash filesystem
        self.resets = 0
        self._mode = "friendly"  # booting, friendly, friendly-paste, raw, paste
        self._running_main = False  # a main.py that runs until interrupted (the stock board's)
        self._line = bytearray()
        self._code = bytearray()
        self._paste_count = 0
        self._paste_granted = 0
        self.paste_overruns = 0  # bytes a host sent beyond the raw-paste window (flow control broken)
        self._escape = b""
        self._pending = ""  # a compound statement being typed in the friendly REPL
        self._csi = 0  # 1 after ESC, 2 inside an ESC [ sequence
        self._lock = threading.RLock()  # the REPL state: the line's reader and the code's end change it
        self.runtime = BoardRuntime(self.flash, capacity, mpy, self._write, self._lock)

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _on_reset(self, hard: bool, run_main: bool) -> None:
        raise NotImplementedError

    def receive(self, byte: int) -> None:
        """A byte from the line: for the code that runs (Ctrl-C, its input), else for the REPL."""
        with self._lock:
            if self.runtime.running:
                self.runtime.feed(byte)
            elif self._mode != "booting":  # a booting board drops what it receives
                self._receive(byte)

    def _reset(self, hard: bool, run_main: bool = True) -> None:
        self.resets += 1
        self.runtime.reset()
        self._pending = ""
        self._line.clear()
        self._code.clear()
        self._running_main = False
        self._on_reset(hard, run_main)

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
