"""Board firmware over the air: a signed bundle sent to the gateway (agent/transfers.py) is installed
on one of its boards through the serial protocol, with the same guarantees as ``edgectl board flash``.

The signed ``board-firmware-install`` command names the staged transfer (or an HTTPS URL and the
size to fetch it from), the archive's SHA-256 and the board. The gateway checks the bundle's
signature against ``updates.firmware_signers``, its file hashes, its bytecode version against the
board's and that it is no downgrade; then the install of agent/boards/install.py writes every file
under a temporary name, checks it by a SHA-256 the board computes, and switches versions by one
final rename: a board cut off before that keeps booting its firmware, and the next attempt reuses
the files already verified. After the reboot the board must
say HELLO with the new version; its loader falls back to the previous one if the new one fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from agent.trust.bundle import BundleError, DowngradeRefused, board_mpy_major, check_upgrade, load_bundle

from ..commands import CommandError
from ..transfers import Uploads, trusted_signers
from .client import BoardError
from .install import InstallError, current_version, install
from .protocol_files import ProtocolFiles, Run
from .session import BoardSession

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 60.0  # one file operation on the board (a whole file's transfer), retries included
HELLO_TIMEOUT_S = 60.0  # the reboot and the new firmware's first HELLO
REFUSED_FOR_GOOD = ("bad-package", "bad-signature")


def in_loop(loop: asyncio.AbstractEventLoop) -> Run:
    """ProtocolFiles' ``run`` for a worker thread: each call runs on the event loop that owns the
    serial link, while readings and alarms keep flowing."""

    def run(what: str, call: Coroutine[Any, Any, Any]) -> Any:
        future = asyncio.run_coroutine_threadsafe(call, loop)
        try:
            return future.result(CALL_TIMEOUT_S)
        except BoardError as exc:
            raise InstallError(f"{what}: {exc}") from None

    return run


class FirmwareUpdates:
    def __init__(
        self, get_session: Callable[[Any], BoardSession], uploads: Uploads, signers: list[str]
    ) -> None:
        self.get_session = get_session  # raises CommandError naming the boards when the id is wrong
        self.uploads = uploads
        self.signers = signers

    async def install(self, args: dict[str, Any]) -> dict[str, Any]:
        session = self.get_session(args.get("board"))
        transfer = args.get("transfer")
        if args.get("url") is not None:  # fetched from the HTTPS URL the signed command names
            transfer = await self.uploads.fetch(args.get("url"), args.get("sha256"), args.get("size"))
        allow_downgrade = args.get("allow_downgrade") is True
        loop = asyncio.get_running_loop()
        try:
            result = await asyncio.to_thread(
                self._install, session, transfer, args.get("sha256"), allow_downgrade, loop
            )
        except CommandError as exc:
            if exc.code in REFUSED_FOR_GOOD:
                self.uploads.done(str(transfer))
            raise
        if not result["unchanged"]:
            await self._reboot_into(session, result["installed"])
        self.uploads.done(str(transfer))
        return result

    def _install(
        self,
        session: BoardSession,
        transfer: Any,
        digest: Any,
        allow_downgrade: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> dict[str, Any]:
        folder = self.uploads.unpack(transfer, digest, "bundle.json")
        trust = trusted_signers(self.signers, "updates.firmware_signers", "firmware")
        try:
            bundle = load_bundle(folder, trust, require_signature=True)
        except BundleError as exc:
            code = "bad-signature" if "signature" in str(exc) or "trusted" in str(exc) else "bad-package"
            raise CommandError(code, str(exc).replace(str(folder), "the bundle")) from None
        info = session.info
        if info is None:
            raise CommandError(
                "board-error", f"board {session.config.id} has not said HELLO: is it connected?"
            )
        if info.mpy is not None and bundle.mpy_major and board_mpy_major(info.mpy) != bundle.mpy_major:
            raise CommandError(
                "bytecode",
                f"board {session.config.id} runs bytecode v{board_mpy_major(info.mpy)}, the bundle is for "
                f"v{bundle.mpy_major}: build it with `edgectl firmware build --mpy {board_mpy_major(info.mpy)}`",
            )
        files = ProtocolFiles(session, in_loop(loop))
        try:
            # what /fw/current names; a board flashed without our loader runs what its HELLO says
            installed = current_version(files) or info.firmware
            check_upgrade(installed, bundle.version, allow_downgrade)
        except DowngradeRefused as exc:
            raise CommandError("downgrade", f"{exc}; send allow_downgrade to roll back on purpose") from None
        except InstallError as exc:
            raise CommandError("board-error", f"board {session.config.id}: {exc}") from None
        started = time.monotonic()
        try:
            result = install(files, bundle)
        except InstallError as exc:
            raise CommandError(
                "install-failed",
                f"board {session.config.id}: {exc}; it keeps firmware {installed or '(none)'}",
            ) from None
        log.warning(
            "board %s: firmware %s installed in %.0f s (was %s), rebooting into it",
            session.config.id, bundle.version, time.monotonic() - started, installed,
        )  # fmt: skip
        return {
            "board": session.config.id,
            "installed": bundle.version,
            "previous": installed,
            "unchanged": result.unchanged,
            "files_sent": result.sent,  # a resumed install sends only what the board lacks
            "files_reused": result.reused,
            "signer": bundle.signer.key_id if bundle.signer else None,
        }

    async def _reboot_into(self, session: BoardSession, version: str) -> None:
        boot = session.info.boot if session.info else None
        with contextlib.suppress(BoardError):  # it may reboot before it answers
            await session.command("reboot")
        deadline = time.monotonic() + HELLO_TIMEOUT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            info = session.info
            if info is not None and info.boot != boot and session.connected.is_set():
                if info.firmware == version:
                    return
                raise CommandError(
                    "rolled-back",
                    f"board {session.config.id} came back with firmware {info.firmware}, not {version}: its "
                    "loader fell back to the previous version because the new one failed to start",
                )
        raise CommandError(
            "no-hello", f"board {session.config.id} did not say HELLO within {HELLO_TIMEOUT_S:g} s"
        )
