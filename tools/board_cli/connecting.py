"""What a technician sees while edgectl reaches a board: one line that grows with each attempt, as
esptool's "Connecting....", so a port with nothing behind it never looks like a hung terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import TextIO


class Connecting:
    """``/dev/ttyUSB0: connecting: our firmware ...... no answer; raw REPL .. ok``"""

    def __init__(
        self, port: str, enabled: bool = True, stream: TextIO | None = None, verb: str = "connecting"
    ) -> None:
        self.port = port
        self.verb = verb
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._open = False

    def _write(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text)
            self.stream.flush()

    def stage(self, what: str) -> None:
        """A new way of reaching the board (our protocol, the raw REPL)."""
        self._write(f"; {what} " if self._open else f"{self.port}: {self.verb}: {what} ")
        self._open = True

    def attempt(self) -> None:
        self._write(".")

    def result(self, text: str) -> None:
        self._write(f" {text}")

    def end(self) -> None:
        """The line is complete (connected, or about to print an error below it)."""
        if self._open:
            self._write("\n")
            self._open = False


def waiting_for_reboot(
    port: str, timeout_s: float, enabled: bool, pause_s: float = 0.0
) -> Iterator[Connecting]:
    """One try after another (``pause_s`` apart) until ``timeout_s`` has passed, each a dot on a
    ``rebooting: waiting for it`` line: the caller ends the line once the board is back, and the
    line ends by itself when the time is up."""
    waiting = Connecting(port, enabled=enabled, verb="rebooting")
    waiting.stage("waiting for it")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(pause_s)
        waiting.attempt()
        yield waiting
    waiting.end()
