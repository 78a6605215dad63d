"""`edgectl board provision`: write a board's config, read it back, and compare."""

from __future__ import annotations

import json
from typing import Any

from ..errors import FAILED, EdgectlError
from .board_setup import CONFIG_PATH, BoardSetup, differences
from .install import InstallError, write_verified
from .repl_link import ReplBoard

PREVIOUS_PATH = "/config.prev.json"


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def read_config(board: ReplBoard) -> dict[str, Any] | None:
    raw = board.read(CONFIG_PATH)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise EdgectlError(
            f"{board.port_name}: {CONFIG_PATH} on the board is not valid JSON; provision it again", FAILED
        ) from None
    return value if isinstance(value, dict) else None


def provision_over_repl(setup: BoardSetup, port: str, baud: int = 115200) -> dict[str, Any] | None:
    """Write ``setup`` (the previous config kept as /config.prev.json); returns the previous config."""
    wanted = setup.document()
    with ReplBoard(port, baud) as board:
        previous = board.read(CONFIG_PATH)
        try:
            if previous is not None and previous != encode(wanted):
                write_verified(board, PREVIOUS_PATH, previous, lambda n: None)
            write_verified(board, CONFIG_PATH, encode(wanted), lambda n: None)
        except InstallError as exc:
            raise EdgectlError(f"{port}: {exc}", FAILED) from None
        got = read_config(board)
    # Leaving the REPL soft-reboots the board, so its firmware starts again with the new config.
    problems = differences(wanted, got)
    if problems:
        raise EdgectlError(f"{port}: the config read back differs: {'; '.join(problems)}", FAILED)
    return json.loads(previous) if previous else None


def show_over_repl(port: str, baud: int = 115200) -> dict[str, Any] | None:
    with ReplBoard(port, baud) as board:
        return read_config(board)
