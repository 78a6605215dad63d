"""Live view of one camera: the newest frame and its result while someone watches, as JPEG.

The camera task hands over (frame, result) only while ``viewers`` > 0 (agent/vision/part.py); the
JPEG is made once per frame for all viewers, in the web part's own thread, scaled down first.

Fail-closed, as snapshots are (agent/vision/privacy.py): a frame is shown blurred only when the face
detector ran on it and a people detector either found this very frame's people in the pipeline or
ran on it here (frames the motion gate let through without inference); people found in the last
HOLD_S seconds stay blurred too. When either cannot vouch for a frame (no face model, a model that
fails, a camera with no model that detects people), the frame is withheld: pixelated whole. Only
``web.unblurred``, logged, shows people unblurred.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from ..vision.camera import Camera
from ..vision.detections import Detections
from ..vision.draw import annotate, draw_lines
from ..vision.engine import ModelEngine
from ..vision.faces import FaceDetector, load_face_detector
from ..vision.frames import Frame
from ..vision.pipeline import FrameResult
from ..vision.preprocess import Preprocessor
from ..vision.privacy import FACE_BLOCKS, PERSON_BLOCKS, blur_regions, private_boxes
from ..vision.zones import Zone

log = logging.getLogger(__name__)

JPEG_QUALITY = 75
HOLD_S = 1.5  # a person found in the last moments stays blurred where they were: detectors flicker
GROW = 0.15  # and each box grows by this much of its size on every side: people move between frames
WHOLE = np.asarray([[0.0, 0.0, 1.0, 1.0]], np.float32)

BLURRED, UNBLURRED, WITHHELD = "blurred", "unblurred", "withheld"


class Unvouched(Exception):
    """Why the detectors cannot vouch for a frame; the frame is then withheld."""


@dataclass
class Shown:
    frame: Frame
    result: FrameResult
    number: int
    at: float
    private: np.ndarray  # (n, 4) normalized boxes to blur: people, faces, plate bands, recent ones too
    privacy: str = ""  # once encoded: blurred, unblurred or withheld
    reason: str = ""  # why it was withheld


def _grown(boxes: np.ndarray) -> np.ndarray:
    if not len(boxes):
        return boxes
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.clip(boxes + np.stack([-w, -h, w, h], axis=1) * GROW, 0.0, 1.0)


def withheld(image: np.ndarray, reason: str) -> np.ndarray:
    """The whole frame pixelated beyond recognition, saying why on a dark band at the bottom."""
    out = blur_regions(image, WHOLE, PERSON_BLOCKS)
    h, w = out.shape[:2]
    size = min(0.8, max(0.4, w / 1400))
    step = int(26 * size / 0.5)
    lines = ["VIEW WITHHELD: nothing vouches for this frame", reason]
    width = int((w - 24) / (9.5 * size / 0.5))  # characters that fit a line at this size
    lines = [lines[0]] + [reason[i : i + width] for i in range(0, min(len(reason), 3 * width), width)]
    top = h - step * len(lines) - 10
    cv2.rectangle(out, (0, top), (w, h), (30, 30, 30), -1)
    for k, text in enumerate(lines):
        y = top + step * (k + 1) - 4
        cv2.putText(out, text, (12, y), cv2.FONT_HERSHEY_SIMPLEX, size, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class LiveView:
    def __init__(self, camera: Camera, executor: ThreadPoolExecutor, width: int, unblurred: bool) -> None:
        self.camera = camera
        self.executor = executor
        self.width = width
        self.unblurred = unblurred
        self.latest: Shown | None = None
        self.still: Shown | None = None  # the frame the zone editor shows, with its detections
        self._number = 0
        self._arrived = asyncio.Event()
        self._jpegs: dict[tuple[int, bool], bytes] = {}  # (frame number, annotated) -> JPEG
        self._encoding: dict[tuple[int, bool], asyncio.Future[bytes]] = {}
        self.encoded = 0  # JPEGs made: the cost of watching, in the tests and the bench
        self._recent: deque[tuple[float, np.ndarray]] = deque()
        # What only the web thread touches: the face model, the detectors' own buffers (the camera
        # thread uses the pipeline's) and the last frame made private, shared by both JPEG kinds.
        self._faces: FaceDetector | None = None
        self._preps: dict[int, tuple[ModelEngine, Preprocessor]] = {}
        self._private_image: tuple[int, np.ndarray, str, str] | None = None
        self.state = ""  # the last frame's privacy, logged when it changes

    def offer(self, frame: Frame, result: FrameResult) -> None:
        """Called by the camera task, on the event loop, after each frame while someone watches."""
        self._number += 1
        now = time.monotonic()
        self.latest = Shown(frame, result, self._number, now, self._private(result, now))
        self._jpegs.clear()
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()

    def _private(self, result: FrameResult, now: float) -> np.ndarray:
        snap = self.camera.config.snapshots
        found = [private_boxes(dets, classes, snap) for dets, classes in result.found]
        self._recent.append((now, np.concatenate(found) if found else np.zeros((0, 4), np.float32)))
        while self._recent and now - self._recent[0][0] > HOLD_S:
            self._recent.popleft()
        return _grown(np.concatenate([b for _, b in self._recent]))

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Count a viewer for as long as the block runs: frames arrive only meanwhile."""
        self.camera.show = self.offer
        self.camera.viewers += 1
        try:
            yield
        finally:
            self.camera.viewers -= 1

    async def next(self, after: int, timeout: float) -> Shown | None:
        """The first frame numbered after ``after``, or None if none comes within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.latest is None or self.latest.number <= after:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)
        return self.latest

    async def jpeg(self, shown: Shown, annotated: bool = True) -> bytes:
        """The frame as JPEG, private (see the module), annotated or plain; made once per frame."""
        key = (shown.number, annotated)
        if key in self._jpegs:
            return self._jpegs[key]
        pending = self._encoding.get(key)
        if pending is None:
            loop = asyncio.get_running_loop()
            zones = self.camera.pipeline.zones if self.camera.pipeline is not None else []
            pending = loop.run_in_executor(self.executor, self._encode, shown, zones, annotated)
            self._encoding[key] = pending
        try:
            data = await asyncio.shield(pending)
        finally:
            self._encoding.pop(key, None)
        if self.latest is not None and self.latest.number == shown.number:
            self._jpegs[key] = data
        return data

    def _encode(self, shown: Shown, zones: list[Zone], annotated: bool) -> bytes:
        image = self._private_view(shown)
        if annotated:
            pipeline = self.camera.pipeline
            image = annotate(image, zones, shown.result, pipeline.masks if pipeline is not None else None)
            if pipeline is not None and pipeline.config.lines:
                draw_lines(image, pipeline.config.lines, pipeline.rules.line_totals)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError("OpenCV could not encode the frame as JPEG")
        self.encoded += 1
        return buf.tobytes()

    def _private_view(self, shown: Shown) -> np.ndarray:
        """The scaled frame as a viewer may see it; sets ``shown.privacy`` (web thread only)."""
        done = self._private_image
        if done is not None and done[0] == shown.number:
            shown.privacy, shown.reason = done[2], done[3]
            return done[1]
        image = shown.frame.image
        h, w = image.shape[:2]
        if w > self.width:  # everything drawn is in normalized coordinates: scale first, it is cheaper
            image = cv2.resize(image, (self.width, round(h * self.width / w)), interpolation=cv2.INTER_AREA)
        if self.unblurred:
            shown.privacy, shown.reason = UNBLURRED, ""
        else:
            try:
                people, faces = self._vouched(shown, image)
            except Unvouched as exc:
                shown.privacy, shown.reason = WITHHELD, str(exc)
                image = withheld(image, shown.reason)
            else:
                shown.privacy, shown.reason = BLURRED, ""
                image = blur_regions(blur_regions(image, people, PERSON_BLOCKS), faces, FACE_BLOCKS)
        self._log_change(shown)
        self._private_image = (shown.number, image, shown.privacy, shown.reason)
        return image

    def _log_change(self, shown: Shown) -> None:
        state = f"{shown.privacy}: {shown.reason}" if shown.reason else shown.privacy
        if state == self.state:
            return
        camera = self.camera.config.id
        if shown.privacy == WITHHELD:
            log.warning("web: camera %s's live view is withheld: %s", camera, shown.reason)
        elif self.state.startswith(WITHHELD):
            log.info("web: camera %s's live view is shown blurred again", camera)
        self.state = state

    def _vouched(self, shown: Shown, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """People and faces to blur in ``image``, or Unvouched when the models cannot say."""
        snap = self.camera.config.snapshots
        try:
            if self._faces is None:
                self._faces = load_face_detector(snap.face_model)
            faces = self._faces(image, snap.face_confidence)
        except Exception as exc:  # a missing file, or onnxruntime failing on it: nothing vouches
            raise Unvouched(f"the face model cannot run: {exc}") from None
        pipeline = self.camera.pipeline
        wanted = set(snap.blur_labels)
        detectors = (
            [m for m in pipeline.detectors if wanted & set(m.engine.manifest.labels)] if pipeline else []
        )
        if not detectors:
            raise Unvouched(f"no model of camera {self.camera.config.id} detects people")
        # The pipeline's own detections vouch for a frame it inferred with every private label kept
        # and every detection tracked; otherwise (the motion gate skipped inference, model_labels
        # drop people, or tracker.high_confidence leaves weak ones untracked) the detectors run here.
        kept_all = all(
            m.keep is None
            or wanted & set(m.engine.manifest.labels) <= {m.engine.manifest.labels[i] for i in m.keep}
            for m in detectors
        )
        all_tracked = self.camera.config.tracker.high_confidence is None
        people = [shown.private]
        if not (shown.result.inferred and kept_all and all_tracked):
            for m in detectors:
                try:
                    dets = m.engine.infer(image, self._prep(m.engine), m.manifest)
                except Exception as exc:
                    raise Unvouched(f"model {m.engine.manifest.id} failed: {exc}") from None
                assert isinstance(dets, Detections)
                people.append(_grown(private_boxes(dets, m.engine.manifest.labels, snap)))
        return np.concatenate(people), faces

    def _prep(self, engine: ModelEngine) -> Preprocessor:
        held = self._preps.get(id(engine))
        if held is None or held[0] is not engine:
            held = (engine, engine.preprocessor())
            self._preps[id(engine)] = held
        return held[1]
