"""One camera's pipeline: frame → motion gate → models → rules → events (with a blurred snapshot).

``process`` is synchronous and CPU-bound; the runtime calls it in a worker thread. All rule time
comes from the frame (``Frame.t``), so the same frames give the same events.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..clock import clock_synchronized
from ..config.camera import CameraConfig
from ..events import BOX_SCALE, ISSUE, START, Event
from .crowd import CrowdReading
from .detections import DensityMap, Detections
from .engine import ModelEngine
from .faces import load_face_detector
from .frames import Frame, FrameInfo
from .manifest import ModelManifest
from .motion import MotionGate
from .preprocess import Letterbox, Preprocessor
from .privacy import Found, SnapshotTaker
from .rules import CameraRules
from .zones import Masks, Zone

log = logging.getLogger(__name__)

CLOCK_CHECK_S = 30.0


FPS_WINDOW_S = 30.0  # health's fps: over the last half minute, so an outage shows as it happens


@dataclass
class CameraStats:
    frames: int = 0
    inferred: int = 0
    events: int = 0
    infer_ms: float = 0.0  # last inferred frame: preprocess, inference and decoding of every model
    pipeline_ms: float = 0.0  # last frame: everything in process()
    started: float = field(default_factory=time.monotonic)
    recent: deque[tuple[float, bool]] = field(default_factory=deque)  # (when, inferred) in the window

    def count(self, inferred: bool, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.frames += 1
        self.inferred += inferred
        self.recent.append((now, inferred))
        while self.recent and now - self.recent[0][0] > FPS_WINDOW_S:
            self.recent.popleft()

    def as_dict(self, now: float | None = None) -> dict[str, object]:
        now = time.monotonic() if now is None else now
        while self.recent and now - self.recent[0][0] > FPS_WINDOW_S:
            self.recent.popleft()
        elapsed = max(1e-9, now - self.started)
        window = max(1e-9, min(FPS_WINDOW_S, elapsed))
        return {
            "frames": self.frames,
            "inferred": self.inferred,
            "events": self.events,
            "fps": round(len(self.recent) / window, 2),
            "infer_fps": round(sum(1 for _, i in self.recent if i) / window, 2),
            "fps_lifetime": round(self.frames / elapsed, 2),
            "infer_ms": round(self.infer_ms, 1),
            "pipeline_ms": round(self.pipeline_ms, 1),
        }


@dataclass
class FrameResult:
    frame: Frame
    inferred: bool
    events: list[Event]
    found: list[tuple[Detections, list[str]]]  # tracked detections and class names per detector
    density: DensityMap | None
    crowd: dict[str, CrowdReading]


@dataclass
class _Model:
    engine: ModelEngine
    prep: Preprocessor  # this camera's own buffers: sessions are shared, buffers are not
    manifest: ModelManifest  # with this camera's thresholds
    keep: np.ndarray | None = None  # label ids this camera takes from the model; None: all
    last: Detections | DensityMap | None = None


def _kept_labels(config: CameraConfig, manifest: ModelManifest) -> np.ndarray | None:
    wanted = config.model_labels.get(manifest.id)
    if wanted is None:
        return None
    unknown = sorted(set(wanted) - set(manifest.labels))
    if unknown:
        raise ValueError(
            f"camera {config.id}: model_labels.{manifest.id} names {', '.join(unknown)}, which the model "
            f"does not detect (it has: {', '.join(manifest.labels)})"
        )
    return np.asarray([manifest.labels.index(w) for w in wanted], np.int32)


class CameraPipeline:
    def __init__(self, config: CameraConfig, engines: list[ModelEngine]) -> None:
        if not engines:
            raise ValueError(f"camera {config.id} has no usable model")
        self.config = config
        # Models with the same input spec (ours, and most YOLO exports at one size) share one
        # preprocessed tensor: a frame is letterboxed and converted once for all of them.
        preps: list[Preprocessor] = []
        models = []
        for e in engines:
            prep = next((p for p in preps if p.spec == e.manifest.input), None)
            if prep is None:
                prep = e.preprocessor()
                preps.append(prep)
            models.append(
                _Model(e, prep, e.with_thresholds(config.confidence), _kept_labels(config, e.manifest))
            )
        self.detectors = [m for m in models if not m.engine.is_density]
        self.density = next((m for m in models if m.engine.is_density), None)
        self.rules = CameraRules(
            config,
            [(m.engine.ref, m.engine.manifest.labels) for m in self.detectors],
            self.density.engine.ref if self.density else None,
        )
        m = config.motion
        self.motion = MotionGate(m.threshold, m.thumbnail_width, m.max_skip_s, m.enabled)
        self.stats = CameraStats()
        self._synced, self._clock_checked = False, -float("inf")
        self.snapshots = self._snapshot_taker()

    def _snapshot_taker(self) -> SnapshotTaker | None:
        snap = self.config.snapshots
        if not snap.enabled:
            return None
        try:
            faces = load_face_detector(snap.face_model)
        except ValueError as exc:
            # Fail closed: without the face detector no image leaves; the events still do.
            log.error("camera %s: snapshots are off: %s", self.config.id, exc)
            return None
        return SnapshotTaker(self.config.id, snap, faces, self._private_in)

    def _private_in(self, crop: np.ndarray) -> Found:
        # The detectors again, on the snapshot's cut: people too small in the whole frame are larger
        # here. Every private label counts, whatever this camera takes from the model for its rules.
        wanted = set(self.config.snapshots.blur_labels) | set(self.config.snapshots.vehicle_labels)
        found = []
        for m in self.detectors:
            if wanted & set(m.engine.manifest.labels):
                dets = m.engine.infer(crop, m.prep, m.manifest)
                assert isinstance(dets, Detections)
                found.append((dets, m.engine.manifest.labels))
        return found

    @property
    def zones(self) -> list[Zone]:
        return self.rules.zones

    @property
    def masks(self) -> Masks:
        return self.rules.masks

    def running(self) -> list[_Model]:
        """The models in the order the camera's config lists them (detectors, then density)."""
        return [*self.detectors, *([self.density] if self.density is not None else [])]

    def process(self, frame: Frame) -> FrameResult:
        started = time.perf_counter()
        inferred = self.motion.should_infer(frame.image, frame.t)
        self.stats.count(inferred)
        found = None
        if inferred:
            found = self._infer(frame.image)
        info = FrameInfo(frame.t, frame.captured_ms, self._clock_synced())
        dmap = self.density.last if self.density else None
        assert dmap is None or isinstance(dmap, DensityMap)
        events = self.rules.update(found, dmap, info)
        if self.snapshots is not None and any(e.kind == ISSUE and e.phase == START for e in events):
            events = self._with_snapshot(frame, events)
        self.stats.events += len(events)
        self.stats.pipeline_ms = (time.perf_counter() - started) * 1000.0
        return FrameResult(
            frame,
            inferred,
            events,
            [(d.tracked, d.classes) for d in self.rules.detectors],
            dmap,
            self.rules.crowd_readings,
        )

    def _clock_synced(self) -> bool:
        # The kernel's answer changes rarely and asking costs a syscall and a library lookup.
        now = time.monotonic()
        if now - self._clock_checked > CLOCK_CHECK_S:
            self._synced, self._clock_checked = clock_synchronized(), now
        return self._synced

    def _infer(self, image: np.ndarray) -> list[Detections]:
        started = time.perf_counter()
        boxes: dict[int, Letterbox] = {}

        def prepared(m: _Model) -> Letterbox:
            if id(m.prep) not in boxes:
                boxes[id(m.prep)] = m.prep(image)
            return boxes[id(m.prep)]

        found = []
        for m in self.detectors:
            dets = m.engine.infer_prepared(m.prep, prepared(m), m.manifest)
            assert isinstance(dets, Detections)
            if m.keep is not None:
                dets = dets[np.isin(dets.class_id, m.keep)]
            m.last = dets
            found.append(dets)
        if self.density is not None:
            self.density.last = self.density.engine.infer_prepared(self.density.prep, prepared(self.density))
        self.stats.infer_ms = (time.perf_counter() - started) * 1000.0
        return found

    def _with_snapshot(self, frame: Frame, events: list[Event]) -> list[Event]:
        # Everything found in the frame is blurred if private, whichever model found it.
        assert self.snapshots is not None
        found = [(m.last, m.engine.manifest.labels) for m in self.detectors if isinstance(m.last, Detections)]
        out = []
        for e in events:
            if e.kind == ISSUE and e.phase == START and e.box is not None:
                box = (e.box[0] / BOX_SCALE, e.box[1] / BOX_SCALE, e.box[2] / BOX_SCALE, e.box[3] / BOX_SCALE)
                name = f"{e.captured_ms}-{e.event_id.hex()}"
                snap = self.snapshots.take(frame.image, box, found, frame.t, name)
                if snap is not None:
                    e = dataclasses.replace(e, image=snap.jpeg, blurred=True, extra={**e.extra, **snap.wire})
            out.append(e)
        return out
