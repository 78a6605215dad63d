"""Reaching a board that runs only MicroPython: its raw REPL, through mpremote's transport.

mpremote's ``SerialTransport`` does the raw REPL and raw-paste protocol and the file commands; what it
leaves to its caller is what goes wrong with real boards, handled here:

* opening the port raises DTR/RTS, which resets many ESP32 boards or holds them in the bootloader:
  the port is opened with both low (``ports.open_port``) and handed to mpremote already open;
* a board that was just reset, or runs a busy ``main.py``, misses the first Ctrl-C: entering the raw
  REPL is retried with growing pauses before the interrupt;
* "could not enter raw repl" becomes a sentence with what to try.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import time
from typing import Any

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from agent.boards.install import Progress
from firmware.streetfw import wire

from ..errors import NO_BOARD, EdgectlError
from .connecting import Connecting
from .ports import open_port

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"  # the ">" after it is read by the first exec
ENTER_PAUSES_S = (0.0, 0.5, 1.5, 3.0)  # pause before each Ctrl-C attempt: boot logs, busy loops
CHUNK = 512


# A protocol CMD "repl" (firmware/streetfw/wire.py): our firmware answers it by giving the REPL back.
# A board without our firmware reads it as a line of junk that the interrupts below discard.
REPL_REQUEST = b"\x00" + wire.encode_frame(wire.CMD, 0, {"id": 0x7FFFFFF0, "op": "repl", "a": {}})


class _OpenedTransport(SerialTransport):
    """mpremote's transport over a port we opened (DTR/RTS low, exclusive)."""

    def __init__(self, port: serial.Serial) -> None:
        self.in_raw_repl = False
        self.use_raw_paste = True
        self.device_name = port.port
        self.mounted = False
        self.serial = port
        self.is_pty = self._is_pty_device(str(port.port))


