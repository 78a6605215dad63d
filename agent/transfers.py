"""Packages sent to the gateway over MQTT in chunks: staged on disk, resumable, checked whole.

The operator's tool (``edgectl fleet model|firmware``) sends a package, a tar of a signed folder, as
signed ``upload-chunk`` commands: each chunk carries its SHA-256 and is kept in a staging folder,
so a transfer cut by a lost link or a restart resumes where it stopped (``upload-status`` lists the
missing chunks). What the package is for is the business of the command that installs it
(``model-install``, ``board-firmware-install``): it asks ``unpack`` for the folder, which checks the
whole archive's SHA-256 and unpacks it without links, absolute paths or devices.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.trust.keys import KeyFileError, TrustList

from .commands import CommandError, CommandRegistry

CHUNK_MAX = 48 * 1024  # a command is at most 64 KiB with its envelope
TRANSFER_MAX = 64 * 1024 * 1024  # bigger is no street model or board firmware
TRANSFERS_MAX = 2  # staged at once: a sender cannot fill the disk with abandoned ones
TRANSFER_ID = re.compile(r"^[0-9a-f]{8,32}$")


def trusted_signers(keys: list[str], setting: str, what: str) -> TrustList:
    """The keys of ``setting`` (e.g. ``updates.model_signers``) as a trust list; CommandError
    ``no-trust`` when they are unusable or none: no package of ``what`` is installed then."""
    try:
        trust = TrustList.from_strings(keys)
    except KeyFileError as exc:
        raise CommandError("no-trust", f"{setting}: {exc}") from None
    if not trust.keys:
        raise CommandError("no-trust", f"no {what} signer is trusted: add its public key to {setting}")
    return trust


@dataclass
class Transfer:
    count: int
    have: set[int] = field(default_factory=set)

    def missing(self) -> list[int]:
        return [i for i in range(self.count) if i not in self.have]


class Uploads:
    def __init__(self, root: Path) -> None:
        self.root = root  # one folder per transfer: its chunks and their count
        self.transfers: dict[str, Transfer] = {}
        self._resume()

    def register(self, commands: CommandRegistry) -> None:
        commands.register("upload-chunk", self.chunk, mutating=True, description="one chunk of a package")
        commands.register("upload-status", self.status, mutating=False, description="staged transfers")
        commands.register("upload-cancel", self.cancel, mutating=True, description="drop a staged transfer")

    def _folder(self, transfer: str) -> Path:
        return self.root / transfer

    def _resume(self) -> None:
        """Transfers cut by a restart go on from the chunks already on disk."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir())[:TRANSFERS_MAX]:
            try:
                count = int((folder / "count").read_text())
            except (OSError, ValueError):
                continue
            have = {int(p.stem) for p in folder.glob("*.part") if p.stem.isdigit()}
            self.transfers[folder.name] = Transfer(count, have)

    async def chunk(self, args: dict[str, Any]) -> dict[str, Any]:
        transfer, index, count = args.get("transfer"), args.get("index"), args.get("count")
        data, digest = args.get("data"), args.get("sha256")
        if not isinstance(transfer, str) or not TRANSFER_ID.match(transfer):
            raise CommandError("bad-args", "'transfer' must be 8 to 32 lowercase hex digits")
        if type(count) is not int or not 0 < count <= TRANSFER_MAX // CHUNK_MAX:
            raise CommandError(
                "too-big", f"'count' must be 1 to {TRANSFER_MAX // CHUNK_MAX} chunks (a package is at most "
                f"{TRANSFER_MAX // 2**20} MiB)"
            )  # fmt: skip
        if type(index) is not int or not 0 <= index < count:
            raise CommandError("bad-args", f"'index' must be 0..{count - 1}")
        if not isinstance(data, bytes) or not 0 < len(data) <= CHUNK_MAX:
            raise CommandError("bad-args", f"'data' must be 1 to {CHUNK_MAX} bytes")
        if not isinstance(digest, str) or hashlib.sha256(data).hexdigest() != digest:
            raise CommandError("bad-chunk", f"chunk {index} does not match its sha256: send it again")
        state = self.transfers.get(transfer)
        if state is None:
            if len(self.transfers) >= TRANSFERS_MAX:
                raise CommandError(
                    "busy",
                    f"{TRANSFERS_MAX} transfers are staged already: finish or cancel one (upload-status)",
                )
            state = self.transfers[transfer] = Transfer(count)
            folder = self._folder(transfer)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "count").write_text(str(count))
        elif state.count != count:
            raise CommandError("bad-args", f"transfer {transfer} has {state.count} chunks, not {count}")
        part = self._folder(transfer) / f"{index}.part"
        tmp = part.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(part)
        state.have.add(index)
        return {
            "transfer": transfer,
            "have": len(state.have),
            "count": count,
            "missing": state.missing()[:50],
        }

    async def status(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "transfers": {
                t: {"have": len(s.have), "count": s.count, "missing": s.missing()}
                for t, s in self.transfers.items()
            }
        }

    async def cancel(self, args: dict[str, Any]) -> dict[str, Any]:
        transfer = args.get("transfer")
        if not isinstance(transfer, str) or transfer not in self.transfers:
            raise CommandError("unknown-transfer", f"no transfer {transfer!r} is staged")
        self.done(transfer)
        return {"cancelled": transfer}

    def done(self, transfer: str) -> None:
        """Forget a transfer and its chunks (installed, or cancelled)."""
        self.transfers.pop(transfer, None)
        shutil.rmtree(self._folder(transfer), ignore_errors=True)

    def unpack(self, transfer: Any, digest: Any, marker: str) -> Path:
        """The staged package as a folder holding ``marker`` (its manifest), after checking that every
        chunk is there and the whole archive's SHA-256 is ``digest``. Blocking: run it in a thread."""
        state = self.transfers.get(transfer) if isinstance(transfer, str) else None
        if state is None:
            raise CommandError("unknown-transfer", f"no transfer {transfer!r} is staged")
        if state.missing():
            raise CommandError(
                "incomplete",
                f"transfer {transfer} lacks {len(state.missing())} chunks: first {state.missing()[:10]}",
            )
        folder = self._folder(transfer)
        archive = folder / "package.tar"
        hasher = hashlib.sha256()
        with open(archive, "wb") as out:  # hashed as it is joined: the archive is read once
            for i in range(state.count):
                chunk = (folder / f"{i}.part").read_bytes()
                hasher.update(chunk)
                out.write(chunk)
        actual = hasher.hexdigest()
        if actual != digest:
            raise CommandError("bad-package", f"the package's sha256 is {actual}, the command says {digest}")
        unpacked = folder / "unpacked"
        shutil.rmtree(unpacked, ignore_errors=True)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")  # no links out, no absolute paths, no devices
        except (tarfile.TarError, OSError) as exc:
            raise CommandError("bad-package", f"the package is not a usable tar: {exc}") from None
        if (unpacked / marker).exists():
            return unpacked
        inner = [p for p in unpacked.iterdir() if p.is_dir()]
        if len(inner) == 1 and (inner[0] / marker).exists():
            return inner[0]
        raise CommandError("bad-package", f"the package holds no folder with {marker}")
