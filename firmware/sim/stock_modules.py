"""The MicroPython surface of the simulated stock board: the built-in modules code on the board
imports (``os``, ``vfs``, ``sys``, ``machine``, ``time``, ``micropython``, ``gc``, ...), laid over a
host folder that plays the board's flash, and the import of ``.py`` modules from that flash.

What tools and technicians call is modelled on a Generic ESP32 with MicroPython 1.27: mpremote's
``df``, ``rtc``, ``fs`` and ``mip``-style file commands, ``time.ticks_ms``, ``machine.Pin``,
``micropython.mem_info``. Hardware is inert: a pin keeps the level written to it, an ADC reads 0.
"""

from __future__ import annotations

import binascii
import errno
import hashlib
import io
import json
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Protocol

S_IFDIR, S_IFREG = 0x4000, 0x8000
TICKS_PERIOD = 1 << 30  # MicroPython's ticks wrap here
HEAP_BYTES = 130_000
HELP_TEXT = """Welcome to MicroPython on the ESP32!

For online docs please visit http://docs.micropython.org/

For access to the hardware use the 'machine' module:

import machine
pin12 = machine.Pin(12, machine.Pin.OUT)
pin12.value(1)
pin13 = machine.Pin(13, machine.Pin.IN, machine.Pin.PULL_UP)
print(pin13.value())

Basic WiFi configuration is not simulated on this board.

Control commands:
  CTRL-A        -- on a blank line, enter raw REPL mode
  CTRL-B        -- on a blank line, enter normal REPL mode
  CTRL-C        -- interrupt a running program
  CTRL-D        -- on a blank line, do a soft reset of the board
  CTRL-E        -- on a blank line, enter paste mode

For further help on a specific object, type help(obj)
For a list of available modules, type help('modules')
"""


class Reboot(Exception):
    """machine.reset() or machine.soft_reset() from code run on the board."""

    def __init__(self, hard: bool) -> None:
        self.hard = hard


class Flash(Protocol):
    """What the modules need from the board's runtime (stock_runtime.BoardRuntime)."""

    flash: Path
    capacity: int
    mpy: int
    cwd: str
    mounts: dict[str, Any]
    kbd_intr_char: int

    def host_path(self, path: str) -> Path: ...
    def resolve(self, path: str) -> str: ...
    def route(self, path: str) -> tuple[Any, str] | None: ...
    def mount(self, vfs: Any, point: str) -> None: ...
    def umount(self, point: str) -> None: ...
    def stdin(self) -> Any: ...
    def stdout(self) -> Any: ...
    def poll(self) -> Any: ...


def _ticks() -> SimpleNamespace:
    start = time.monotonic()

    def ticks_ms() -> int:
        return int((time.monotonic() - start) * 1000) % TICKS_PERIOD

    def ticks_us() -> int:
        return int((time.monotonic() - start) * 1_000_000) % TICKS_PERIOD

    def ticks_diff(a: int, b: int) -> int:
        d = (a - b) % TICKS_PERIOD
        return d - TICKS_PERIOD if d >= TICKS_PERIOD // 2 else d

    def ticks_add(a: int, delta: int) -> int:
        return (a + delta) % TICKS_PERIOD

    return SimpleNamespace(ticks_ms=ticks_ms, ticks_us=ticks_us, ticks_diff=ticks_diff, ticks_add=ticks_add)


class RTC:
    """machine.RTC: a clock that runs from what it was set to (mpremote rtc --set)."""

    offset_s = 0.0  # shared by every RTC() of the board, as the one hardware clock is

    def __init__(self, rtc_id: int = 0) -> None:
        pass

    def datetime(self, value: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
        if value is None:
            now = time.time() + RTC.offset_s
            t = time.gmtime(now)
            return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday, t.tm_hour, t.tm_min, t.tm_sec, 0)
        if len(value) != 8:
            raise ValueError(f"requested length 8 but object has length {len(value)}")
        year, month, day, _wd, hour, minute, second, _sub = (int(v) for v in value)
        wanted = time.mktime((year, month, day, hour, minute, second, 0, 0, 0)) - time.timezone
        RTC.offset_s = wanted - time.time()
        return None

    def init(self, value: tuple[int, ...]) -> None:
        self.datetime(value)


