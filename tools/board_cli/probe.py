"""Asking the board on a port who it is, for `edgectl board list --probe`."""

from __future__ import annotations

from dataclasses import dataclass

from agent.boards.install import current_version

from ..errors import EdgectlError
from .proto import probe_hello
from .provision import read_config
from .repl_link import ReplBoard

PROBE_PAUSES_S = (0.0, 0.5)  # a listing should not wait as long as a flash does


@dataclass(frozen=True)
class BoardAnswer:
    answered: bool
    micropython: str | None = None
    firmware: str | None = None  # our firmware version installed, if any
    board_id: str | None = None  # as provisioned
    detail: str = ""
    hello: bool = False  # it answered our protocol's HELLO: our firmware is running

    def summary(self) -> str:
        if not self.answered:
            return f"no answer ({self.detail})" if self.detail else "no answer"
        if self.hello:
            return f"answers HELLO: firmware {self.firmware} running, board {self.board_id}"
        parts = [f"MicroPython {self.micropython}"]
        parts.append(f"firmware {self.firmware}" if self.firmware else "no firmware of ours")
        if self.board_id:
            parts.append(f"board {self.board_id}")
        return ", ".join(parts)


def probe(port: str, baud: int = 115200, hello_timeout_s: float = 1.5) -> BoardAnswer:
    """Who is on the port: a board running our firmware answers HELLO without being interrupted;
    otherwise its program is briefly interrupted through the raw REPL, and restarted."""
    try:
        hello = probe_hello(port, baud, hello_timeout_s)
    except EdgectlError as exc:
        return BoardAnswer(False, detail="port busy" if "in use" in exc.message else "error")
    if hello is not None:
        return BoardAnswer(True, None, str(hello.get("fw")), str(hello.get("id")), hello=True)
    try:
        with ReplBoard(port, baud, pauses=PROBE_PAUSES_S) as board:
            info = board.info()
            config = read_config(board)
            return BoardAnswer(
                True,
                info["version"],
                current_version(board),
                (config or {}).get("board_id") if config else None,
            )
    except EdgectlError as exc:
        reason = (
            "port busy"
            if "in use" in exc.message
            else "no MicroPython REPL"
            if "raw REPL" in exc.message
            else "error"
        )
        return BoardAnswer(False, detail=reason)
