"""edgectl's side of our serial protocol (firmware/streetfw/wire.py): who is on a port (HELLO), board
commands, and file transfer for flashing a board that already runs our firmware, without
interrupting it into the REPL. A synchronous face on the agent's BoardClient (agent/boards/client.py),
run on a private event loop, with the errors turned into sentences for the technician."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from agent.boards import client as board_client
from agent.boards.client import BoardClient, BoardError, Frame, Refused
from agent.boards.link import LinkClosed, SerialLink
from agent.boards.protocol_files import ProtocolFiles
from firmware.streetfw import wire

from ..errors import NO_BOARD, EdgectlError
from .connecting import Connecting
from .ports import open_port

TRIES = 6  # a request and its answer are lost together with about 15 % odds at a BER of 1e-4
T = TypeVar("T")


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
        self.client = BoardClient(f"{port}: the board", on_frames=self._frames, tries=TRIES)
        serial_port = open_port(port, baud, timeout=0)
        # The loop runs only while a call waits for the board, as the port was read before: frames
        # that come in between wait in the line.
        self._runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
        self._link: SerialLink | None = None
        self._reader: asyncio.Task[None] | None = None
        try:
            self._runner.run(self._attach(serial_port))
        except BaseException:
            serial_port.close()
            self._runner.close()
            raise

    async def _attach(self, serial_port: Any) -> None:
        self._link = SerialLink(serial_port)
        self.client.attach(self._link)
        self._reader = asyncio.create_task(self.client.receive())

    def _frames(self, frames: list[Frame]) -> None:
        for ftype, _seq, body in frames:
            if ftype == wire.HELLO and isinstance(body, dict):
                self.client.said_hello(body)

    @property
    def logs(self) -> list[str]:
        """The board's LOG lines seen while waiting for answers."""
        return list(self.client.logs)

    def __enter__(self) -> ProtocolBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
        reader = self._reader
        if reader is not None and reader.done() and not reader.cancelled():
            reader.exception()  # the port closed between calls: seen, not an unretrieved error
        with contextlib.suppress(Exception):
            self._runner.close()  # cancels the reader

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        """One protocol call to its end; a port that closes meanwhile ends it at once."""
        try:
            return self._runner.run(self._until_gone(call))
        except Refused as exc:
            raise EdgectlError(f"{self.port_name}: the board refused: {exc}", NO_BOARD) from None
        except board_client.NoAnswer as exc:
            raise NoAnswer(str(exc), NO_BOARD) from None
        except BoardError as exc:
            raise EdgectlError(str(exc), NO_BOARD) from None
        except LinkClosed as exc:
            raise EdgectlError(
                f"{self.port_name}: the board went away ({exc}); check the cable", NO_BOARD
            ) from None

    async def _until_gone(self, call: Coroutine[Any, Any, T]) -> T:
        task = asyncio.ensure_future(call)
        reader = self._reader
        assert reader is not None
        await asyncio.wait({task, reader}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            reader.result()  # raises LinkClosed
            raise LinkClosed("the serial port closed")
        return task.result()

    def hello(self) -> dict[str, Any] | None:
        """The board's HELLO (id, firmware version, sensors, ...), or None if it does not speak our protocol."""
        feedback = self.feedback
        if feedback:
            feedback.stage("our firmware")
        body = self.run(
            self.client.hello(
                {"gw": "edgectl", "proto": wire.PROTOCOL},
                self.timeout_s / TRIES + 0.3,
                TRIES,
                feedback.attempt if feedback else None,
            )
        )
        if feedback and body is not None:
            feedback.result(f"board {body.get('id')}, firmware {body.get('fw')}")
            feedback.end()
        elif feedback:
            feedback.result("no answer")
        return body

    def request(self, ftype: int, body: dict[str, Any], timeout_s: float = 2.0, tries: int = TRIES) -> Any:
        return self.run(self.client.request(ftype, body, timeout_s, tries))

    def command(self, op: str, **args: Any) -> Any:
        return self.run(self.client.command(op, **args))

    def read_file(self, path: str) -> bytes | None:
        """A file of any size, in chunks of one frame; None if the board has no such file."""
        return self.run(self.client.read_file(path))

    def send_file(self, path: str, data: bytes, progress: Callable[[int], None], chunk: int = 512) -> None:
        """Chunks acknowledged one by one, smaller on a noisy line (BoardClient.send_file)."""
        self.run(self.client.send_file(path, data, progress, chunk))

    def files(self) -> ProtocolFiles:
        """install.BoardFiles over this connection, for `edgectl board flash`."""
        return ProtocolFiles(self.client, lambda _what, call: self.run(call))


def probe_hello(
    port: str, baud: int = 115200, timeout_s: float = 1.5, feedback: Connecting | None = None
) -> dict[str, Any] | None:
    """HELLO of the board on ``port`` if it runs our firmware; None if it does not answer it."""
    with ProtocolBoard(port, baud, timeout_s, feedback) as board:
        return board.hello()
