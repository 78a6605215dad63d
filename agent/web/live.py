"""Live view of one camera: the newest frame and its result while someone watches, as JPEG.

The camera task hands over (frame, result) only while ``viewers`` > 0 (agent/vision/part.py); the
JPEG is made once per frame for all viewers, in the web part's own thread, scaled down first. People,
faces and vehicles' plate bands found in the last HOLD_S seconds are blurred as in snapshots unless
``web.unblurred`` is set; a person no detector finds is not (docs/web.md says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from ..vision.draw import annotate
from ..vision.part import Camera
from ..vision.pipeline import FrameResult
from ..vision.privacy import blur_regions, private_boxes
from ..vision.sources import Frame
from ..vision.zones import Zone

JPEG_QUALITY = 75
HOLD_S = 1.5  # a person found in the last moments stays blurred where they were: detectors flicker
GROW = 0.15  # and each box grows by this much of its size on every side: people move between frames


@dataclass
class Shown:
    frame: Frame
    result: FrameResult
    number: int
    at: float
    private: np.ndarray  # (n, 4) normalized boxes to blur: people, faces, plate bands, recent ones too


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
        boxes = np.concatenate([b for _, b in self._recent])
        if not len(boxes):
            return boxes
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        grown = boxes + np.stack([-w, -h, w, h], axis=1) * GROW
        return np.clip(grown, 0.0, 1.0)

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
        """The frame as JPEG, blurred (unless configured not), annotated or plain; made once per frame."""
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
        image = shown.frame.image
        h, w = image.shape[:2]
        if w > self.width:  # everything drawn is in normalized coordinates: scale first, it is cheaper
            image = cv2.resize(image, (self.width, round(h * self.width / w)), interpolation=cv2.INTER_AREA)
        if not self.unblurred and len(shown.private):
            image = blur_regions(image, shown.private)
        if annotated:
            image = annotate(image, zones, shown.result)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError("OpenCV could not encode the frame as JPEG")
        self.encoded += 1
        return buf.tobytes()
