"""The gateway's side of the board protocol (firmware/streetfw/wire.py) over any byte stream: framing,
sequence numbers, requests answered by id, HELLO, file transfer and the board's log lines.

The agent's ``BoardSession`` and edgectl's ``ProtocolBoard`` both speak to a board through it; what
to do with readings, alarms and HELLOs stays with them (``on_frames``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from firmware.streetfw import wire
from firmware.streetfw.app import FS_READ_MAX

Frame = tuple[int, int, Any]  # (frame type, sequence number, body)

REQUEST_TIMEOUT_S = 2.0
REQUEST_TRIES = 3
# File transfer: a request and its answer are lost together with about 15 % odds at a BER of 1e-4,
# so opening and closing get more tries; a lost chunk is sent again, smaller.
FILE_TRIES = 8
FILE_CLOSE_TIMEOUT_S = 10.0  # the board hashes the whole file before it answers
CHUNK_TIMEOUT_S = 1.0
MIN_CHUNK = 64
CHUNK_MISSES = 12  # consecutive lost chunks before a transfer gives up
LOG_LINES = 200  # the board's latest log lines kept


class ByteStream(Protocol):
    """What the client needs from a link: a serial port, a pseudo-terminal, an in-memory pair."""

    async def read(self) -> bytes: ...  # raises LinkClosed (agent/boards/link.py) at the end
    def write(self, data: bytes) -> None: ...


class BoardError(Exception):
    """A board command that failed: not connected, no answer, or refused by the board."""


class Refused(BoardError):
    """The board answered and refused; the message is the board's own reason."""


class NoAnswer(BoardError):
    """The board did not answer at all (as opposed to refusing)."""


