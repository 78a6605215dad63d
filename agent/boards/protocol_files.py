"""install.BoardFiles over our board protocol, for the agent's OTA (agent/boards/updates.py) and for
``edgectl board flash`` on a board that runs our firmware: the same op names on both paths.

The install flow is synchronous and the protocol is async: ``run`` runs one protocol coroutine to
its end and turns its errors into the caller's (the agent: on the session's event loop from a worker
thread, InstallError; edgectl: on its private loop, EdgectlError).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from .install import Progress

# what: "fs_read", "writing /fw/1.2.0/main.mpy", for the error message.
Run = Callable[[str, Coroutine[Any, Any, Any]], Any]


class BoardCommands(Protocol):
    """What the files need of a board: a BoardClient, or the agent's BoardSession around one."""

    async def command(self, op: str, **args: Any) -> Any: ...
    async def send_file(
        self, path: str, data: bytes, *, progress: Callable[[int], None] | None = None
    ) -> None: ...


class ProtocolFiles:
    """install.BoardFiles over the protocol: the same verified, resumable install as over the raw REPL,
    and the board keeps running its firmware until the reboot at the end."""

    def __init__(self, board: BoardCommands, run: Run) -> None:
        self.board = board
        self.run = run

    def _call(self, op: str, **args: Any) -> Any:
        return self.run(op, self.board.command(op, **args))

    def read(self, path: str) -> bytes | None:
        data: bytes | None = self._call("fs_read", path=path)
        return data

    def write(self, path: str, data: bytes, progress: Progress) -> None:
        """``progress`` is called per chunk, on whichever thread ``run`` runs the transfer."""
        self.run(f"writing {path}", self.board.send_file(path, data, progress=progress))

    def sha256(self, path: str) -> str | None:
        digest: str | None = self._call("fs_sha256", path=path)
        return digest

    def rename(self, old: str, new: str) -> None:
        self._call("fs_rename", old=old, new=new)

    def remove_tree(self, path: str) -> None:
        self._call("fs_rmtree", path=path)

    def makedirs(self, path: str) -> None:
        self._call("fs_mkdir", path=path)

    def listdir(self, path: str) -> list[str]:
        return list(self._call("fs_listdir", path=path))

    def free_bytes(self) -> int:
        return int(self._call("fs_free"))
