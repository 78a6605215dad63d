"""One camera's pipeline: frame → models → tracker → zones → rules → events.

``process`` is synchronous and CPU-bound; the runtime calls it in a worker thread. All time comes
from the frame (``Frame.t``), so the same frames give the same events.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from ..clock import clock_synchronized
from ..config.camera import CameraConfig
from ..events import ISSUE, START, Event
from .counts import CountRules
from .crowd import CrowdMonitor, CrowdReading
from .detections import DensityMap, Detections
from .engine import ModelEngine
from .issues import FrameInfo, IssueRules
from .manifest import ModelManifest
from .preprocess import Preprocessor
from .privacy import snapshot
from .sources import Frame, MotionGate
from .tracker import Tracker
from .zones import Zone, make_zones, membership

CLOCK_CHECK_S = 30.0


@dataclass
class DetectorLane:
    """One detection model on one camera: its buffers, thresholds, tracker and rules."""

    engine: ModelEngine
    prep: Preprocessor
    manifest: ModelManifest
    tracker: Tracker
    issues: IssueRules
    counts: CountRules
    tracked: Detections = field(default_factory=Detections.empty)
    raw: Detections = field(default_factory=Detections.empty)  # the last inferred frame's detections


@dataclass
class CameraStats:
    frames: int = 0
    inferred: int = 0
    events: int = 0
    infer_ms: float = 0.0  # last frame: preprocess, inference and decoding of every model
    pipeline_ms: float = 0.0  # last frame: everything in process()
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, object]:
        elapsed = max(1e-9, time.monotonic() - self.started)
        return {
            "frames": self.frames,
            "inferred": self.inferred,
            "events": self.events,
            "fps": round(self.frames / elapsed, 2),
            "infer_fps": round(self.inferred / elapsed, 2),
            "infer_ms": round(self.infer_ms, 1),
            "pipeline_ms": round(self.pipeline_ms, 1),
        }


@dataclass
class FrameResult:
    frame: Frame
    inferred: bool
    events: list[Event]
    lanes: list[tuple[Detections, list[str]]]  # tracked detections and class names per detector
    density: DensityMap | None
    crowd: dict[str, CrowdReading]


class CameraPipeline:
    def __init__(self, config: CameraConfig, engines: list[ModelEngine]) -> None:
        if not engines:
            raise ValueError(f"camera {config.id} has no usable model")
        self.config = config
        self.zones: list[Zone] = make_zones(config.zones)
        self.lanes: list[DetectorLane] = []
        self.density_engine: ModelEngine | None = None
        self.density_prep: Preprocessor | None = None
        self.density: DensityMap | None = None
        for engine in engines:
            if engine.is_density:
                self.density_engine, self.density_prep = engine, engine.preprocessor()
                continue
            classes = engine.manifest.classes
            self.lanes.append(
                DetectorLane(
                    engine,
                    engine.preprocessor(),
                    engine.with_thresholds(config.confidence),
                    Tracker(config.tracker),
                    IssueRules(
                        config.id, engine.ref, classes, config.issues, self.zones, config.parking_classes
                    ),
                    CountRules(config.id, engine.ref, classes, self.zones),
                )
            )
        person = next(
            (lane for lane in self.lanes if config.crowd.person_label in lane.engine.manifest.classes), None
        )
        self.person_lane = person
        self.crowd = CrowdMonitor(
            config.id,
            config.crowd,
            self.zones,
            person.engine.ref if person else None,
            person.engine.class_id(config.crowd.person_label) if person else None,
            self.density_engine.ref if self.density_engine else None,
        )
        m = config.motion
        self.motion = MotionGate(m.threshold, m.thumbnail_width, m.max_skip_s, m.enabled)
        self.stats = CameraStats()
        self._synced, self._clock_checked = False, -float("inf")

    def process(self, frame: Frame) -> FrameResult:
        started = time.perf_counter()
        self.stats.frames += 1
        inferred = self.motion.should_infer(frame.image, frame.t)
        if inferred:
            self._infer(frame.image)
            self.stats.inferred += 1
        # A still scene keeps the last detections, so dwell times and ends keep advancing.
        info = FrameInfo(frame.t, frame.captured_ms, self._clock_synced())
        events: list[Event] = []
        person_inside = None
        for lane in self.lanes:
            if inferred:
                tracked = lane.tracker.update(lane.raw, info.now)
            else:
                tracked = lane.tracked
                lane.tracker.keep_alive(tracked.tracker_id, info.now)
            lane.tracked = tracked
            inside = membership(self.zones, tracked)
            events += lane.issues.update(tracked, inside, lane.tracker, info)
            events += lane.counts.update(tracked, inside, info)
            if lane is self.person_lane:
                person_inside = inside
        person_dets = self.person_lane.tracked if self.person_lane else None
        events += self.crowd.update(person_dets, person_inside, self.density, info)
        if self.config.snapshots.enabled and any(e.kind == ISSUE and e.phase == START for e in events):
            events = self._with_snapshot(frame.image, events)
        self.stats.events += len(events)
        self.stats.pipeline_ms = (time.perf_counter() - started) * 1000.0
        return FrameResult(
            frame,
            inferred,
            events,
            [(lane.tracked, lane.engine.manifest.classes) for lane in self.lanes],
            self.density,
            dict(self.crowd.readings),
        )

    def _clock_synced(self) -> bool:
        # The kernel's answer changes rarely and asking costs a syscall and a library lookup.
        now = time.monotonic()
        if now - self._clock_checked > CLOCK_CHECK_S:
            self._synced, self._clock_checked = clock_synchronized(), now
        return self._synced

    def _infer(self, image: np.ndarray) -> None:
        started = time.perf_counter()
        for lane in self.lanes:
            result = lane.engine.infer(image, lane.prep, lane.manifest)
            assert isinstance(result, Detections)
            lane.raw = result
        if self.density_engine is not None and self.density_prep is not None:
            dmap = self.density_engine.infer(image, self.density_prep)
            assert isinstance(dmap, DensityMap)
            self.density = dmap
        self.stats.infer_ms = (time.perf_counter() - started) * 1000.0

    def _with_snapshot(self, image: np.ndarray, events: list[Event]) -> list[Event]:
        # Everything found in the frame is blurred if private, whichever model found it.
        found = [(lane.raw, lane.engine.manifest.classes) for lane in self.lanes]
        jpeg = snapshot(image, found, self.config.snapshots)
        return [
            dataclasses.replace(e, image=jpeg, blurred=True) if e.kind == ISSUE and e.phase == START else e
            for e in events
        ]
