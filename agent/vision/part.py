"""The vision part of the agent: loads the models, runs one task per camera, reports health.

A model that is refused disables only the cameras that use it; the reason is logged and shown in
health telemetry, and the other cameras run. A camera whose task fails is restarted with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..backoff import Backoff
from ..config import GatewayConfig
from ..config.camera import CameraConfig, LineConfig, MaskConfig, VisionConfig, ZoneConfig
from ..config.updates import UpdatesConfig
from ..events import ModelRef
from ..redact import redact_url
from ..sink import EventSink
from ..transfers import Uploads
from .camera import Camera
from .engine import EngineOptions, ModelEngine, ModelPool, ModelRefused
from .issue_store import IssueStore
from .pipeline import CameraPipeline
from .probation import FrameRateRule
from .sources import LiveSource
from .updates import ModelUpdates

log = logging.getLogger(__name__)

POLL_S = 1.0  # how long a camera task waits for a frame before checking for a stall or a stop


def engine_options(config: VisionConfig, cameras: int = 1) -> EngineOptions:
    """Engine settings; thread spinning by the config, or by the number of cameras when it says auto."""
    spinning = config.spinning == "on" or (config.spinning == "auto" and cameras <= 1)
    return EngineOptions(
        providers=tuple(config.providers),
        intra_op_threads=config.intra_op_threads,
        inter_op_threads=config.inter_op_threads,
        warmup_runs=config.warmup_runs,
        self_test=config.self_test,
        spinning=spinning,
    )


class Vision:
    """All cameras of a gateway and the engines they share."""

    def __init__(
        self,
        cameras: list[CameraConfig],
        config: VisionConfig | None = None,
        state_dir: Path | None = None,
        uploads: Uploads | None = None,
        updates: UpdatesConfig | None = None,
    ) -> None:
        self.pool = ModelPool(engine_options(config or VisionConfig(), len(cameras)))
        self.cameras = [Camera(c) for c in cameras]
        self.state_dir = state_dir  # open static issues and installed model updates live here
        self.seal: Callable[[str, bytes], bytes] | None = None  # kept snapshots, with the outbox's key
        self.updates: ModelUpdates | None = None
        if state_dir is not None and uploads is not None:
            updates = updates or UpdatesConfig()
            fps = FrameRateRule(
                updates.probation_fps_ratio, updates.probation_fps_floor, updates.probation_fps_window_s
            )
            self.updates = ModelUpdates(
                self.cameras,
                self.pool,
                self.keep_issues,
                state_dir / "models",
                uploads,
                list(updates.model_signers),
                updates.probation_s,
                fps,
            )

    def load(self) -> None:
        """Load every camera's models (blocking: run it in a thread)."""
        for cam in self.cameras:
            engines: list[ModelEngine] = []
            try:
                folders = [str(f) for f in cam.config.models]
                if self.updates is not None:  # updates installed over MQTT, kept across restarts
                    folders = self.updates.models_for(cam.config.id, folders)
                for folder in folders:
                    engines.append(self.pool.get(folder))
                cam.pipeline = CameraPipeline(cam.config, engines)
                self.keep_issues(cam.config.id, cam.pipeline)
            except ModelRefused as exc:
                cam.disabled = f"model refused: {exc}"
                log.error("camera %s disabled: %s", cam.config.id, exc)
            except ValueError as exc:
                cam.disabled = str(exc)
                log.error("camera %s disabled: %s", cam.config.id, exc)

    def running_models(self) -> list[ModelRef]:
        """The models the cameras run now (each once), as events name them in ``m``."""
        refs: dict[ModelRef, None] = {}
        for cam in self.cameras:
            if cam.pipeline is not None:
                for m in cam.pipeline.running():
                    refs[m.engine.ref] = None
        return list(refs)

    def keep_issues(self, camera: str, pipeline: CameraPipeline) -> None:
        """Make a new pipeline one of this gateway's: kept snapshots sealed at rest, and open static
        issues kept across restarts and model swaps in ``state_dir``."""
        if pipeline.snapshots is not None and self.seal is not None:
            pipeline.snapshots.seal = self.seal
        if self.state_dir is None:
            return
        for rules in pipeline.rules.detectors:
            model = rules.issues.model.id
            rules.issues.store = IssueStore(self.state_dir / "issues" / f"{camera}.{model}.json")
            rules.issues.store.restore(rules.issues)

    def take_zones(self, config: GatewayConfig) -> list[str]:
        """Run the zones, counting lines and masks ``config`` gives each camera now (set-config, the
        page); returns the config paths taken over, ``cameras[ID].zones``, ``.lines`` and ``.masks``.
        Nothing else of a camera changes until a restart."""
        taken = []
        for cam in self.cameras:
            fresh = next((c for c in config.cameras if c.id == cam.config.id), None)
            if fresh is None:
                continue
            if (fresh.zones, fresh.lines, fresh.masks) != (
                cam.config.zones,
                cam.config.lines,
                cam.config.masks,
            ):
                self.swap_zones(cam, fresh.zones, fresh.lines, fresh.masks)
            taken += [f"cameras[{cam.config.id}].{part}" for part in ("zones", "lines", "masks")]
        return taken

    def swap_zones(
        self,
        cam: Camera,
        zones: list[ZoneConfig],
        lines: list[LineConfig],
        masks: list[MaskConfig] | None = None,
    ) -> None:
        """A new pipeline with these zones, lines and masks (None: the camera's own) on the same
        engines, swapped in between two frames as a model update is (about a millisecond); open static
        issues are kept, the tracker and the lines' counts start afresh."""
        masks = cam.config.masks if masks is None else masks
        config = cam.config.model_copy(update={"zones": zones, "lines": lines, "masks": masks})
        if cam.pipeline is not None:
            pipeline = CameraPipeline(config, [m.engine for m in cam.pipeline.running()])
            self.keep_issues(config.id, pipeline)
            cam.pipeline = pipeline  # the camera task reads cam.pipeline for each frame
        cam.config = config
        log.info(
            "camera %s: zones now %s, counting lines %s, masks %s",
            config.id,
            [z.id for z in zones] or "none (the whole frame)",
            [ln.id for ln in lines] or "none",
            [m.id for m in masks] or "none",
        )

    def health(self) -> dict[str, Any]:
        models = {
            engine.manifest.id: {
                "version": engine.manifest.version,
                "inference_ms": round(engine.stats.mean_ms, 1),
                "runs": engine.stats.runs,
            }
            for engine in self.pool.engines.values()
        }
        return {
            "cameras": {cam.config.id: cam.health() for cam in self.cameras},
            "models": models,
            "refused_models": {str(k): v for k, v in self.pool.refused.items()},
        }

    async def run(self, sink: EventSink, stopping: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(self.supervise(cam, sink, stopping), name=f"camera-{cam.config.id}")
            for cam in self.cameras
            if cam.pipeline is not None
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def supervise(self, cam: Camera, sink: EventSink, stopping: asyncio.Event) -> None:
        """Run one camera until stopping; a failure restarts it alone, with backoff and jitter."""
        backoff = Backoff(first=1.0, most=60.0, jitter=(0.5, 1.5), healthy_after_s=60.0)
        while not stopping.is_set():
            started = time.monotonic()
            try:
                await self.run_camera(cam, sink, stopping)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                cam.restarts += 1
                log.exception("camera %s failed; restarting in about %.0f s", cam.config.id, backoff.delay)
            backoff.ran(time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), backoff.next())

    async def run_camera(self, cam: Camera, sink: EventSink, stopping: asyncio.Event) -> None:
        cfg = cam.config
        pipeline = cam.pipeline
        assert pipeline is not None
        loop = asyncio.get_running_loop()
        source = LiveSource(
            cfg.source_url(),  # the password (from its file or variable) only goes to OpenCV
            cfg.fps,
            loop=cfg.loop,
            stall_timeout_s=cfg.stall_timeout_s,
            reconnect_min_s=cfg.reconnect_min_s,
            reconnect_max_s=cfg.reconnect_max_s,
            name=cfg.id,
        )
        cam.source = source
        stalled = False
        with source:
            while not stopping.is_set():
                frame = await loop.run_in_executor(cam.executor, source.latest, POLL_S)
                if frame is None:
                    if source.finished.is_set():
                        log.info("camera %s: source %s has ended", cfg.id, redact_url(cfg.source))
                        await stopping.wait()  # nothing more to do, but keep health figures
                        return
                    if not stalled and source.seconds_since_frame() > cfg.stall_timeout_s:
                        stalled = True
                        log.warning("camera %s: no frame for %.0f s", cfg.id, cfg.stall_timeout_s)
                    continue
                if stalled:
                    log.info("camera %s: frames again", cfg.id)
                    stalled = False
                # cam.pipeline each frame: a model update or a zone edit swaps it between two frames
                pipeline = cam.pipeline
                assert pipeline is not None  # swapped, never cleared, while the camera runs
                result = await loop.run_in_executor(cam.executor, pipeline.process, frame)
                if cam.viewers and cam.show is not None:
                    cam.show(frame, result)
                for event in result.events:
                    await sink.submit(event)