class Pin:
    """machine.Pin: keeps the level written; an input reads its pull."""

    IN, OUT, OPEN_DRAIN = 1, 3, 7
    PULL_UP, PULL_DOWN = 1, 2
    IRQ_RISING, IRQ_FALLING = 1, 2

    def __init__(self, pin_id: int, mode: int = -1, pull: int = -1, value: int | None = None) -> None:
        if not isinstance(pin_id, int) or not 0 <= pin_id <= 48:
            raise ValueError("invalid pin")
        self.id, self.mode, self.pull = pin_id, mode, pull
        self.level = 1 if pull == Pin.PULL_UP else 0
        if value is not None:
            self.level = 1 if value else 0

    def init(self, mode: int = -1, pull: int = -1, value: int | None = None) -> None:
        self.__init__(self.id, mode, pull, value)  # type: ignore[misc]

    def value(self, v: int | None = None) -> int | None:
        if v is None:
            return self.level
        self.level = 1 if v else 0
        return None

    __call__ = value

    def on(self) -> None:
        self.level = 1

    def off(self) -> None:
        self.level = 0

    def irq(self, handler: Any = None, trigger: int = 3) -> None:
        return None

    def __repr__(self) -> str:
        return f"Pin({self.id})"


class ADC:
    ATTN_0DB, ATTN_11DB = 0, 3

    def __init__(self, pin: Any, atten: int = 0) -> None:
        self.pin = pin

    def read_u16(self) -> int:
        return 0

    def read(self) -> int:
        return 0

    def atten(self, value: int) -> None:
        return None


class PWM:
    def __init__(self, pin: Any, freq: int = 5000, duty_u16: int = 0) -> None:
        self.pin, self._freq, self._duty = pin, freq, duty_u16

    def freq(self, value: int | None = None) -> int | None:
        if value is None:
            return self._freq
        self._freq = value
        return None

    def duty_u16(self, value: int | None = None) -> int | None:
        if value is None:
            return self._duty
        if not 0 <= value <= 65535:
            raise ValueError("duty must be 0-65535")
        self._duty = value
        return None

    def deinit(self) -> None:
        return None


class WDT:
    def __init__(self, id: int = 0, timeout: int = 5000) -> None:
        self.timeout = timeout

    def feed(self) -> None:
        return None


class _IOBase:
    """io.IOBase as MicroPython has it: a base for stream classes, with nothing done behind them (no
    close on garbage collection, unlike CPython's)."""


class _Vfs:
    """The flash's filesystem object, as vfs.mount() lists it."""

    def __repr__(self) -> str:
        return "<VfsLfs2>"


def mem_info(verbose: Any = None, *, heap_used: Callable[[], int]) -> str:
    used = heap_used()
    return (
        "stack: 736 out of 15360\n"
        f"GC: total: {HEAP_BYTES}, used: {used}, free: {HEAP_BYTES - used}, max new split: 110592\n"
        f" No. of 1-blocks: 120, 2-blocks: 34, max blk sz: 64, max free sz: {(HEAP_BYTES - used) // 16}\n"
    )


