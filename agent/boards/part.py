"""The boards part of the agent: one session per configured sensor board, their link statistics in
health telemetry, and board commands offered over MQTT."""

from __future__ import annotations

import asyncio
from typing import Any

from ..commands import CommandError
from .client import BoardError
from .session import BoardSession
from .updates import FirmwareUpdates

# Board operations an operator may ask for over MQTT, and whether they change the board.
OPERATIONS = {
    "status": False,
    "read_config": False,
    "ping": False,
    "lamp": True,
    "interval": True,
    "threshold": True,
    "write_config": True,
    "reboot": True,
}


class Boards:
    def __init__(self, sessions: list[BoardSession]) -> None:
        self.sessions = {s.config.id: s for s in sessions}

    def get(self, board: Any) -> BoardSession:
        if board is None and len(self.sessions) == 1:
            return next(iter(self.sessions.values()))
        if not isinstance(board, str):
            raise CommandError(
                "bad-args", f"'board' must be a board id (a string), not {type(board).__name__}"
            )
        if board not in self.sessions:
            known = ", ".join(sorted(self.sessions)) or "none configured"
            raise CommandError("unknown-board", f"no board {board!r}; boards: {known}")
        return self.sessions[board]

    async def call(self, args: dict[str, Any], op: str, **params: Any) -> dict[str, Any]:
        session = self.get(args.get("board"))
        try:
            result = await session.command(op, **params)
        except BoardError as exc:
            raise CommandError("board-error", str(exc)) from None
        return {"board": session.config.id, "op": op, "result": result}


async def setup(ctx: Any) -> None:
    boards = Boards([BoardSession(cfg, ctx.events()) for cfg in ctx.config.boards])
    ctx.boards = boards
    if not boards.sessions:
        return
    ctx.health.register("boards", lambda: {bid: s.health() for bid, s in boards.sessions.items()})

    async def lamp(args: dict[str, Any]) -> dict[str, Any]:
        level = args.get("level")
        if isinstance(level, bool) or not isinstance(level, int | float) or not 0 <= level <= 1:
            raise CommandError("bad-args", "level must be a number from 0 (off) to 1 (full)")
        return await boards.call(args, "lamp", level=level)

    async def board_command(args: dict[str, Any]) -> dict[str, Any]:
        op = args.get("op")
        if op not in OPERATIONS:
            raise CommandError("bad-args", f"op must be one of {', '.join(OPERATIONS)}; got {op!r}")
        params = args.get("args") or {}
        if not isinstance(params, dict):
            raise CommandError("bad-args", "args must be a map")
        return await boards.call(args, op, **params)

    async def status(args: dict[str, Any]) -> dict[str, Any]:
        session = boards.get(args.get("board"))
        return {"board": session.config.id, "link": session.health()}

    ctx.commands.register(
        "board-lamp", lamp, mutating=True, description="dim a pole's lamp: board, level 0..1"
    )
    ctx.commands.register(
        "board-command",
        board_command,
        mutating=True,
        description="a board operation: board, op (" + ", ".join(OPERATIONS) + "), args",
    )
    ctx.commands.register("board-status", status, mutating=False, description="a board's link statistics")
    uploads = getattr(ctx, "uploads", None)
    if uploads is not None:
        updates = FirmwareUpdates(boards.get, uploads, list(ctx.config.updates.firmware_signers))
        ctx.commands.register(
            "board-firmware-install",
            updates.install,
            mutating=True,
            description="install a staged firmware bundle on a board: board, transfer, sha256",
        )


async def run(ctx: Any) -> None:
    boards: Boards | None = getattr(ctx, "boards", None)
    if boards is None or not boards.sessions:
        await ctx.stopping.wait()
        return
    await asyncio.gather(*(s.run() for s in boards.sessions.values()))