class ReplBoard:
    """A board's raw REPL; implements ``install.BoardFiles``. Use as a context manager."""

    def __init__(
        self,
        port: str,
        baud: int = 115200,
        pauses: tuple[float, ...] | None = None,
        feedback: Connecting | None = None,
    ) -> None:
        self.port_name = port
        self.pauses = ENTER_PAUSES_S if pauses is None else pauses
        self.feedback = feedback
        self.transport = _OpenedTransport(open_port(port, baud, timeout=0.5))

    def __enter__(self) -> ReplBoard:
        try:
            self.enter_raw_repl()
        except BaseException:
            # A board that left its program for the friendly REPL but not into the raw one would stay
            # there: a soft reboot (Ctrl-D) runs main.py again. To a running program it is one junk byte.
            with contextlib.suppress(OSError, serial.SerialException):
                self.transport.serial.write(b"\r\x02\x04")
                self.transport.serial.flush()
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave the board running its program again: friendly REPL, then a soft reboot runs main.py."""
        try:
            if self.transport.in_raw_repl:
                self.transport.exit_raw_repl()
                self.transport.serial.write(b"\x04")
                self.transport.serial.flush()
        except (OSError, serial.SerialException):
            pass
        with contextlib.suppress(OSError, serial.SerialException):
            self.transport.serial.close()

    def enter_raw_repl(self) -> None:
        port = self.transport.serial
        if self.feedback:
            self.feedback.stage("raw REPL")
        for pause in self.pauses:
            time.sleep(pause)
            if self.feedback:
                self.feedback.attempt()
            try:
                # Our firmware ignores Ctrl-C while it speaks the protocol: ask it for the REPL first.
                port.write(REPL_REQUEST)
                time.sleep(0.1)
                port.write(b"\r\x03\x03")  # two interrupts: a loop may catch the first one
                time.sleep(0.1)
                port.reset_input_buffer()
                port.write(b"\r\x01")
                data = self._read_until(RAW_BANNER, time.monotonic() + 1.0 + pause)
            except (OSError, serial.SerialException) as exc:
                raise EdgectlError(
                    f"{self.port_name}: the board went away ({exc}); check the cable", NO_BOARD
                ) from None
            if data.endswith(RAW_BANNER):
                self.transport.in_raw_repl = True
                if self.feedback:
                    self.feedback.result("ok")
                    self.feedback.end()
                return
        if self.feedback:
            self.feedback.result("no answer")
            self.feedback.end()
        raise EdgectlError(
            f"{self.port_name}: could not enter the MicroPython raw REPL ({len(self.pauses)} tries); press "
            "the board's RESET button and retry, close other programs on the port, and check it is the "
            "board (`edgectl board list`; a new ESP32 needs MicroPython first)",
            NO_BOARD,
        )

    def _read_until(self, ending: bytes, deadline: float) -> bytes:
        # mpremote's read_until never times out while bytes keep coming, and a running main.py that
        # prints keeps them coming: this one stops at the deadline regardless.
        # Byte by byte, so that nothing after ``ending`` (the raw REPL's ">") is consumed here.
        port = self.transport.serial
        data = b""
        while not data.endswith(ending) and time.monotonic() < deadline:
            data = (data + port.read(1))[-4096:]
        return data

    # -- running code ---------------------------------------------------------------------------------
    def exec(self, code: str, timeout: float = 10.0) -> bytes:
        try:
            out, err = self.transport.exec_raw(code, timeout=timeout)
        except (TransportError, OSError, serial.SerialException) as exc:
            raise EdgectlError(
                f"{self.port_name}: the board stopped answering ({exc}); check the cable", NO_BOARD
            ) from None
        if err:
            raise TransportExecError(out, err.decode("utf-8", "replace"))
        return out

    def eval(self, expression: str) -> Any:
        return ast.literal_eval(self.exec(f"print(repr({expression}))").decode().strip())

    def info(self) -> dict[str, Any]:
        """What the board says about itself: MicroPython version, bytecode version, platform."""
        return self.eval(
            "(lambda s: {'version': '.'.join(str(v) for v in s.implementation.version[:3]), "
            "'mpy': getattr(s.implementation, '_mpy', 0), 'platform': s.platform, "
            "'machine': getattr(s.implementation, '_machine', '')})(__import__('sys'))"
        )

    def reboot(self) -> None:
        """Hard reset; the board reboots into main.py, so the raw REPL session ends."""
        # The board may reset before it acknowledges.
        with contextlib.suppress(TransportError, OSError, serial.SerialException):
            self.transport.exec_raw_no_follow("import machine\nmachine.reset()")
        self.transport.in_raw_repl = False

    # -- BoardFiles --------------------------------------------------------------------------------
    def read(self, path: str) -> bytes | None:
        try:
            return bytes(self.eval(f"open({path!r},'rb').read()"))
        except TransportExecError as exc:
            if "OSError" in exc.error_output:
                return None
            raise

    def write(self, path: str, data: bytes, progress: Progress) -> None:
        # base64 costs 4/3 of the bytes on the wire; repr() of compiled .mpy code costs 2 to 4 times.
        self.exec(f"import binascii\nf=open({path!r},'wb')\nw=f.write\na=binascii.a2b_base64")
        for i in range(0, len(data), CHUNK):
            chunk = data[i : i + CHUNK]
            self.exec(f"w(a('{base64.b64encode(chunk).decode()}'))")
            progress(len(chunk))
        self.exec("f.close()\ndel f,w,a")

    def sha256(self, path: str) -> str | None:
        code = (
            "import hashlib,binascii\nh=hashlib.sha256()\n"
            f"with open({path!r},'rb') as f:\n"
            " while 1:\n  b=f.read(512)\n  if not b:break\n  h.update(b)\n"
            "print(binascii.hexlify(h.digest()).decode())"
        )
        try:
            return self.exec(code).decode().strip()
        except TransportExecError as exc:
            if "OSError" in exc.error_output:
                return None
            raise

    def rename(self, old: str, new: str) -> None:
        # LittleFS replaces the target in one atomic step; FAT refuses, so there it is removed first.
        self.exec(
            f"import os\ntry:\n os.rename({old!r},{new!r})\nexcept OSError:\n"
            f" try:\n  os.remove({new!r})\n except OSError:\n  pass\n os.rename({old!r},{new!r})"
        )

    def remove_tree(self, path: str) -> None:
        self.exec(
            "import os\n"
            "def _rm(p):\n"
            " try:\n  m=os.stat(p)[0]\n except OSError:\n  return\n"
            " if m&0x4000:\n  for e in os.ilistdir(p):\n   _rm(p+'/'+e[0])\n  os.rmdir(p)\n"
            " else:\n  os.remove(p)\n"
            f"_rm({path!r})\ndel _rm"
        )

    def makedirs(self, path: str) -> None:
        if not path or path == "/":
            return
        self.exec(
            "import os\np=''\n"
            f"for s in {path.strip('/')!r}.split('/'):\n"
            " p+='/'+s\n try:\n  os.mkdir(p)\n except OSError:\n  pass"
        )

    def listdir(self, path: str) -> list[str]:
        try:
            return list(self.eval(f"[e[0] for e in __import__('os').ilistdir({path!r})]"))
        except TransportExecError as exc:
            if "OSError" in exc.error_output:
                return []
            raise

    def free_bytes(self) -> int:
        st = self.eval("__import__('os').statvfs('/')")
        return int(st[0]) * int(st[3])