class _BoardOs:
    """The ``os`` calls of one boot: the board's flash folder, with filesystems mounted on it."""

    def __init__(self, board: Flash) -> None:
        self.board = board
        self.root_vfs = _Vfs()

    def ilistdir(self, path: str = "") -> Any:
        board = self.board
        hit = board.route(path or board.cwd)
        if hit is not None:
            yield from hit[0].ilistdir(hit[1])
            return
        folder = board.host_path(path or board.cwd)
        if not folder.is_dir():
            raise OSError(errno.ENOENT, "ENOENT")
        for entry in sorted(folder.iterdir()):
            size = 0 if entry.is_dir() else entry.stat().st_size
            yield (entry.name, S_IFDIR if entry.is_dir() else S_IFREG, 0, size)
        if board.resolve(path or board.cwd) == "/":
            for point in sorted(board.mounts):
                yield (point.strip("/"), S_IFDIR, 0, 0)

    def stat(self, path: str) -> tuple[int, ...]:
        hit = self.board.route(path)
        if hit is not None:
            return tuple(hit[0].stat(hit[1]))
        host = self.board.host_path(path)
        try:
            st = host.stat()
        except FileNotFoundError:
            raise OSError(errno.ENOENT, "ENOENT") from None
        mode = S_IFDIR if host.is_dir() else S_IFREG
        t = int(st.st_mtime)
        return (mode, 0, 0, 0, 0, 0, 0 if mode == S_IFDIR else st.st_size, t, t, t)

    def chdir(self, path: str) -> None:
        board = self.board
        hit = board.route(path)
        if hit is not None:
            hit[0].chdir(hit[1])
        elif not board.host_path(path).is_dir():
            raise OSError(errno.ENOENT, "ENOENT")
        board.cwd = board.resolve(path)

    def statvfs(self, path: str = "/") -> tuple[int, ...]:
        """4 KB blocks; free space is what the folder does not use."""
        board = self.board
        used = sum(p.stat().st_size for p in board.flash.rglob("*") if p.is_file())
        blocks, free = board.capacity // 4096, max(board.capacity - used, 0) // 4096
        return (4096, 4096, blocks, free, free, 0, 0, 0, 0, 255)

    def on_board(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """An os function: on a mounted filesystem its method ``name``, on the flash ``fn``."""
        return lambda *paths: self._call(name, fn, paths)

    def _call(self, name: str, fn: Callable[..., Any], paths: tuple[str, ...]) -> Any:
        board = self.board
        hit = board.route(paths[0])
        if hit is not None:
            rest = [board.route(p)[1] if board.route(p) else p for p in paths[1:]]  # type: ignore[index]
            return getattr(hit[0], name)(hit[1], *rest)
        try:
            return fn(*(board.host_path(p) for p in paths))
        except FileNotFoundError:
            raise OSError(errno.ENOENT, "ENOENT") from None
        except FileExistsError:
            raise OSError(errno.EEXIST, "EEXIST") from None
        except OSError as exc:
            code = exc.errno or errno.EIO
            raise OSError(code, errno.errorcode.get(code, "EIO")) from None

    def mount(self, *args: Any, **kwargs: Any) -> Any:
        if not args:
            return [(self.root_vfs, "/")] + [(vfs, point) for point, vfs in self.board.mounts.items()]
        self.board.mount(args[0], args[1])
        return None


def _filesystem_modules(board: Flash) -> tuple[ModuleType, ModuleType]:
    """The board's ``os`` and ``vfs`` modules."""
    ops = _BoardOs(board)
    uname = SimpleNamespace(
        sysname="esp32",
        nodename="esp32",
        release="1.27.0",
        version="v1.27.0 on 2025-12-09",
        machine="Generic ESP32 module with ESP32",
    )
    fs = ModuleType("os")
    vars(fs).update(
        ilistdir=ops.ilistdir,
        listdir=lambda path="": [e[0] for e in ops.ilistdir(path)],
        stat=ops.stat,
        mkdir=ops.on_board("mkdir", os.mkdir),
        rmdir=ops.on_board("rmdir", os.rmdir),
        remove=ops.on_board("remove", os.remove),
        rename=ops.on_board("rename", os.replace),
        getcwd=lambda: board.cwd,
        chdir=ops.chdir,
        sync=lambda: None,
        statvfs=ops.statvfs,
        uname=lambda: uname,
        urandom=os.urandom,
        mount=ops.mount,
        umount=board.umount,
        sep="/",
    )
    vfs = ModuleType("vfs")
    vars(vfs).update(mount=ops.mount, umount=board.umount, VfsLfs2=_Vfs)
    return fs, vfs


def board_modules(board: Flash, write: Callable[[str], None], sys_path: list[str]) -> dict[str, Any]:
    """Fresh built-in modules for one boot of ``board``; ``write`` is the REPL's output."""

    fs, vfs = _filesystem_modules(board)

    def reset() -> None:
        raise Reboot(hard=True)

    def soft_reset() -> None:
        raise Reboot(hard=False)

    machine = ModuleType("machine")
    vars(machine).update(
        reset=reset,
        soft_reset=soft_reset,
        reset_cause=lambda: 1,
        unique_id=lambda: b"\x24\x0a\xc4\x12\x34\x56",
        freq=lambda *a: 240_000_000 if not a else None,
        idle=lambda: None,
        Pin=Pin,
        ADC=ADC,
        PWM=PWM,
        RTC=RTC,
        WDT=WDT,
        PWRON_RESET=1,
        SOFT_RESET=5,
    )
    ticks = _ticks()
    board_time = ModuleType("time")
    vars(board_time).update(
        vars(ticks),
        sleep=_sleep,
        sleep_ms=lambda ms: _sleep(ms / 1000),
        sleep_us=lambda us: time.sleep(us / 1_000_000),
        time=lambda: int(time.time() + RTC.offset_s),
        time_ns=lambda: int((time.time() + RTC.offset_s) * 1e9),
        gmtime=lambda t=None: _tuple(time.gmtime(time.time() + RTC.offset_s if t is None else t)),
        localtime=lambda t=None: _tuple(time.gmtime(time.time() + RTC.offset_s if t is None else t)),
        mktime=lambda t: int(time.mktime((*t[:6], 0, 0, 0)) - time.timezone),
    )
    heap = {"used": 20_000}
    gc = ModuleType("gc")
    vars(gc).update(
        collect=lambda: heap.update(used=18_000),
        mem_free=lambda: HEAP_BYTES - heap["used"],
        mem_alloc=lambda: heap["used"],
        enable=lambda: None,
        disable=lambda: None,
        isenabled=lambda: True,
        threshold=lambda *a: -1,
    )
    micropython = ModuleType("micropython")
    vars(micropython).update(
        const=lambda v: v,
        mem_info=lambda verbose=None: write(mem_info(verbose, heap_used=lambda: heap["used"])),
        qstr_info=lambda verbose=None: write("qstr pool: n_pool=1, n_qstr=92, n_str_data_bytes=1016\n"),
        stack_use=lambda: 736,
        opt_level=lambda *a: 0,
        kbd_intr=lambda ch: setattr(board, "kbd_intr_char", ch),
        schedule=lambda fn, arg: fn(arg),
        alloc_emergency_exception_buf=lambda n: None,
        heap_lock=lambda: 0,
        heap_unlock=lambda: 0,
    )
    implementation = SimpleNamespace(
        name="micropython",
        version=(1, 27, 0, ""),
        _machine="Generic ESP32 module with ESP32",
        _mpy=board.mpy,
    )
    board_sys = ModuleType("sys")
    loaded: dict[str, Any] = {}
    vars(board_sys).update(
        implementation=implementation,
        platform="esp32",
        version="3.4.0; MicroPython v1.27.0 on 2025-12-09",
        byteorder="little",
        maxsize=2**31 - 1,
        path=sys_path,
        modules=loaded,
        argv=[],
        exit=_exit,
        print_exception=lambda exc, file=None: write(_exception_text(exc)),
        stdin=board.stdin(),
        stdout=board.stdout(),
        stderr=board.stdout(),
    )
    select = ModuleType("select")
    vars(select).update(poll=board.poll, POLLIN=1, POLLOUT=4, POLLERR=8, POLLHUP=16)
    board_io = ModuleType("io")
    vars(board_io).update(IOBase=_IOBase, BytesIO=io.BytesIO, StringIO=io.StringIO)
    modules: dict[str, Any] = {
        "os": fs,
        "vfs": vfs,
        "sys": board_sys,
        "machine": machine,
        "gc": gc,
        "hashlib": hashlib,
        "binascii": binascii,
        "json": json,
        "struct": struct,
        "errno": errno,
        "time": board_time,
        "micropython": micropython,
        "select": select,
        "io": board_io,
    }
    for name in ("os", "sys", "time", "hashlib", "binascii", "json", "struct", "errno", "select", "io"):
        modules["u" + name] = modules[name]  # the u-prefixed names of older firmware
    return modules


def _sleep(seconds: float) -> None:
    """In slices: a Ctrl-C (an exception raised in the code's thread) lands within 50 ms."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))


def _tuple(t: time.struct_time) -> tuple[int, ...]:
    """MicroPython's 8-tuple time: year, month, mday, hour, minute, second, weekday, yearday."""
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, t.tm_wday, t.tm_yday)


def _exit(code: int = 0) -> None:
    raise SystemExit(code)


def _exception_text(exc: BaseException) -> str:
    return f"Traceback (most recent call last):\n{type(exc).__name__}: {exc}\n"


def help_text(obj: Any = None, modules: dict[str, Any] | None = None) -> str:
    """What MicroPython's help() prints: the welcome text, the module list, or an object's members."""
    if obj is None:
        return HELP_TEXT
    if obj == "modules":
        names = sorted(set(modules or {}) | {"__main__", "builtins"})
        rows = [names[i : i + 4] for i in range(0, len(names), 4)]
        listing = "\n".join("".join(f"{n:<19}" for n in row).rstrip() for row in rows)
        return listing + "\nPlus any modules on the filesystem\n"
    kind = type(obj).__name__
    lines = [f"object {obj!r} is of type {kind}"]
    for name in sorted(n for n in dir(obj) if not n.startswith("_")):
        lines.append(f"  {name} -- {getattr(obj, name, None)!r}")
    return "\n".join(lines) + "\n"