async def run_offline(pipeline: CameraPipeline, sink: EventSink, loop_source: bool = False) -> int:
    """Every sampled frame of a file or folder through the pipeline, in order; returns frames done.

    The capture thread decodes the next frame while this one is inferred, as on a live camera, but
    nothing is dropped and the rules run on the media's own clock, so results repeat.
    """
    cfg = pipeline.config
    source = LiveSource(cfg.source_url(), cfg.fps, loop=loop_source, name=cfg.id, replay=True)
    done = 0
    with source:
        while True:
            frame = await asyncio.to_thread(source.latest, POLL_S)
            if frame is None:
                if source.finished.is_set():
                    return done
                continue
            result = await asyncio.to_thread(pipeline.process, frame)
            done += 1
            for event in result.events:
                await sink.submit(event)


# --- the part's interface (agent/runtime.py) ---


def _vision(ctx: Any) -> Vision | None:
    return getattr(ctx, "vision", None)


async def setup(ctx: Any) -> None:
    config: GatewayConfig = ctx.config
    if not config.cameras:
        return
    vision = Vision(
        config.cameras,
        config.vision,
        state_dir=config.outbox.path.parent / "vision",
        uploads=getattr(ctx, "uploads", None),
        updates=config.updates,
    )
    uplink = getattr(ctx, "uplink", None)
    sealer = uplink.outbox.sealer if uplink is not None else None
    if sealer is not None:
        vision.seal = sealer.seal_file
    await asyncio.to_thread(vision.load)
    ctx.vision = vision
    ctx.health.register("vision", vision.health)
    updates = vision.updates
    if updates is not None:
        updates.sink = ctx.sink
        register = ctx.commands.register
        register(
            "model-status", updates.status, mutating=False, description="models per camera, updates installed"
        )
        register(
            "model-install", updates.install, mutating=True, description="install a staged model package"
        )
        register("model-rollback", updates.rollback, mutating=True, description="a camera's previous models")


async def run(ctx: Any) -> None:
    vision = _vision(ctx)
    if vision is None:
        await ctx.stopping.wait()
        return
    if vision.updates is not None:
        vision.updates.resume()  # a model's probation cut by a restart goes on
    await vision.run(ctx.events(), ctx.stopping)


async def close(ctx: Any) -> None:
    vision = _vision(ctx)
    if vision is None:
        return
    if vision.updates is not None:
        vision.updates.closed()  # a clean stop: not the crash a probation watches for
    for cam in vision.cameras:
        cam.executor.shutdown(wait=False, cancel_futures=True)
