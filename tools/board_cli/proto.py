"""edgectl's side of our serial protocol (firmware/streetfw/wire.py), synchronous: who is on a port
(HELLO), board commands, and file transfer for flashing a board that already runs our firmware,
without interrupting it into the REPL."""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import Callable
from typing import Any

import serial

from firmware.streetfw import wire
from firmware.streetfw.app import FS_READ_MAX

from ..errors import NO_BOARD, EdgectlError
from .connecting import Connecting
from .ports import open_port, port_error

TRIES = 6  # a request and its answer are lost together with about 15 % odds at a BER of 1e-4
MIN_CHUNK = 64
CHUNK_MISSES = 12  # consecutive lost chunks before a transfer gives up


class NoAnswer(EdgectlError):
    """The board did not answer a request at all (as opposed to refusing it)."""


class ProtocolBoard:
    """A board running our firmware, reached over the protocol. Use as a context manager."""

    def __init__(
        self, port: str, baud: int = 115200, timeout_s: float = 1.5, feedback: Connecting | None = None
    ) -> None:
        self.port_name = port
        self.feedback = feedback
        self.timeout_s = timeout_s
        self.port = open_port(port, baud, timeout=0.05)
        self.deframer = wire.Deframer()
        self.seq = random.randrange(1 << 16)
        self.req_id = random.randrange(1 << 30)
        self.hello_body: dict[str, Any] | None = None
        self.logs: list[str] = []  # the board's LOG lines seen while waiting for answers

    def __enter__(self) -> ProtocolBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            self.port.close()

    def _send(self, ftype: int, body: Any) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        try:
            self.port.write(wire.encode_frame(ftype, self.seq, body))
        except (OSError, serial.SerialException) as exc:
            raise port_error(self.port_name, exc) from None

    def _frames(self, deadline: float) -> list[tuple[int, int, Any]]:
        try:
            data = self.port.read(self.port.in_waiting or 1)
        except (OSError, serial.SerialException) as exc:
            raise EdgectlError(
                f"{self.port_name}: the board went away ({exc}); check the cable", NO_BOARD
            ) from None
        return self.deframer.feed(data) if data else []

    def _wait(self, want: Callable[[int, Any], bool], timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for ftype, _seq, body in self._frames(deadline):
                if ftype == wire.LOG and isinstance(body, dict):
                    self.logs.append(f"{body.get('l', 'info')}: {str(body.get('m'))[:300]}")
                if want(ftype, body):
                    return body
        return None

    def hello(self) -> dict[str, Any] | None:
        """The board's HELLO (id, firmware version, sensors, ...), or None if it does not speak our protocol."""
        if self.feedback:
            self.feedback.stage("our firmware")
        for _ in range(TRIES):
            if self.feedback:
                self.feedback.attempt()
            self._send(wire.HELLO, {"gw": "edgectl", "proto": wire.PROTOCOL})
            body = self._wait(
                lambda t, b: t == wire.HELLO and isinstance(b, dict), self.timeout_s / TRIES + 0.3
            )
            if body is not None:
                self.hello_body = body
                if self.feedback:
                    self.feedback.result(f"board {body.get('id')}, firmware {body.get('fw')}")
                    self.feedback.end()
                return body
        if self.feedback:
            self.feedback.result("no answer")
        return None

    def request(self, ftype: int, body: dict[str, Any], timeout_s: float = 2.0, tries: int = TRIES) -> Any:
        self.req_id = (self.req_id + 1) & 0x7FFFFFFF
        req = {**body, "id": self.req_id}
        for _ in range(tries):
            self._send(ftype, req)
            result = self._wait(
                lambda t, b: t == wire.RESULT and isinstance(b, dict) and b.get("id") == self.req_id,
                timeout_s,
            )
            if result is None:
                continue
            if not result.get("ok"):
                raise EdgectlError(f"{self.port_name}: the board refused: {result.get('e')}", NO_BOARD)
            return result.get("r")
        raise NoAnswer(f"{self.port_name}: the board did not answer ({tries} tries)", NO_BOARD)

    def command(self, op: str, **args: Any) -> Any:
        return self.request(wire.CMD, {"op": op, "a": args})

    def read_file(self, path: str) -> bytes | None:
        """A file of any size, in chunks of one frame; None if the board has no such file."""
        data = b""
        while True:
            chunk = self.command("fs_read", path=path, offset=len(data))
            if chunk is None:
                return None
            if not isinstance(chunk, bytes | bytearray):
                raise EdgectlError(
                    f"{self.port_name}: the board sent {type(chunk).__name__} for a file", NO_BOARD
                )
            data += chunk
            if len(chunk) < FS_READ_MAX:
                return data

    def send_file(self, path: str, data: bytes, progress: Callable[[int], None], chunk: int = 512) -> None:
        """Chunks acknowledged one by one. On a noisy line a lost chunk is sent again, smaller: a
        512-byte frame is hit by about a third of bit errors at 1e-4, a 64-byte one by a twentieth."""
        self.request(wire.FILE_OPEN, {"p": path, "n": len(data), "h": hashlib.sha256(data).digest()}, tries=8)
        offset, size, misses = 0, chunk, 0
        while offset < len(data):
            try:
                got = self.request(
                    wire.FILE_DATA, {"o": offset, "d": data[offset : offset + size]}, timeout_s=1.0, tries=1
                )
            except NoAnswer:
                misses += 1
                if misses > CHUNK_MISSES:
                    raise NoAnswer(
                        f"{self.port_name}: the board stopped answering at byte {offset} of {path} "
                        f"({misses} chunks in a row lost; check the cable)",
                        NO_BOARD,
                    ) from None
                size = max(MIN_CHUNK, size // 2)
                continue
            if not isinstance(got, int) or got <= offset:
                raise EdgectlError(
                    f"{self.port_name}: the board stalled at byte {offset} of {path}", NO_BOARD
                )
            misses = 0
            size = min(chunk, size + MIN_CHUNK)  # back up gently once the line is clean again
            progress(got - offset)
            offset = got
        self.request(wire.FILE_CLOSE, {}, timeout_s=10.0, tries=8)


def probe_hello(
    port: str, baud: int = 115200, timeout_s: float = 1.5, feedback: Connecting | None = None
) -> dict[str, Any] | None:
    """HELLO of the board on ``port`` if it runs our firmware; None if it does not answer it."""
    with ProtocolBoard(port, baud, timeout_s, feedback) as board:
        return board.hello()


class ProtocolFiles:
    """install.BoardFiles over our protocol: the same verified, resumable install as over the raw REPL,
    for a board that runs our firmware (it keeps running until the reboot at the end)."""

    def __init__(self, board: ProtocolBoard) -> None:
        self.board = board

    def read(self, path: str) -> bytes | None:
        return self.board.command("fs_read", path=path)

    def write(self, path: str, data: bytes, progress: Callable[[int], None]) -> None:
        self.board.send_file(path, data, progress)

    def sha256(self, path: str) -> str | None:
        return self.board.command("fs_sha256", path=path)

    def rename(self, old: str, new: str) -> None:
        self.board.command("fs_rename", old=old, new=new)

    def remove_tree(self, path: str) -> None:
        self.board.command("fs_rmtree", path=path)

    def makedirs(self, path: str) -> None:
        self.board.command("fs_mkdir", path=path)

    def listdir(self, path: str) -> list[str]:
        return list(self.board.command("fs_listdir", path=path))

    def free_bytes(self) -> int:
        return int(self.board.command("fs_free"))