class BoardClient:
    """One board's protocol state, kept across reconnections (request ids and frame counts go on)."""

    def __init__(
        self,
        name: str,
        *,
        on_frames: Callable[[list[Frame]], None] | None = None,
        on_retry: Callable[[], None] | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
        tries: int = REQUEST_TRIES,
    ) -> None:
        self.name = name  # the subject of error messages: "board pole-7-b1", "/dev/ttyUSB0: the board"
        self.on_frames = on_frames  # every frame the client did not consume, after each read
        self.on_retry = on_retry
        self.timeout_s = timeout_s
        self.tries = tries
        self.deframer = wire.Deframer()
        self.seq = random.randrange(1 << 16)
        self.req_id = random.randrange(1 << 30)
        self.last_rx = 0.0  # monotonic time of the latest good frame
        self.hello_body: dict[str, Any] | None = None
        self.logs: deque[str] = deque(maxlen=LOG_LINES)
        self._stream: ByteStream | None = None
        self._results: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._acks: dict[Any, asyncio.Future[None]] = {}
        self._hello = asyncio.Event()

    # -- the stream ----------------------------------------------------------------------------------
    def attach(self, stream: ByteStream) -> None:
        self._stream = stream
        self.deframer.n = 0  # a half frame from the last connection is not the start of a new one
        self.deframer.overflow = False
        self.last_rx = time.monotonic()
        self._hello.clear()

    def detach(self, error: BaseException) -> None:
        """The stream is gone: requests still waiting fail with ``error``."""
        self._stream = None
        self._hello.clear()
        pending: list[asyncio.Future[Any]] = [*self._results.values(), *self._acks.values()]
        for fut in pending:
            if not fut.done():
                fut.set_exception(error)
        self._results.clear()
        self._acks.clear()

    async def receive(self) -> None:
        """Read the attached stream until it ends (LinkClosed): replies resolve their requests, the
        other frames go to ``on_frames``."""
        stream = self._stream
        if stream is None:
            raise BoardError(f"{self.name} is not connected")
        while True:
            frames = self.deframer.feed(await stream.read())
            passed = []
            for frame in frames:
                self.last_rx = time.monotonic()
                if not self._consumed(frame):
                    passed.append(frame)
            if self.on_frames is not None:
                self.on_frames(passed)

    def _consumed(self, frame: Frame) -> bool:
        """A RESULT or ACK for a request (answered, or late and dropped); a LOG line is noted."""
        ftype, _seq, body = frame
        if ftype == wire.LOG and isinstance(body, dict):
            self.logs.append(f"{body.get('l', 'info')}: {str(body.get('m'))[:300]}")
        if ftype == wire.RESULT and isinstance(body, dict) and "id" in body:
            return self._answer(self._results, body["id"], body)
        if ftype == wire.ACK:
            return self._answer(self._acks, body, None)
        return False

    @staticmethod
    def _answer(waiting: dict[Any, asyncio.Future[Any]], key: Any, value: Any) -> bool:
        try:
            fut = waiting.pop(key, None)
        except TypeError:  # an id no request can have: the owner counts the frame as rejected
            return False
        if fut is not None and not fut.done():
            fut.set_result(value)
        return True

    def send(self, ftype: int, body: Any) -> int:
        if self._stream is None:
            raise BoardError(f"{self.name} is not connected")
        self.seq = (self.seq + 1) & 0xFFFF
        self._stream.write(wire.encode_frame(ftype, self.seq, body))
        return self.seq

    def _retried(self) -> None:
        if self.on_retry is not None:
            self.on_retry()

    # -- requests ------------------------------------------------------------------------------------
    async def request(
        self, ftype: int, body: dict[str, Any], timeout_s: float | None = None, tries: int | None = None
    ) -> Any:
        """Send a request (CMD or file frame) and wait for its RESULT, retrying with the same id (the
        board answers a repeated id from its cache, so a retry never runs a command twice)."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        tries = self.tries if tries is None else tries
        self.req_id = (self.req_id + 1) & 0x7FFFFFFF
        req_id = self.req_id
        body = {**body, "id": req_id}
        for attempt in range(tries):
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._results[req_id] = fut
            self.send(ftype, body)
            try:
                result = await asyncio.wait_for(fut, timeout_s)
            except TimeoutError:
                self._results.pop(req_id, None)
                if attempt + 1 < tries:
                    self._retried()
                continue
            if not result.get("ok"):
                raise Refused(str(result.get("e", "refused")))
            return result.get("r")
        raise NoAnswer(f"{self.name} did not answer ({tries} tries)")

    async def command(self, op: str, **args: Any) -> Any:
        return await self.request(wire.CMD, {"op": op, "a": args})

    async def acknowledged(self, ftype: int, body: Callable[[], Any], timeout_s: float, tries: int) -> bool:
        """Send a frame the board ACKs by its sequence number (TIME) until it does; ``body`` is made
        anew for each try."""
        for _ in range(tries):
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            seq = self.send(ftype, body())
            self._acks[seq] = fut
            try:
                await asyncio.wait_for(fut, timeout_s)
                return True
            except TimeoutError:
                self._acks.pop(seq, None)
                self._retried()
        return False

    async def hello(
        self,
        body: dict[str, Any],
        timeout_s: float,
        tries: int,
        attempt: Callable[[], None] | None = None,
    ) -> dict[str, Any] | None:
        """Say HELLO until the board's HELLO is accepted (``said_hello``, by the owner of the frames,
        who checks it); None if it never was."""
        for _ in range(tries):
            if attempt is not None:
                attempt()
            self._hello.clear()
            self.send(wire.HELLO, body)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hello.wait(), timeout_s)
                return self.hello_body
        return None

    def said_hello(self, body: dict[str, Any]) -> None:
        """The board's HELLO, accepted: the connection is greeted."""
        self.hello_body = body
        self._hello.set()

    @property
    def greeted(self) -> bool:
        return self._hello.is_set()

    # -- files ---------------------------------------------------------------------------------------
    async def read_file(self, path: str) -> bytes | None:
        """A file of any size, in chunks of one frame; None if the board has no such file."""
        data = b""
        while True:
            chunk = await self.command("fs_read", path=path, offset=len(data))
            if chunk is None:
                return None
            if not isinstance(chunk, bytes | bytearray):
                raise BoardError(f"{self.name} sent {type(chunk).__name__} for a file")
            data += chunk
            if len(chunk) < FS_READ_MAX:
                return data

    async def send_file(
        self, path: str, data: bytes, progress: Callable[[int], None] | None = None, chunk: int = 512
    ) -> None:
        """Write a file on the board: chunks acknowledged one by one, then the board checks size and
        sha256 before renaming. On a noisy line a lost chunk is sent again, smaller: a 512-byte frame
        is hit by about a third of bit errors at 1e-4, a 64-byte one by a twentieth."""
        opening = {"p": path, "n": len(data), "h": hashlib.sha256(data).digest()}
        await self.request(wire.FILE_OPEN, opening, tries=FILE_TRIES)
        offset, size, misses = 0, chunk, 0
        while offset < len(data):
            piece = {"o": offset, "d": data[offset : offset + size]}
            try:
                got = await self.request(wire.FILE_DATA, piece, timeout_s=CHUNK_TIMEOUT_S, tries=1)
            except NoAnswer:
                misses += 1
                if misses > CHUNK_MISSES:
                    raise NoAnswer(
                        f"{self.name} stopped answering at byte {offset} of {path} "
                        f"({misses} chunks in a row lost; check the cable)"
                    ) from None
                self._retried()
                size = max(MIN_CHUNK, size // 2)
                continue
            if not isinstance(got, int) or got <= offset:
                raise BoardError(f"{self.name} stalled at byte {offset} of {path}")
            misses = 0
            size = min(chunk, size + MIN_CHUNK)  # back up gently once the line is clean again
            if progress is not None:
                progress(got - offset)
            offset = got
        await self.request(wire.FILE_CLOSE, {}, timeout_s=FILE_CLOSE_TIMEOUT_S, tries=FILE_TRIES)
