"""Snapshots that may leave the device, fail-closed: the issue's region only, everyone in it blurred.

A detector misses people (small, hidden, cut at an edge), so blurring what it found cannot be the
only safeguard: by default a snapshot is cut to the issue's box and a margin, the detectors run
again around that cut at its own resolution, a face detector besides them, and the JPEG is checked
by them before it leaves. A full frame leaves only when configured, logged and marked in the event.
See docs/vision.md, "Snapshots: fail-closed".
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..config.camera import SnapshotConfig
from ..events import BOX_SCALE
from .detections import Detections
from .faces import FaceDetector

log = logging.getLogger(__name__)

PLATE_LABELS = {"licence_plate", "license_plate", "plate"}
PLATE_BAND = 0.4  # lower part of a vehicle box where its plate is, when the model finds no plates
PERSON_BLOCKS = 8  # a person is pixelated to at most 8 blocks across (a face then is one or two)
FACE_BLOCKS = 4  # faces and plates to at most 4: nothing of an identity survives 4x4 averages
MIN_QUALITY = 30  # a JPEG over max_bytes is re-encoded down to this quality, then scaled down
CONTEXT = 0.5  # the detectors look this much (of the region's size) beyond each of its sides
FULL_KEY = "full"  # wire key: the snapshot is the whole frame (configured), not the issue's region
REGION_KEY = "imb"  # wire key: the part of the frame the snapshot shows, 0..BOX_SCALE like a box

Box = tuple[float, float, float, float]
Found = list[tuple[Detections, list[str]]]
Detect = Callable[[np.ndarray], Found]


def blur_regions(image: np.ndarray, boxes: np.ndarray, blocks: int = PERSON_BLOCKS) -> np.ndarray:
    """A copy of ``image`` with each normalized box pixelated beyond recognition, then blurred."""
    out = image.copy()
    h, w = out.shape[:2]
    for x1, y1, x2, y2 in boxes:
        a, b = max(0, int(x1 * w)), max(0, int(y1 * h))
        c, d = min(w, int(np.ceil(x2 * w))), min(h, int(np.ceil(y2 * h)))
        if c - a < 2 or d - b < 2:
            continue
        # Pixelate, then blur the blocks: a Gaussian blur alone can be partly inverted, a few
        # averaged blocks cannot give back a face or a plate.
        small = cv2.resize(
            out[b:d, a:c], (min(blocks, c - a), min(blocks, d - b)), interpolation=cv2.INTER_AREA
        )
        big = cv2.resize(small, (c - a, d - b), interpolation=cv2.INTER_NEAREST)
        out[b:d, a:c] = cv2.GaussianBlur(big, (0, 0), max(1.0, (c - a) / (2 * blocks)))
    return out


def private_boxes(
    dets: Detections, classes: list[str], config: SnapshotConfig, plate_bands: bool = True
) -> np.ndarray:
    """Boxes of people, faces and plates (and, unless told not, each vehicle's plate band)."""
    blur = set(config.blur_labels)
    boxes = [dets.xyxy[i] for i in range(len(dets)) if classes[int(dets.class_id[i])] in blur]
    if plate_bands and config.blur_plate_region and not PLATE_LABELS & set(classes):
        vehicles = set(config.vehicle_labels)
        for i in range(len(dets)):
            if classes[int(dets.class_id[i])] in vehicles:
                x1, y1, x2, y2 = dets.xyxy[i]
                boxes.append(np.asarray([x1, y2 - (y2 - y1) * PLATE_BAND, x2, y2], np.float32))
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def issue_region(box: Box, config: SnapshotConfig) -> Box:
    """The part of the frame a snapshot of ``box`` shows: the box, its margin, at least min_region."""
    if config.region == "full":
        return (0.0, 0.0, 1.0, 1.0)
    out = []
    for lo, hi in ((box[0], box[2]), (box[1], box[3])):
        size = max(hi - lo + 2 * config.margin * (hi - lo), config.min_region)
        size = min(size, 1.0)
        # Keep the region's size where the margin runs off the frame: shift it inside.
        start = min(max(0.0, (lo + hi) / 2 - size / 2), 1.0 - size)
        out.append((start, start + size))
    return (out[0][0], out[1][0], out[0][1], out[1][1])


def _within(boxes: np.ndarray, region: Box) -> np.ndarray:
    """Frame-normalized boxes in the region's own normalized coordinates, cut at its edges."""
    x1, y1, x2, y2 = region
    scale = np.asarray([x2 - x1, y2 - y1, x2 - x1, y2 - y1], np.float32)
    local = (boxes - np.asarray([x1, y1, x1, y1], np.float32)) / scale
    local = np.clip(local, 0.0, 1.0)
    keep = (local[:, 2] > local[:, 0]) & (local[:, 3] > local[:, 1])
    return local[keep]


def crop_of(image: np.ndarray, region: Box) -> np.ndarray:
    """The pixels of a normalized region (at least one)."""
    h, w = image.shape[:2]
    a, b = int(region[0] * w), int(region[1] * h)
    c, d = max(a + 1, int(np.ceil(region[2] * w))), max(b + 1, int(np.ceil(region[3] * h)))
    return image[b:d, a:c]


def _grown(region: Box, by: float) -> Box:
    w, h = region[2] - region[0], region[3] - region[1]
    return (
        max(0.0, region[0] - by * w),
        max(0.0, region[1] - by * h),
        min(1.0, region[2] + by * w),
        min(1.0, region[3] + by * h),
    )


def _in_frame(boxes: np.ndarray, region: Box) -> np.ndarray:
    """Region-normalized boxes in the frame's normalized coordinates."""
    x1, y1, x2, y2 = region
    scale = np.asarray([x2 - x1, y2 - y1, x2 - x1, y2 - y1], np.float32)
    return boxes * scale + np.asarray([x1, y1, x1, y1], np.float32)


def private_in(
    image: np.ndarray,
    region: Box,
    found: Found,
    config: SnapshotConfig,
    faces: FaceDetector | None,
    detect: Detect | None = None,
    plate_bands: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """People and plates, then faces, to blur in the ``region`` of ``image``, region-normalized:
    the frame's detections, and ``detect`` and the face detector run around the region."""
    empty = np.zeros((0, 4), np.float32)
    people = [_within(private_boxes(d, c, config, plate_bands), region) for d, c in found]
    # Around the region, not on it: someone the cut halves is whole there, and a half person is
    # what a detector misses most (measured on vtest: most people left unblurred were cut at an edge).
    context = _grown(region, CONTEXT)
    around = crop_of(image, context)
    if detect is not None:
        for d, c in detect(around):
            people.append(_within(_in_frame(private_boxes(d, c, config, plate_bands), context), region))
    face_boxes = empty
    if faces is not None:
        face_boxes = _within(_in_frame(faces(around, config.face_confidence), context), region)
    return np.concatenate(people or [empty]), face_boxes


def redact(
    image: np.ndarray,
    region: Box,
    found: Found,
    config: SnapshotConfig,
    faces: FaceDetector | None,
    detect: Detect | None = None,
) -> tuple[np.ndarray | None, np.ndarray]:
    """The region cut from ``image`` with everything ``private_in`` names blurred, then checked:
    the detectors look at the JPEG that would be sent and what they still find is blurred,
    ``check_passes`` times at most. Returns the image (None if they still find someone: it is not
    sent) and every box blurred, crop-normalized."""
    crop = crop_of(image, region)
    people, face_boxes = private_in(image, region, found, config, faces, detect)
    out, blurred = crop, [people, face_boxes]
    whole = (0.0, 0.0, 1.0, 1.0)
    for _ in range(config.check_passes + 1):
        if not len(people) and not len(face_boxes) and out is not crop:
            return out, np.concatenate(blurred)
        # Faces were looked for on the pixels before this pass blurred the people around them.
        out = blur_regions(blur_regions(out, people, PERSON_BLOCKS), face_boxes, FACE_BLOCKS)
        if faces is None and detect is None:
            return out, np.concatenate(blurred)
        # What leaves is the JPEG, scaled and compressed: that is what the detectors must not see
        # anyone in (encoding is deterministic, so the bytes sent are the bytes checked).
        jpeg = encode_within(out, config)
        if jpeg is None:  # too large to send whatever it shows: the caller's encoding refuses it too
            return out, np.concatenate(blurred)
        sent = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if sent is None:
            raise RuntimeError("a snapshot's own JPEG does not decode")
        # A vehicle is still a vehicle once its plate band is blurred: only people and faces count.
        people, face_boxes = private_in(sent, whole, [], config, faces, detect, plate_bands=False)
        blurred += [people, face_boxes]
    return (None if len(people) or len(face_boxes) else out), np.concatenate(blurred)


def render(
    image: np.ndarray,
    region: Box,
    found: Found,
    config: SnapshotConfig,
    faces: FaceDetector | None,
    detect: Detect | None = None,
) -> np.ndarray | None:
    """The snapshot's pixels (see ``redact``), None if it must not be sent."""
    return redact(image, region, found, config, faces, detect)[0]


def encode_within(image: np.ndarray, config: SnapshotConfig) -> bytes | None:
    """JPEG within max_width, max_height and max_bytes: lower quality first, then fewer pixels."""
    h, w = image.shape[:2]
    scale = min(1.0, config.max_width / w, config.max_height / h)
    quality = config.jpeg_quality
    while True:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        out = image if scale == 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding of a snapshot failed")
        if data.size <= config.max_bytes:
            return data.tobytes()
        if quality > MIN_QUALITY:
            quality = max(MIN_QUALITY, quality - 15)
        elif min(size) > 64:
            scale *= 0.75
        else:
            return None


@dataclass(frozen=True, slots=True)
class Snapshot:
    jpeg: bytes
    region: Box  # normalized, in the frame
    full: bool

    @property
    def wire(self) -> dict[str, Any]:
        """The event's extra wire keys for this snapshot."""
        out: dict[str, Any] = {REGION_KEY: [round(v * BOX_SCALE) for v in self.region]}
        if self.full:
            out[FULL_KEY] = True
        return out


@dataclass
class SnapshotCounts:
    taken: int = 0
    rate_limited: int = 0
    too_large: int = 0
    not_clean: int = 0  # the detectors still found someone after every blur pass


@dataclass
class SnapshotTaker:
    """One camera's snapshots: region, blur, then the size and rate limits and local retention."""

    camera: str
    config: SnapshotConfig
    faces: FaceDetector
    detect: Detect | None = None  # the camera's detectors, run again on the cut
    counts: SnapshotCounts = field(default_factory=SnapshotCounts)
    # seals kept snapshots at rest (the outbox's key); None: kept as plain JPEG files of mode 600
    seal: Callable[[str, bytes], bytes] | None = None
    _recent: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.config.region == "full":
            log.warning("camera %s: snapshots show the whole frame (snapshots.region = 'full')", self.camera)

    def take(self, image: np.ndarray, box: Box, found: Found, t: float, name: str = "") -> Snapshot | None:
        """A snapshot of the issue at ``box`` in a frame of time ``t`` (s), or None over a limit."""
        while self._recent and t - self._recent[0] >= 60.0:
            self._recent.popleft()
        if len(self._recent) >= self.config.max_per_minute:
            self.counts.rate_limited += 1
            return None
        region = issue_region(box, self.config)
        full = region == (0.0, 0.0, 1.0, 1.0)
        if full:
            log.warning("camera %s: full-frame snapshot %s leaves the device", self.camera, name)
        clean = render(image, region, found, self.config, self.faces, self.detect)
        if clean is None:
            self.counts.not_clean += 1
            log.warning(
                "camera %s: snapshot %s still shows someone after blurring: not sent", self.camera, name
            )
            return None
        jpeg = encode_within(clean, self.config)
        if jpeg is None:
            self.counts.too_large += 1
            log.warning(
                "camera %s: snapshot %s over %d bytes even small: not sent",
                self.camera,
                name,
                self.config.max_bytes,
            )
            return None
        self._recent.append(t)
        self.counts.taken += 1
        if self.config.keep_dir is not None and name:
            self._keep(jpeg, name)
        return Snapshot(jpeg, region, full)

    def _keep(self, jpeg: bytes, name: str) -> None:
        # Only what was sent is kept, never the raw frame; files older than keep_days go first.
        folder = Path(self.config.keep_dir or ".") / self.camera
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            cutoff = time.time() - self.config.keep_days * 86400.0
            for old in [*folder.glob("*.jpg"), *folder.glob("*.jpg.sealed")]:
                if old.stat().st_mtime < cutoff:
                    old.unlink(missing_ok=True)
            target = folder / (f"{name}.jpg.sealed" if self.seal is not None else f"{name}.jpg")
            data = self.seal(target.name, jpeg) if self.seal is not None else jpeg
            tmp = folder / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except OSError as exc:
            log.warning("camera %s: cannot keep snapshot %s in %s: %s", self.camera, name, folder, exc)
