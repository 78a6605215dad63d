"""Packages sent to the gateway over MQTT in chunks: staged on disk, resumable, checked whole.

The operator's tool (``edgectl fleet model|firmware``) sends a package, a tar of a signed folder, as
signed ``upload-chunk`` commands: each chunk carries its SHA-256 and is kept in a staging folder,
so a transfer cut by a lost link or a restart resumes where it stopped (``upload-status`` lists the
missing chunks). What the package is for is the business of the command that installs it
(``model-install``, ``board-firmware-install``): it asks ``unpack`` for the folder, which checks the
whole archive's SHA-256 and unpacks it without links, absolute paths or devices.

An install command may instead name an HTTPS URL (a city's CDN) with the archive's SHA-256 and size:
``fetch`` stages it the same way, so the same checks follow. The server's certificate is verified
(the system's CAs and ``updates.fetch_ca_file``), redirects must stay on HTTPS, no more than the
signed size is read, and a download cut halfway resumes with a Range request.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import ssl
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from agent.trust.keys import KeyFileError, TrustList

from .commands import CommandError, CommandRegistry

CHUNK_MAX = 48 * 1024  # a command is at most 64 KiB with its envelope
TRANSFER_MAX = 64 * 1024 * 1024  # bigger is no street model or board firmware
TRANSFERS_MAX = 2  # staged at once: a sender cannot fill the disk with abandoned ones
TRANSFER_ID = re.compile(r"^[0-9a-f]{8,32}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
FETCH_CONNECT_S = 15.0
FETCH_READ_S = 30.0  # no byte for this long: the download is cut (and resumes when sent again)
REDIRECTS_MAX = 5


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
    def __init__(self, root: Path, fetch_ca_file: Path | None = None) -> None:
        self.root = root  # one folder per transfer: its chunks and their count
        self.fetch_ca_file = fetch_ca_file  # CAs for package servers, besides the system's
        self.transfers: dict[str, Transfer] = {}
        self._fetching: set[str] = set()
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
        state = self._staged(transfer, count)
        self._keep(transfer, index, data)
        return {
            "transfer": transfer,
            "have": len(state.have),
            "count": count,
            "missing": state.missing()[:50],
        }

    def _staged(self, transfer: str, count: int) -> Transfer:
        """The transfer of this id, started if new (within TRANSFERS_MAX)."""
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
        return state

    def _keep(self, transfer: str, index: int, data: bytes) -> None:
        part = self._folder(transfer) / f"{index}.part"
        tmp = part.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(part)
        self.transfers[transfer].have.add(index)

    async def fetch(self, url: Any, digest: Any, size: Any) -> str:
        """Stage the package at the HTTPS ``url`` a signed command names; returns its transfer id.
        Only ``size`` bytes are taken; ``unpack`` then checks them against ``digest``."""
        if not isinstance(url, str) or urlsplit(url).scheme != "https" or not urlsplit(url).hostname:
            raise CommandError(
                "bad-args", "'url' must be an https:// URL: packages are fetched over TLS only"
            )
        if not isinstance(digest, str) or not SHA256.match(digest):
            raise CommandError("bad-args", "'sha256' must be the package's SHA-256, 64 lowercase hex digits")
        if type(size) is not int or not 0 < size <= TRANSFER_MAX:
            raise CommandError(
                "too-big", f"'size' must be 1 to {TRANSFER_MAX} bytes (a package is at most "
                f"{TRANSFER_MAX // 2**20} MiB)"
            )  # fmt: skip
        transfer = digest[:32]  # not digest[:16]: chunked uploads and fetches are staged apart
        if transfer in self._fetching:
            raise CommandError("busy", f"the package {_shown(url)} is being fetched already")
        state = self._staged(transfer, -(-size // CHUNK_MAX))
        self._fetching.add(transfer)
        try:
            if state.missing():
                await self._download(url, transfer, size, state)
        except CommandError as exc:
            if exc.code == "too-big" or not state.have:  # nothing worth resuming: free the slot
                self.done(transfer)
            raise
        finally:
            self._fetching.discard(transfer)
        return transfer

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.fetch_ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(self.fetch_ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise CommandError("no-trust", f"updates.fetch_ca_file {self.fetch_ca_file}: {exc}") from None
        return context

    async def _download(self, url: str, transfer: str, size: int, state: Transfer) -> None:
        import aiohttp  # 100 ms at start-up, for the rare update fetched over HTTPS

        first = state.missing()[0]  # written in order: everything before it is staged
        offset = first * CHUNK_MAX
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=FETCH_CONNECT_S, sock_read=FETCH_READ_S)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                response = await _get(http, url, self._tls(), offset)
                async with response:
                    if response.status == 200 and offset:
                        first, offset = 0, 0  # the server ignores ranges: from the start again
                    elif response.status not in (200, 206):
                        raise CommandError("fetch-failed", f"{_shown(url)} answered HTTP {response.status}")
                    elif response.status == 206 and not response.headers.get("Content-Range", "").startswith(
                        f"bytes {offset}-"
                    ):
                        raise CommandError(
                            "fetch-failed", f"{_shown(url)} answered a range other than the one asked for"
                        )
                    length = response.content_length
                    if length is not None and offset + length > size:
                        raise CommandError(
                            "too-big",
                            f"{_shown(url)} has {offset + length} bytes, the command signs {size}: "
                            "not the package the command names",
                        )
                    await self._receive(response, transfer, size, first, offset)
        except CommandError:
            raise
        except aiohttp.ClientConnectorCertificateError as exc:
            raise CommandError(
                "fetch-failed",
                f"{_shown(url)}: the server's certificate is not trusted ({exc.certificate_error}); "
                "add its CA to updates.fetch_ca_file",
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            have = len(state.have) * CHUNK_MAX
            raise CommandError(
                "fetch-failed",
                f"{_shown(url)}: {type(exc).__name__}: {exc}; {min(have, size)} of {size} bytes staged, "
                "send the command again to resume",
            ) from None

    async def _receive(self, response: Any, transfer: str, size: int, index: int, received: int) -> None:
        buffer = bytearray()
        async for data in response.content.iter_chunked(64 * 1024):
            received += len(data)
            if received > size:
                raise CommandError(
                    "too-big",
                    f"{_shown(str(response.url))} sends more than the {size} bytes the command signs",
                )
            buffer += data
            while len(buffer) >= CHUNK_MAX:
                await asyncio.to_thread(self._keep, transfer, index, bytes(buffer[:CHUNK_MAX]))
                del buffer[:CHUNK_MAX]
                index += 1
        if received < size:  # a partial last chunk is not kept: a resumed download starts at a chunk
            raise CommandError(
                "fetch-failed",
                f"{_shown(str(response.url))} ended after {received} of {size} bytes; send the command "
                "again to resume",
            )
        if buffer:
            await asyncio.to_thread(self._keep, transfer, index, bytes(buffer))

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


def _shown(url: str) -> str:
    """A URL as replies and logs show it: without userinfo or query (a signed CDN link's token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


async def _get(http: Any, url: str, tls: ssl.SSLContext, offset: int) -> Any:
    """GET ``url`` from ``offset`` on, following redirects only to other https:// URLs."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    for _ in range(REDIRECTS_MAX + 1):
        response = await http.get(url, ssl=tls, headers=headers, allow_redirects=False)
        if response.status not in (301, 302, 303, 307, 308):
            return response
        target = urljoin(url, response.headers.get("Location", ""))
        response.release()
        if urlsplit(target).scheme != "https":
            raise CommandError(
                "fetch-failed",
                f"{_shown(url)} redirects to {_shown(target)}: packages are fetched over TLS only",
            )
        url = target
    raise CommandError("fetch-failed", f"{_shown(url)}: more than {REDIRECTS_MAX} redirects")
