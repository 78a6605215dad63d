"""Model updates over MQTT: a signed model package arrives in chunks, is checked, and replaces a
camera's model without restarting the agent; the previous version stays for a rollback.

The operator's tool (``edgectl fleet model``) sends the package, a tar of a signed model folder
(``edgectl model sign``), as ``model-chunk`` commands: each chunk carries its SHA-256, is kept in a
staging folder, and a transfer that was cut resumes where it stopped (``model-status`` says which
chunks are missing). The signed ``model-install`` command names the transfer, the whole archive's
SHA-256 and the camera; the gateway then checks the archive's hash, unpacks it safely, verifies the
package's signature against ``vision.model_signers``, loads it (manifest schema, file hashes, golden
self-test) and only then swaps the camera's pipeline. What a camera runs is recorded in
``models.json`` beside the installed models, so a restart keeps it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import shutil
import tarfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import clock_synchronized
from ..commands import CommandError
from ..events import ALARM, MODEL_ROLLBACK, START, Event, now_ms
from ..signing import KeyFileError, SignatureError, TrustList, verify_package
from ..sink import EventSink
from .engine import ModelRefused
from .pipeline import CameraPipeline

if TYPE_CHECKING:
    from .part import Camera, Vision

log = logging.getLogger(__name__)

CHUNK_MAX = 48 * 1024  # a command is at most 64 KiB with its envelope
TRANSFER_MAX = 64 * 1024 * 1024  # a model package bigger than this is not a street model
TRANSFERS_MAX = 2  # transfers staged at once: a sender cannot fill the disk with abandoned ones
TRANSFER_ID = re.compile(r"^[0-9a-f]{8,32}$")


def running(pipeline: CameraPipeline) -> list[Any]:
    """The pipeline's models in the order the camera's config lists them (detectors, then density)."""
    return [*pipeline.detectors, *([pipeline.density] if pipeline.density is not None else [])]


@dataclass
class Transfer:
    count: int
    have: set[int] = field(default_factory=set)

    def missing(self) -> list[int]:
        return [i for i in range(self.count) if i not in self.have]


class ModelUpdates:
    def __init__(self, vision: Vision, root: Path, signers: list[str], probation_s: float = 300.0) -> None:
        self.vision = vision
        self.root = root  # <state>/models: installed/, staging/, models.json
        self.signers = signers
        self.probation_s = probation_s
        self.sink: EventSink | None = None  # where a model_rollback alarm goes (the vision part sets it)
        self._watches: set[asyncio.Task[None]] = set()
        self.transfers: dict[str, Transfer] = {}
        self.on_change: Callable[[], Awaitable[None]] | None = None  # the uplink re-announces the models
        self._resume()

    # ----- what cameras run, across restarts ---------------------------------------------------
    @property
    def record_path(self) -> Path:
        return self.root / "models.json"

    def record(self) -> dict[str, Any]:
        try:
            return json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _write_record(self, record: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.record_path.with_name(".models.json.tmp")
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
        tmp.replace(self.record_path)

    def models_for(self, camera: str, configured: list[str]) -> list[str]:
        """The camera's model folders: the configured ones, with installed updates in place."""
        mine = self.record().get(camera, {})
        return [mine.get("current", {}).get(str(m), str(m)) for m in configured]

    # ----- chunks ------------------------------------------------------------------------------
    def _staging(self, transfer: str) -> Path:
        return self.root / "staging" / transfer

    def _resume(self) -> None:
        """Transfers cut by a restart go on from the chunks already on disk."""
        staging = self.root / "staging"
        if not staging.is_dir():
            return
        for folder in sorted(staging.iterdir())[:TRANSFERS_MAX]:
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
        if type(count) is not int or not 0 < count <= TRANSFER_MAX // 1024:
            raise CommandError("bad-args", "'count' must be the number of chunks, a positive integer")
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
                    f"{TRANSFERS_MAX} transfers are staged already: finish or cancel one (model-status)",
                )
            state = self.transfers[transfer] = Transfer(count)
            folder = self._staging(transfer)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "count").write_text(str(count))
        elif state.count != count:
            raise CommandError("bad-args", f"transfer {transfer} has {state.count} chunks, not {count}")
        if count * CHUNK_MAX > TRANSFER_MAX:
            raise CommandError("too-big", f"a model package is at most {TRANSFER_MAX // 2**20} MiB")
        part = self._staging(transfer) / f"{index}.part"
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
        cameras = {}
        for cam in self.vision.cameras:
            if cam.pipeline is not None:
                cameras[cam.config.id] = [
                    [m.engine.manifest.id, m.engine.manifest.version] for m in running(cam.pipeline)
                ]
        return {
            "transfers": {
                t: {"have": len(s.have), "count": s.count, "missing": s.missing()}
                for t, s in self.transfers.items()
            },
            "cameras": cameras,
            "installed": self.record(),
        }

    async def cancel(self, args: dict[str, Any]) -> dict[str, Any]:
        transfer = args.get("transfer")
        if transfer not in self.transfers:
            raise CommandError("unknown-transfer", f"no transfer {transfer!r} is staged")
        del self.transfers[transfer]
        shutil.rmtree(self._staging(transfer), ignore_errors=True)
        return {"cancelled": transfer}

    # ----- install -----------------------------------------------------------------------------
    async def install(self, args: dict[str, Any]) -> dict[str, Any]:
        transfer, digest, camera_id = args.get("transfer"), args.get("sha256"), args.get("camera")
        state = self.transfers.get(transfer) if isinstance(transfer, str) else None
        if state is None:
            raise CommandError("unknown-transfer", f"no transfer {transfer!r} is staged")
        if state.missing():
            raise CommandError(
                "incomplete",
                f"transfer {transfer} lacks {len(state.missing())} chunks: first {state.missing()[:10]}",
            )
        camera = self._camera(camera_id)
        crashes = camera.restarts
        result = await asyncio.to_thread(self._install, transfer, state, str(digest), camera)
        await self._changed()
        if self.probation_s > 0:
            watch = asyncio.create_task(self._probation(camera, crashes, camera.pipeline, result))
            self._watches.add(watch)
            watch.add_done_callback(self._watches.discard)
            result["probation_s"] = self.probation_s
        return result

    async def _probation(self, cam: Camera, crashes: int, pipeline: Any, installed: dict[str, Any]) -> None:
        """Roll back by itself when the camera crashes on the new model within the probation time."""
        deadline = time.monotonic() + self.probation_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if cam.pipeline is not pipeline:
                return  # swapped again (another update, a rollback): not this watch's business any more
            if cam.restarts > crashes:
                break
        else:
            return
        why = (
            f"camera {cam.config.id} failed {cam.restarts - crashes} times within "
            f"{self.probation_s:g} s of running {installed['installed'][0]} {installed['installed'][1]}; "
            f"back to {installed['previous'][0]} {installed['previous'][1]}"
        )
        log.error("%s", why)
        try:
            await asyncio.to_thread(self._rollback, cam)
        except CommandError as exc:
            log.error("camera %s could not roll back: %s", cam.config.id, exc.message)
            return
        await self._changed()
        if self.sink is not None:
            await self.sink.submit(
                Event(
                    kind=ALARM,
                    captured_ms=now_ms(),
                    clock_synced=clock_synchronized(),
                    phase=START,
                    label=MODEL_ROLLBACK,
                    severity="warning",
                    camera=cam.config.id,
                    extra={"why": why},
                )
            )

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()

    def _camera(self, camera_id: Any) -> Camera:
        for cam in self.vision.cameras:
            if cam.config.id == camera_id:
                if cam.pipeline is None:
                    raise CommandError(
                        "camera-disabled", f"camera {camera_id} runs no pipeline: {cam.disabled}"
                    )
                return cam
        known = ", ".join(c.config.id for c in self.vision.cameras)
        raise CommandError("unknown-camera", f"no camera {camera_id!r}; cameras: {known}")

    def _install(self, transfer: str, state: Transfer, digest: str, cam: Camera) -> dict[str, Any]:
        staging = self._staging(transfer)
        archive = staging / "package.tar"
        with open(archive, "wb") as out:
            for i in range(state.count):
                out.write((staging / f"{i}.part").read_bytes())
        actual = hashlib.sha256(archive.read_bytes()).hexdigest()
        if actual != digest:
            raise CommandError("bad-package", f"the package's sha256 is {actual}, the command says {digest}")
        unpacked = staging / "unpacked"
        shutil.rmtree(unpacked, ignore_errors=True)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")  # no links out, no absolute paths, no devices
        except (tarfile.TarError, OSError) as exc:
            raise CommandError("bad-package", f"the package is not a usable tar: {exc}") from None
        folder = self._package_root(unpacked)
        try:
            trust = TrustList.from_strings(self.signers)
        except KeyFileError as exc:
            raise CommandError("no-trust", f"vision.model_signers: {exc}") from None
        if not trust.keys:
            raise CommandError(
                "no-trust", "no model signer is trusted: add its public key to vision.model_signers"
            )
        try:
            signed = verify_package(folder, trust, kind="model")
        except SignatureError as exc:
            raise CommandError("bad-signature", f"the package's signature: {exc}") from None
        target = self.root / "installed" / f"{signed.name}-{signed.version}-{digest[:8]}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(folder, target)
        try:
            engine = self.vision.pool.get(target)  # manifest, file hashes, session, golden self-test
        except ModelRefused as exc:
            raise CommandError(
                "model-refused", f"the new model failed its checks, nothing changed: {exc}"
            ) from None
        old_pipeline = cam.pipeline
        assert old_pipeline is not None
        replaced = [m for m in running(old_pipeline) if m.engine.manifest.id == engine.manifest.id]
        if not replaced:
            ids = ", ".join(m.engine.manifest.id for m in running(old_pipeline))
            raise CommandError(
                "no-such-model",
                f"camera {cam.config.id} runs no model {engine.manifest.id!r} to replace ({ids})",
            )
        old_engine = replaced[0].engine
        engines = [engine if m.engine is old_engine else m.engine for m in running(old_pipeline)]
        pipeline = CameraPipeline(cam.config, engines)
        self.vision.keep_issues(cam.config.id, pipeline)
        cam.pipeline = pipeline  # the next frame runs on it; the capture thread is not touched
        record = self.record()
        mine = record.setdefault(cam.config.id, {"current": {}, "previous": {}})
        configured = self._configured_folder(cam, old_engine.manifest.id)
        before = mine["current"].get(configured, configured)
        mine["previous"][configured] = before
        mine["current"][configured] = str(target)
        self._write_record(record)
        del self.transfers[transfer]
        shutil.rmtree(staging, ignore_errors=True)
        log.warning(
            "camera %s now runs %s %s (was %s %s)",
            cam.config.id, engine.manifest.id, engine.manifest.version,
            old_engine.manifest.id, old_engine.manifest.version,
        )  # fmt: skip
        return {
            "camera": cam.config.id,
            "installed": [engine.manifest.id, engine.manifest.version],
            "previous": [old_engine.manifest.id, old_engine.manifest.version],
            "signer": signed.signer.key_id,
            "folder": str(target),
        }

    def _configured_folder(self, cam: Camera, model_id: str) -> str:
        """The camera's configured entry that the running model of this id came from."""
        record = self.record().get(cam.config.id, {})
        for folder in cam.config.models:
            current = record.get("current", {}).get(str(folder), str(folder))
            engine = self.vision.pool.engines.get(Path(current).resolve())
            if engine is not None and engine.manifest.id == model_id:
                return str(folder)
        raise CommandError("no-such-model", f"camera {cam.config.id} has no configured model {model_id!r}")

    @staticmethod
    def _package_root(unpacked: Path) -> Path:
        if (unpacked / "manifest.json").exists():
            return unpacked
        inner = [p for p in unpacked.iterdir() if p.is_dir()]
        if len(inner) == 1 and (inner[0] / "manifest.json").exists():
            return inner[0]
        raise CommandError("bad-package", "the package holds no model folder (manifest.json)")

    async def rollback(self, args: dict[str, Any]) -> dict[str, Any]:
        cam = self._camera(args.get("camera"))
        result = await asyncio.to_thread(self._rollback, cam)
        await self._changed()
        return result

    def _rollback(self, cam: Camera) -> dict[str, Any]:
        record = self.record()
        mine = record.get(cam.config.id, {})
        if not mine.get("previous"):
            raise CommandError("nothing-to-roll-back", f"camera {cam.config.id} runs no updated model")
        folders = [
            mine["previous"].get(str(f), mine["current"].get(str(f), str(f))) for f in cam.config.models
        ]
        try:
            engines = [self.vision.pool.get(f) for f in folders]
        except ModelRefused as exc:
            raise CommandError("model-refused", f"the previous model does not load any more: {exc}") from None
        pipeline = CameraPipeline(cam.config, engines)
        self.vision.keep_issues(cam.config.id, pipeline)
        cam.pipeline = pipeline
        mine["current"], mine["previous"] = dict(mine["previous"]), {}
        self._write_record(record)
        log.warning("camera %s rolled back to %s", cam.config.id, ", ".join(folders))
        return {"camera": cam.config.id, "models": [[e.manifest.id, e.manifest.version] for e in engines]}
