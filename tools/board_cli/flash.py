"""`edgectl board flash`: check the bundle, reach the board, install, reboot, confirm the new version."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from agent.boards.install import (
    BoardFiles,
    InstallError,
    InstallResult,
    current_version,
    install,
    plan_install,
)
from agent.trust.bundle import (
    BundleError,
    DowngradeRefused,
    FirmwareBundle,
    board_mpy_major,
    check_upgrade,
    load_bundle,
)
from agent.trust.keys import TrustList

from ..errors import BYTECODE, DOWNGRADE, FLASH, NO_BOARD, SIGNATURE, EdgectlError
from .connecting import Connecting, waiting_for_reboot
from .proto import ProtocolBoard
from .repl_link import ReplBoard

MPY_RELEASES = {
    6: "MicroPython 1.19 or newer",
    5: "MicroPython 1.12 to 1.18",
    4: "MicroPython 1.11",
    3: "MicroPython 1.9.3 to 1.10",
}


@dataclass(frozen=True)
class FlashOptions:
    port: str
    baud: int = 115200
    allow_downgrade: bool = False
    reboot: bool = True
    boot_timeout_s: float = 20.0
    quiet: bool = False

    def connecting(self) -> Connecting:
        return Connecting(self.port, enabled=not self.quiet)


def open_bundle(folder: Path, trust: TrustList) -> FirmwareBundle:
    try:
        return load_bundle(folder, trust if trust.keys else None, require_signature=bool(trust.keys))
    except BundleError as exc:
        raise EdgectlError(str(exc), SIGNATURE) from None


def check_bytecode(bundle: FirmwareBundle, board_mpy: int | str, port: str) -> None:
    major = board_mpy_major(board_mpy)
    if bundle.mpy_major and major and bundle.mpy_major != major:
        raise EdgectlError(
            f"{port}: the board runs bytecode v{major} ({MPY_RELEASES.get(major, 'another MicroPython')}) but the "
            f"bundle was compiled for v{bundle.mpy_major}; rebuild it with `edgectl firmware build --mpy {major}` "
            "or update MicroPython on the board",
            BYTECODE,
        )


def _progress_bar(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=quiet,
        transient=False,
    )


def flash_over_repl(
    bundle: FirmwareBundle | Callable[[int], FirmwareBundle],
    options: FlashOptions,
    say: Callable[[str], None],
    feedback: Connecting | None = None,
) -> InstallResult:
    """Install over the raw REPL of a board that runs MicroPython (ours or not).

    ``bundle`` may be a function building the bundle for the bytecode version the board reports;
    ``feedback`` the line that already shows the attempts over our protocol.
    """
    with ReplBoard(options.port, options.baud, feedback=feedback or options.connecting()) as board:
        info: dict[str, Any] = board.info()
        mpy = board_mpy_major(info["mpy"])
        say(
            f"{options.port}: MicroPython {info['version']} on {info['machine'] or info['platform']}, bytecode v{mpy}"
        )
        bundle, result = _install(board, info["mpy"], bundle, options, say, tell_resumed=True)
        if options.reboot:
            board.reboot()
    if options.reboot:
        confirm_after_reboot(bundle, options)
    return result


def flash_over_protocol(
    bundle: FirmwareBundle | Callable[[int], FirmwareBundle],
    options: FlashOptions,
    say: Callable[[str], None],
    feedback: Connecting | None = None,
) -> InstallResult | None:
    """Install on a board that runs our firmware, over our protocol's file transfer: no REPL, and the
    board keeps measuring until the reboot. None when the board does not answer our HELLO."""
    with ProtocolBoard(options.port, options.baud, feedback=feedback) as board:
        hello = board.hello()
        if hello is None:
            return None
        say(
            f"{options.port}: board {hello.get('id')} runs our firmware {hello.get('fw')}; flashing over its protocol"
        )
        bundle, result = _install(board.files(), hello.get("mpy"), bundle, options, say, tell_resumed=False)
        if options.reboot and not result.unchanged:
            board.command("reboot")
    if options.reboot and not result.unchanged:
        confirm_hello(bundle, options)
    return result


def _install(
    files: BoardFiles,
    mpy: int | str | None,
    bundle: FirmwareBundle | Callable[[int], FirmwareBundle],
    options: FlashOptions,
    say: Callable[[str], None],
    tell_resumed: bool,
) -> tuple[FirmwareBundle, InstallResult]:
    """The flash once the board is reached over either link: compile for its bytecode (``mpy``, None
    where the link does not report it), refuse a downgrade, install with a progress bar."""
    if callable(bundle):
        major = board_mpy_major(mpy) if mpy is not None else 6
        bundle = bundle(major)
        say(f"compiled {bundle.name} {bundle.version} for bytecode v{major}")
    if mpy is not None:
        check_bytecode(bundle, mpy, options.port)
    installed = current_version(files)
    try:
        check_upgrade(installed, bundle.version, options.allow_downgrade)
    except DowngradeRefused as exc:
        raise EdgectlError(f"{options.port}: {exc}", DOWNGRADE) from None
    plan = plan_install(files, bundle)
    if tell_resumed and plan.skip:
        say(f"resuming: {len(plan.skip)} file(s) already on the board and verified")
    with _progress_bar(options.quiet) as bar:
        task = bar.add_task(f"{bundle.name} {bundle.version}", total=max(plan.bytes_to_send, 1))
        try:
            result = install(files, bundle, lambda n: bar.advance(task, n))
        except InstallError as exc:
            raise EdgectlError(
                f"{options.port}: {exc}; the board keeps firmware {installed or '(none)'}", FLASH
            ) from None
        bar.update(task, completed=max(plan.bytes_to_send, 1))
    return bundle, result


def confirm_after_reboot(bundle: FirmwareBundle, options: FlashOptions) -> None:
    """After the reset the board must come back with the new version switched in."""
    last: Exception | None = None
    for waiting in waiting_for_reboot(options.port, options.boot_timeout_s, not options.quiet):
        try:
            with ReplBoard(options.port, options.baud) as board:
                running = current_version(board)
            waiting.result(f"back, firmware {running}")
            waiting.end()
            if running == bundle.version:
                return
            raise EdgectlError(
                f"{options.port}: after the reboot the board reports firmware {running}, not {bundle.version}",
                FLASH,
            )
        except EdgectlError as exc:
            if exc.exit_code == FLASH:
                raise
            last = exc
            time.sleep(0.5)
    raise EdgectlError(
        f"{options.port}: the board did not come back within {options.boot_timeout_s:.0f} s after the reboot "
        f"({last}); unplug and replug it, then run `edgectl board flash` again",
        NO_BOARD,
    )


def confirm_hello(bundle: FirmwareBundle, options: FlashOptions) -> None:
    """After the reboot the board must answer HELLO with the new version."""
    running = None
    for waiting in waiting_for_reboot(options.port, options.boot_timeout_s, not options.quiet, pause_s=0.5):
        try:
            with ProtocolBoard(options.port, options.baud) as board:
                hello = board.hello()
        except EdgectlError:
            continue  # a board with native USB re-enumerates while it resets
        running = hello.get("fw") if hello else None
        if running == bundle.version:
            waiting.result(f"back, firmware {running}")
            waiting.end()
            return
    raise EdgectlError(
        f"{options.port}: after the reboot the board answers with firmware {running or '(no HELLO)'}, not "
        f"{bundle.version}; its loader fell back to the previous version if the new one failed to start "
        "(see its log with `mpremote connect PORT repl`)",
        FLASH,
    )
