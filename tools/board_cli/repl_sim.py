"""A simulated board that runs only stock MicroPython, with its REPL on a pseudo-terminal.

It speaks the REPL byte protocol the way MicroPython does (friendly REPL, raw REPL, raw-paste mode with
flow control, soft reboot on Ctrl-D, Ctrl-C interrupting a running ``main.py``), so the unmodified
``mpremote`` tool can list, copy and hash files on it, and ``edgectl board flash`` can install our
firmware on it exactly as on a fresh board from the box. Code sent to the REPL runs under CPython with
MicroPython's ``os``/``sys``/``machine`` surface laid over a folder that plays the board's flash.

Two behaviours of real boards are simulated because tools stumble on them: after a reset the board
ignores input while it boots (a tool must pause before its Ctrl-C), and a ``main.py`` that runs keeps
printing until interrupted.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import io
import os
import select
import struct
import sys
import threading
import time
import traceback
import tty
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

BANNER = b'MicroPython v1.27.0 on 2025-12-09; Generic ESP32 module with ESP32\r\nType "help()" for more information.\r\n'
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
RAW_PASTE_WINDOW = 128
S_IFDIR, S_IFREG = 0x4000, 0x8000
# sys.implementation._mpy of MicroPython 1.27 on an ESP32: bytecode 6, sub-version 3, arch xtensawin (10).
MPY_ESP32 = 6 | (3 << 8) | (10 << 10)


class _Reboot(Exception):
    """machine.reset() or machine.soft_reset() from code run on the board."""

    def __init__(self, hard: bool) -> None:
        self.hard = hard


class StockBoard:
    """One simulated board; ``port`` is the path a tool opens. Use as a context manager."""

    def __init__(
        self,
        flash: Path,
        boot_delay_s: float = 0.3,
        mpy: int = MPY_ESP32,
        unplug_after: int | None = None,
        capacity: int = 2 * 1024 * 1024,
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
        self.controller, self.peripheral = os.openpty()
        tty.setraw(self.peripheral)
        self.port = os.ttyname(self.peripheral)
        self.resets = 0
        self._mode = "booting"
        self._booted_at = 0.0
        self._line = bytearray()
        self._code = bytearray()
        self._paste_count = 0
        self._paste_granted = 0
        self.paste_overruns = 0  # bytes a host sent beyond the raw-paste window (flow control broken)
        self._escape = b""
        self._globals: dict[str, Any] = {}
        self._cwd = "/"
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
        for fd in (self.controller, self.peripheral):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.controller = self.peripheral = -1

    # -- byte I/O ---------------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
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
                data = os.read(self.controller, 4096)
            except OSError:
                continue
            for byte in data:
                self.received += 1
                if self.unplug_after is not None and self.received >= self.unplug_after:
                    self._unplug()
                    return
                if self._mode != "booting":  # a booting board drops what it receives
                    self._receive(byte)

    # -- boot ---------------------------------------------------------------------------------------
    def _reset(self, hard: bool, run_main: bool = True) -> None:
        self.resets += 1
        self._globals = {}
        self._cwd = "/"
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
        out, err = self.execute(code)
        self._write(out + b"\x04" + err + b"\x04")
        if self._mode == "raw":
            self._write(b">")

    def _friendly_byte(self, byte: int) -> None:
        if byte == 0x04:  # Ctrl-D: soft reboot, which runs main.py
            self._reset(hard=False)
            return
        if byte in (0x0D, 0x0A):
            line, self._line = bytes(self._line), bytearray()
            self._write(b"\r\n")
            if line.strip():
                out, err = self.execute(line)
                self._write(out + err)
            self._write(b">>> ")
            return
        if byte in (0x08, 0x7F):
            if self._line:
                self._line.pop()
                self._write(b"\x08 \x08")
            return
        self._line.append(byte)
        self._write(bytes([byte]))

    # -- running code --------------------------------------------------------------------------------
    def execute(self, code: bytes) -> tuple[bytes, bytes]:
        """Run code as the board would; returns (output, error output) with MicroPython line ends."""
        out = io.StringIO()
        if not self._globals:
            self._globals = {"__name__": "__main__", "__builtins__": self._builtins(out)}
        self._globals["__builtins__"]["print"] = self._printer(out)
        err = ""
        reboot: _Reboot | None = None
        try:
            try:
                compiled = compile(code.decode("utf-8"), "<stdin>", "exec", dont_inherit=True)
            except SyntaxError:
                err = 'Traceback (most recent call last):\n  File "<stdin>", line 1\nSyntaxError: invalid syntax\n'
            else:
                exec(compiled, self._globals)
        except _Reboot as exc:
            reboot = exc
        except Exception as exc:
            err = self._traceback(exc)
        result = out.getvalue().replace("\n", "\r\n").encode(), err.replace("\n", "\r\n").encode()
        if reboot is not None:
            self._write(result[0] + b"\x04" + result[1] + b"\x04")
            self._reset(hard=reboot.hard)
            return b"", b""
        return result

    @staticmethod
    def _traceback(exc: BaseException) -> str:
        if isinstance(exc, OSError) and exc.errno is not None:
            line = f"OSError: [Errno {exc.errno}] {errno.errorcode.get(exc.errno, str(exc.errno))}"
        else:
            line = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return f'Traceback (most recent call last):\n  File "<stdin>", line 1, in <module>\n{line}\n'

    def _printer(self, out: io.StringIO) -> Callable[..., None]:
        def board_print(*args: Any, sep: str = " ", end: str = "\n", file: Any = None) -> None:
            out.write(sep.join(str(a) for a in args) + end)

        return board_print

    def _builtins(self, out: io.StringIO) -> dict[str, Any]:
        names = dict(vars(builtins))
        modules = self._modules()

        def board_import(
            name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
        ) -> Any:
            root = name.split(".", 1)[0]
            if root in modules:
                return modules[root]
            raise ImportError(f"no module named '{name}'")

        names.update(__import__=board_import, open=self._open, print=self._printer(out))
        return names

    # -- the board's filesystem -----------------------------------------------------------------------
    def host_path(self, path: str) -> Path:
        full = path if path.startswith("/") else self._cwd.rstrip("/") + "/" + path
        parts: list[str] = []
        for part in full.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        return self.flash.joinpath(*parts) if parts else self.flash

    def _open(self, path: str, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return open(self.host_path(path), mode)

    def statvfs(self) -> tuple[int, ...]:
        """os.statvfs of the simulated flash: 4 KB blocks, free space what the folder does not use."""
        used = sum(p.stat().st_size for p in self.flash.rglob("*") if p.is_file())
        blocks, free = self.capacity // 4096, max(self.capacity - used, 0) // 4096
        return (4096, 4096, blocks, free, free, 0, 0, 0, 0, 255)

    def _modules(self) -> dict[str, Any]:
        board = self

        def ilistdir(path: str = "") -> Any:
            folder = board.host_path(path or board._cwd)
            for entry in sorted(folder.iterdir()):
                st = entry.stat()
                yield (
                    entry.name,
                    S_IFDIR if entry.is_dir() else S_IFREG,
                    0,
                    0 if entry.is_dir() else st.st_size,
                )

        def stat(path: str) -> tuple[int, ...]:
            st = board.host_path(path).stat()
            mode = S_IFDIR if os.path.isdir(board.host_path(path)) else S_IFREG
            t = int(st.st_mtime)
            return (mode, 0, 0, 0, 0, 0, 0 if mode == S_IFDIR else st.st_size, t, t, t)

        def chdir(path: str) -> None:
            target = board.host_path(path)
            if not target.is_dir():
                raise OSError(errno.ENOENT, "ENOENT")
            board._cwd = "/" + target.relative_to(board.flash).as_posix().strip(".")

        def rename(old: str, new: str) -> None:
            os.replace(board.host_path(old), board.host_path(new))

        fs = SimpleNamespace(
            ilistdir=ilistdir,
            listdir=lambda path="": [e[0] for e in ilistdir(path)],
            stat=stat,
            mkdir=lambda path: os.mkdir(board.host_path(path)),
            rmdir=lambda path: os.rmdir(board.host_path(path)),
            remove=lambda path: os.remove(board.host_path(path)),
            rename=rename,
            getcwd=lambda: board._cwd,
            chdir=chdir,
            sync=lambda: None,
            statvfs=lambda path: board.statvfs(),
            uname=lambda: (
                "esp32",
                "esp32",
                "1.27.0",
                "v1.27.0 on 2025-12-09",
                "Generic ESP32 module with ESP32",
            ),
        )

        def reset() -> None:
            raise _Reboot(hard=True)

        def soft_reset() -> None:
            raise _Reboot(hard=False)

        machine = SimpleNamespace(
            reset=reset,
            soft_reset=soft_reset,
            unique_id=lambda: b"\x24\x0a\xc4\x12\x34\x56",
            freq=lambda *a: 240_000_000,
        )
        implementation = SimpleNamespace(
            name="micropython",
            version=(1, 27, 0, ""),
            _machine="Generic ESP32 module with ESP32",
            _mpy=self.mpy,
        )
        board_sys = SimpleNamespace(
            implementation=implementation,
            platform="esp32",
            version="3.4.0; MicroPython v1.27.0",
            byteorder="little",
            maxsize=2**31 - 1,
            path=["", "/lib"],
            modules={},
            exit=sys.exit,
        )
        gc = SimpleNamespace(collect=lambda: None, mem_free=lambda: 110_000, mem_alloc=lambda: 20_000)
        import binascii
        import json
        import time as host_time

        modules: dict[str, Any] = {
            "os": fs,
            "uos": fs,
            "sys": board_sys,
            "usys": board_sys,
            "machine": machine,
            "gc": gc,
            "hashlib": hashlib,
            "uhashlib": hashlib,
            "binascii": binascii,
            "ubinascii": binascii,
            "json": json,
            "struct": struct,
            "errno": errno,
            "time": host_time,
            "utime": host_time,
            "micropython": ModuleType("micropython"),
        }
        return modules
