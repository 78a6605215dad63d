"""`edgectl board provision`: write a board's config, read it back, and compare."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agent.boards.install import InstallError, write_verified

from ..errors import FAILED, EdgectlError
from .board_setup import CONFIG_PATH, BoardSetup, differences
from .connecting import Connecting, waiting_for_reboot
from .proto import ProtocolBoard
from .repl_link import ReplBoard

PREVIOUS_PATH = "/config.prev.json"
REBOOT_TIMEOUT_S = 20.0


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def parse_config(raw: bytes | None, port: str) -> dict[str, Any] | None:
    """A board's /config.json as read over either link; None where it has none."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise EdgectlError(
            f"{port}: {CONFIG_PATH} on the board is not valid JSON; provision it again", FAILED
        ) from None
    return value if isinstance(value, dict) else None


def read_config(board: ReplBoard) -> dict[str, Any] | None:
    return parse_config(board.read(CONFIG_PATH), board.port_name)


def provision_over_repl(
    setup: BoardSetup, port: str, baud: int = 115200, feedback: Connecting | None = None
) -> dict[str, Any] | None:
    """Write ``setup`` (the previous config kept as /config.prev.json); returns the previous config."""
    wanted = setup.document()
    with ReplBoard(port, baud, feedback=feedback) as board:
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


def show_over_repl(
    port: str, baud: int = 115200, feedback: Connecting | None = None
) -> dict[str, Any] | None:
    with ReplBoard(port, baud, feedback=feedback) as board:
        return read_config(board)


def show_over_protocol(port: str, baud: int = 115200) -> dict[str, Any] | None:
    """The config of a board that runs our firmware, read over the protocol: the firmware keeps
    running (no REPL, no reboot), so the agent's link to it is not disturbed."""
    with ProtocolBoard(port, baud) as board:
        return parse_config(board.read_file(CONFIG_PATH), port)


def provision_over_protocol(
    setup: BoardSetup, port: str, baud: int = 115200, feedback: Connecting | None = None
) -> dict[str, Any]:
    """Write ``setup`` to a board that runs our firmware, over the protocol's verified file transfer
    (robust to line noise, unlike the raw REPL), keep the previous config, reboot, and check that the
    board comes back under the new config. Returns the board's HELLO before the change."""
    data = encode(setup.document())
    staged = CONFIG_PATH.replace(".json", ".new.json")
    with ProtocolBoard(port, baud) as board:
        before = board.hello()
        if before is None:
            raise EdgectlError(f"{port}: the board does not answer our protocol", FAILED)
        board.send_file(staged, data, lambda n: None)
        if board.command("fs_sha256", path=CONFIG_PATH) is not None:
            board.command("fs_rename", old=CONFIG_PATH, new=PREVIOUS_PATH)
        board.command("fs_rename", old=staged, new=CONFIG_PATH)
        if board.command("fs_sha256", path=CONFIG_PATH) != hashlib.sha256(data).hexdigest():
            raise EdgectlError(f"{port}: the config read back differs from what was written", FAILED)
        board.command("reboot")
    enabled = feedback is not None and feedback.enabled
    for waiting in waiting_for_reboot(port, REBOOT_TIMEOUT_S, enabled, pause_s=0.5):
        with ProtocolBoard(port, baud) as board:
            hello = board.hello()
            logs = board.logs
        if hello is not None:
            waiting.result(f"back as {hello.get('id')}")
            waiting.end()
            check_rebooted(port, setup, hello, logs)
            return before
    raise EdgectlError(
        f"{port}: the board did not come back within {REBOOT_TIMEOUT_S:.0f} s after the reboot", FAILED
    )


def check_rebooted(port: str, setup: BoardSetup, hello: dict[str, Any], logs: list[str]) -> None:
    """The HELLO after the reboot names the provisioned board and sensors, and no sensor failed to
    start; otherwise an error with what the board itself said (its HELLO errors and log lines)."""
    said = "; ".join(
        dict.fromkeys([*(hello.get("errors") or []), *(s for s in logs if s.startswith("error"))])
    )
    names = [s.get("n") for s in hello.get("sensors", [])]
    wanted = [s.name for s in setup.sensors]
    if hello.get("id") != setup.board_id:
        raise EdgectlError(
            f"{port}: after the reboot the board runs {hello.get('id')}, not {setup.board_id}: it did not "
            "start from the new /config.json"
            + (f" (the board says: {said})" if said else "")
            + "; check what it holds with `edgectl board provision --show`",
            FAILED,
        )
    if said or names != wanted:
        problem = said or f"it started the sensors {names}, not {wanted}"
        raise EdgectlError(
            f"{port}: {setup.board_id} runs the new config, but the board says: {problem}; fix the wiring "
            "or the setup file and provision again",
            FAILED,
        )
