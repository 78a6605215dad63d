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
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agent.trust.packages import SignatureError, verify_package

from ..clock import clock_synchronized
from ..commands import CommandError
from ..events import ALARM, MODEL_ROLLBACK, START, Event, now_ms
from ..sink import EventSink
from ..transfers import Uploads, trusted_signers
from .camera import Camera
from .engine import ModelPool, ModelRefused
from .pipeline import CameraPipeline
from .probation import FrameRateRule, FrameRateWatch, SlowCamera, rate_before

log = logging.getLogger(__name__)


REFUSED_FOR_GOOD = ("bad-package", "bad-signature", "model-refused")
PROBATION_TICK_S = 0.5
PROBATION_SAVE_S = 5.0  # how often the time left is written down, for a restart to go on from
# A model that kills the agent (a crash in native code) does it again at once after each restart;
# a pole's power cut does not. Twice without closing within the probation: back to the old model.
UNCLEAN_EXITS_MAX = 2


class ModelUpdates:
    def __init__(
        self,
        cameras: list[Camera],
        pool: ModelPool,
        adopt: Callable[[str, CameraPipeline], None],
        root: Path,
        uploads: Uploads,
        signers: list[str],
        probation_s: float = 300.0,
        fps: FrameRateRule | None = None,
    ) -> None:
        self.cameras = cameras
        self.pool = pool
        self.adopt = adopt  # makes a new pipeline the gateway's (sealed snapshots, kept issues)
        self.root = root  # <state>/models: installed/, models.json
        self.uploads = uploads
        self.signers = signers
        self.probation_s = probation_s
        self.fps = fps or FrameRateRule()
        self.sink: EventSink | None = None  # where a model_rollback alarm goes (the vision part sets it)
        self._watches: set[asyncio.Task[None]] = set()
        self.on_change: Callable[[], Awaitable[None]] | None = None  # the uplink re-announces the models
        self._ends: dict[str, float] = {}  # camera -> monotonic end of its probation in this run
        self._resumed: list[str] = []  # cameras whose probation goes on from the last run
        self._start_alarms: list[tuple[str, str, dict[str, float]]] = []  # rollbacks made at start
        # models.json is read, changed and written by installs, rollbacks and probation saves, in
        # worker threads: one at a time, and none after a clean stop wrote it for the last time
        self._lock = threading.RLock()
        self._closing = False

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
        """The camera's model folders: the configured ones, with installed updates in place. A
        probation cut by a restart goes on; after too many exits without closing it rolls back."""
        with self._lock:
            record = self.record()
            mine = record.get(camera, {})
            probation = mine.get("probation")
            if isinstance(probation, dict) and mine.get("previous"):
                if probation.get("open"):  # the last run on it ended without closing
                    probation["unclean"] = int(probation.get("unclean", 0)) + 1
                new, old = (" ".join(probation.get(k, ["?"])) for k in ("installed", "previous"))
                if probation["unclean"] >= UNCLEAN_EXITS_MAX:
                    why = (
                        f"the agent ended {probation['unclean']} times without closing within "
                        f"{self.probation_s:g} s of camera {camera} running {new}; back to {old}"
                    )
                    log.error("%s", why)
                    _back(mine)
                    self._start_alarms.append((camera, why, {"unclean_exits": float(probation["unclean"])}))
                else:
                    probation["open"] = True
                    self._resumed.append(camera)
                self._write_record(record)
            return [mine.get("current", {}).get(str(m), str(m)) for m in configured]

    def resume(self) -> None:
        """Once the cameras run: go on with probations cut by a restart, and report rollbacks made
        at the start (the sink exists only now)."""
        record = self.record()
        for camera in self._resumed:
            cam = next((c for c in self.cameras if c.config.id == camera), None)
            probation = record.get(camera, {}).get("probation")
            if cam is None or cam.pipeline is None or not isinstance(probation, dict):
                continue
            left = max(0.0, float(probation.get("left_s", 0.0)))
            log.warning(
                "camera %s: probation of %s goes on, %.0f s left", camera, probation["installed"], left
            )
            fps = FrameRateWatch(self.fps, None) if self.fps.active else None  # the old model's rate is gone
            self._watch(cam, cam.restarts, cam.pipeline, probation, fps, left)
        self._resumed.clear()
        for camera, why, values in self._start_alarms:
            self._watches.add(asyncio.create_task(self._alarm(camera, why, values)))
        self._start_alarms.clear()

    def closed(self) -> None:
        """The agent stops cleanly: a probation is not an unclean exit, and goes on at the next start."""
        for task in self._watches:
            task.cancel()
        with self._lock:
            self._closing = True
            record = self.record()
            now = time.monotonic()
            for camera, end in self._ends.items():
                probation = record.get(camera, {}).get("probation")
                if isinstance(probation, dict):
                    probation["open"] = False
                    probation["left_s"] = max(0.0, end - now)
            if self._ends:
                self._write_record(record)

    async def status(self, args: dict[str, Any]) -> dict[str, Any]:
        cameras = {}
        for cam in self.cameras:
            if cam.pipeline is not None:
                cameras[cam.config.id] = [
                    [m.engine.manifest.id, m.engine.manifest.version] for m in cam.pipeline.running()
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
            probation = {"installed": result["installed"], "previous": result["previous"]}
            await asyncio.to_thread(self._save_probation, camera.config.id, probation, self.probation_s)
            self._watch(camera, crashes, camera.pipeline, probation, fps, self.probation_s)
            result["probation_s"] = self.probation_s
            result["fps_before"] = None if before is None else round(before, 2)
            result["fps_threshold"] = round(fps.threshold, 2) if fps is not None else 0.0
        return result

    def _watch(
        self,
        cam: Camera,
        crashes: int,
        pipeline: CameraPipeline | None,
        installed: dict[str, Any],
        fps: FrameRateWatch | None,
        left_s: float,
    ) -> None:
        assert pipeline is not None
        self._ends[cam.config.id] = time.monotonic() + left_s
        task = asyncio.create_task(self._probation(cam, crashes, pipeline, installed, fps, left_s))
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)

    def _save_probation(self, camera: str, probation: dict[str, Any], left_s: float) -> None:
        """Write down the camera's probation (what it is on, the time left) for a restart."""
        with self._lock:
            record = self.record()
            mine = record.get(camera)
            if mine is None or self._closing:
                return
            before = mine.get("probation", {})
            same = before.get("installed") == probation["installed"]
            mine["probation"] = {
                "installed": probation["installed"],
                "previous": probation["previous"],
                "left_s": round(left_s, 1),
                "open": True,
                "unclean": before.get("unclean", 0) if same else 0,
            }
            self._write_record(record)

    def _end_probation(self, camera: str, installed: list[str]) -> None:
        with self._lock:
            record = self.record()
            probation = record.get(camera, {}).get("probation")
            if isinstance(probation, dict) and probation.get("installed") == installed:
                del record[camera]["probation"]
                self._write_record(record)

    async def _probation(
        self,
        cam: Camera,
        crashes: int,
        pipeline: CameraPipeline,
        installed: dict[str, Any],
        fps: FrameRateWatch | None,
        left_s: float,
    ) -> None:
        """Roll back by itself when the camera crashes, or is too slow, on the new model within the
        probation time."""
        new, old = (" ".join(installed[k]) for k in ("installed", "previous"))
        engines = [id(m.engine) for m in pipeline.running()]
        counters: tuple[object, object] = (pipeline, cam.source)
        deadline = time.monotonic() + left_s
        saved = time.monotonic()
        values: dict[str, float] = {}
        while time.monotonic() < deadline:
            await asyncio.sleep(PROBATION_TICK_S)
            if time.monotonic() - saved >= PROBATION_SAVE_S:
                saved = time.monotonic()
                await asyncio.to_thread(self._save_probation, cam.config.id, installed, deadline - saved)
            # New zones swap the pipeline but keep its engines: the watch goes on (its counters
            # start again); another update or a rollback changes them and ends it.
            now = cam.pipeline
            if now is None or [id(m.engine) for m in now.running()] != engines:
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
            self._ends.pop(cam.config.id, None)
            await asyncio.to_thread(self._end_probation, cam.config.id, installed["installed"])
            return  # passed
        log.error("%s", why)
        try:
            await asyncio.to_thread(self._rollback, cam)
        except CommandError as exc:
            log.error("camera %s could not roll back: %s", cam.config.id, exc.message)
            return
        await self._changed()
        await self._alarm(cam.config.id, why, values)

    async def _alarm(self, camera: str, why: str, values: dict[str, float]) -> None:
        if self.sink is not None:
            await self.sink.submit(
                Event(
                    kind=ALARM,
                    captured_ms=now_ms(),
                    clock_synced=clock_synchronized(),
                    phase=START,
                    label=MODEL_ROLLBACK,
                    severity="warning",
                    camera=camera,
                    values=values,
                    units={k: "1/s" for k in values if k.startswith("fps")} or None,
                    extra={"why": why},
                )
            )

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()

    def _camera(self, camera_id: Any) -> Camera:
        for cam in self.cameras:
            if cam.config.id == camera_id:
                if cam.pipeline is None:
                    raise CommandError(
                        "camera-disabled", f"camera {camera_id} runs no pipeline: {cam.disabled}"
                    )
                return cam
        known = ", ".join(c.config.id for c in self.cameras)
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
            engine = self.pool.get(target)  # manifest, file hashes, session, golden self-test
        except ModelRefused as exc:
            raise CommandError(
                "model-refused", f"the new model failed its checks, nothing changed: {exc}"
            ) from None
        old_pipeline = cam.pipeline
        assert old_pipeline is not None
        replaced = [m for m in old_pipeline.running() if m.engine.manifest.id == engine.manifest.id]
        if not replaced:
            ids = ", ".join(m.engine.manifest.id for m in old_pipeline.running())
            raise CommandError(
                "no-such-model",
                f"camera {cam.config.id} runs no model {engine.manifest.id!r} to replace ({ids})",
            )
        old_engine = replaced[0].engine
        engines = [engine if m.engine is old_engine else m.engine for m in old_pipeline.running()]
        pipeline = CameraPipeline(cam.config, engines)
        self.adopt(cam.config.id, pipeline)
        cam.pipeline = pipeline  # the next frame runs on it; the capture thread is not touched
        with self._lock:
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
            engine = self.pool.engines.get(Path(current).resolve())
            if engine is not None and engine.manifest.id == model_id:
                return str(folder)
        raise CommandError("no-such-model", f"camera {cam.config.id} has no configured model {model_id!r}")

    async def rollback(self, args: dict[str, Any]) -> dict[str, Any]:
        cam = self._camera(args.get("camera"))
        result = await asyncio.to_thread(self._rollback, cam)
        await self._changed()
        return result

    def _rollback(self, cam: Camera) -> dict[str, Any]:
        with self._lock:
            return self._rollback_locked(cam)

    def _rollback_locked(self, cam: Camera) -> dict[str, Any]:
        record = self.record()
        mine = record.get(cam.config.id, {})
        if not mine.get("previous"):
            raise CommandError("nothing-to-roll-back", f"camera {cam.config.id} runs no updated model")
        folders = [
            mine["previous"].get(str(f), mine["current"].get(str(f), str(f))) for f in cam.config.models
        ]
        try:
            engines = [self.pool.get(f) for f in folders]
        except ModelRefused as exc:
            raise CommandError("model-refused", f"the previous model does not load any more: {exc}") from None
        pipeline = CameraPipeline(cam.config, engines)
        self.adopt(cam.config.id, pipeline)
        cam.pipeline = pipeline
        _back(mine)
        self._ends.pop(cam.config.id, None)
        self._write_record(record)
        log.warning("camera %s rolled back to %s", cam.config.id, ", ".join(folders))
        return {"camera": cam.config.id, "models": [[e.manifest.id, e.manifest.version] for e in engines]}


def _back(mine: dict[str, Any]) -> None:
    """A camera's record back to the models it ran before its last update."""
    mine["current"] = {**mine.get("current", {}), **mine.get("previous", {})}
    mine["previous"] = {}
    mine.pop("probation", None)


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
