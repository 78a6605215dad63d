"""Model updates over MQTT: a signed model package (sent in chunks, agent/transfers.py) is checked
and replaces a camera's model without restarting the agent; the previous version stays for a rollback.

The signed ``model-install`` command names the staged transfer (or an HTTPS URL and the size to
fetch it from), the whole archive's SHA-256 and the camera; the gateway then verifies the
package's signature against ``updates.model_signers``, loads it (manifest schema, file hashes,
golden self-test) and only then swaps the camera's pipeline. What a camera runs is recorded in ``models.json`` beside the installed models, so a restart keeps it; for
``updates.probation_s`` a camera that crashes on the new model, or runs too slowly on it
(agent/vision/probation.py), goes back to the previous one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.trust.packages import SignatureError, verify_package

from ..clock import clock_synchronized
from ..commands import CommandError
from ..events import ALARM, MODEL_ROLLBACK, START, Event, now_ms
from ..sink import EventSink
from ..transfers import Uploads, trusted_signers
from .engine import ModelRefused
from .pipeline import CameraPipeline
from .probation import FrameRateRule, FrameRateWatch, SlowCamera, rate_before

if TYPE_CHECKING:
    from .part import Camera, Vision

log = logging.getLogger(__name__)


REFUSED_FOR_GOOD = ("bad-package", "bad-signature", "model-refused")
PROBATION_TICK_S = 0.5


def running(pipeline: CameraPipeline) -> list[Any]:
    """The pipeline's models in the order the camera's config lists them (detectors, then density)."""
    return [*pipeline.detectors, *([pipeline.density] if pipeline.density is not None else [])]


class ModelUpdates:
    def __init__(
        self,
        vision: Vision,
        root: Path,
        uploads: Uploads,
        signers: list[str],
        probation_s: float = 300.0,
        fps: FrameRateRule | None = None,
    ) -> None:
        self.vision = vision
        self.root = root  # <state>/models: installed/, models.json
        self.uploads = uploads
        self.signers = signers
        self.probation_s = probation_s
        self.fps = fps or FrameRateRule()
        self.sink: EventSink | None = None  # where a model_rollback alarm goes (the vision part sets it)
        self._watches: set[asyncio.Task[None]] = set()
        self.on_change: Callable[[], Awaitable[None]] | None = None  # the uplink re-announces the models

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

    async def status(self, args: dict[str, Any]) -> dict[str, Any]:
        cameras = {}
        for cam in self.vision.cameras:
            if cam.pipeline is not None:
                cameras[cam.config.id] = [
                    [m.engine.manifest.id, m.engine.manifest.version] for m in running(cam.pipeline)
                ]
        return {"cameras": cameras, "installed": self.record()}

    # ----- install -----------------------------------------------------------------------------
    async def install(self, args: dict[str, Any]) -> dict[str, Any]:
        transfer, digest, camera_id = args.get("transfer"), args.get("sha256"), args.get("camera")
        camera = self._camera(camera_id)
        if args.get("url") is not None:  # fetched from the HTTPS URL the signed command names
            transfer = await self.uploads.fetch(args.get("url"), digest, args.get("size"))
        crashes = camera.restarts
        assert camera.pipeline is not None
        # measured before the new model loads: its warm-up and self-test take CPU from the camera
        before = rate_before(camera.pipeline.stats, self.fps.window_s)
        try:
            result = await asyncio.to_thread(self._install, transfer, digest, camera)
        except CommandError as exc:
            if exc.code in REFUSED_FOR_GOOD:  # sending it again cannot help: do not keep it staged
                self.uploads.done(str(transfer))
            raise
        await self._changed()
        if self.probation_s > 0:
            fps = FrameRateWatch(self.fps, before) if self.fps.active else None
            watch = asyncio.create_task(self._probation(camera, crashes, camera.pipeline, result, fps))
            self._watches.add(watch)
            watch.add_done_callback(self._watches.discard)
            result["probation_s"] = self.probation_s
            result["fps_before"] = None if before is None else round(before, 2)
            result["fps_threshold"] = round(fps.threshold, 2) if fps is not None else 0.0
        return result

    async def _probation(
        self,
        cam: Camera,
        crashes: int,
        pipeline: CameraPipeline,
        installed: dict[str, Any],
        fps: FrameRateWatch | None,
    ) -> None:
        """Roll back by itself when the camera crashes, or is too slow, on the new model within the
        probation time."""
        new, old = (" ".join(installed[k]) for k in ("installed", "previous"))
        engines = [id(m.engine) for m in running(pipeline)]
        counters: tuple[object, object] = (pipeline, cam.source)
        deadline = time.monotonic() + self.probation_s
        values: dict[str, float] = {}
        while time.monotonic() < deadline:
            await asyncio.sleep(PROBATION_TICK_S)
            # New zones swap the pipeline but keep its engines: the watch goes on (its counters
            # start again); another update or a rollback changes them and ends it.
            now = cam.pipeline
            if now is None or [id(m.engine) for m in running(now)] != engines:
                return
            if cam.restarts > crashes:
                why = (
                    f"camera {cam.config.id} failed {cam.restarts - crashes} times within "
                    f"{self.probation_s:g} s of running {new}; back to {old}"
                )
                values = {"restarts": float(cam.restarts - crashes)}
                break
            source = cam.source
            if fps is not None and source is not None:
                if now is not counters[0] or source is not counters[1]:
                    counters = (now, source)
                    fps.restart()
                slow = fps.sample(time.monotonic(), now.stats.frames, source.counters.sampled)
                if slow is not None:
                    why = _slow_words(cam.config.id, slow, new, old, self.fps.window_s)
                    values = _slow_values(slow)
                    break
        else:
            return
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
                    values=values,
                    units={k: "1/s" for k in values if k.startswith("fps")} or None,
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

    def _install(self, transfer: Any, digest: Any, cam: Camera) -> dict[str, Any]:
        folder = self.uploads.unpack(transfer, digest, "manifest.json")
        trust = trusted_signers(self.signers, "updates.model_signers", "model")
        try:
            signed = verify_package(folder, trust, kind="model")
        except SignatureError as exc:
            raise CommandError("bad-signature", f"the package's signature: {exc}") from None
        target = self.root / "installed" / f"{signed.name}-{signed.version}-{str(digest)[:8]}"
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
        self.uploads.done(str(transfer))
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


def _slow_words(camera: str, slow: SlowCamera, new: str, old: str, window_s: float) -> str:
    before = f"{old} did {slow.before:.2f} fps" if slow.before is not None else f"{old} was not measured"
    return (
        f"camera {camera} processed {slow.fps:.2f} fps on {new} over the last {window_s:g} s while its "
        f"source delivered {slow.delivered:.2f} fps, under its threshold of {slow.threshold:.2f} fps for "
        f"{slow.slow_s:.0f} s ({before}); back to {old}"
    )


def _slow_values(slow: SlowCamera) -> dict[str, float]:
    values = {"fps": slow.fps, "fps_threshold": slow.threshold, "fps_delivered": slow.delivered}
    if slow.before is not None:
        values["fps_before"] = round(slow.before, 2)
    return values
