"""Snapshots that may leave the device: people, faces and licence plates blurred first."""

from __future__ import annotations

import cv2
import numpy as np

from ..config.camera import SnapshotConfig
from .detections import Detections

PLATE_LABELS = {"licence_plate", "license_plate", "plate"}
PLATE_BAND = 0.4  # lower part of a vehicle box where its plate is, when the model finds no plates


def blur_regions(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """A copy of ``image`` with each normalized box pixelated beyond recognition, then blurred."""
    out = image.copy()
    h, w = out.shape[:2]
    for x1, y1, x2, y2 in boxes:
        a, b = max(0, int(x1 * w)), max(0, int(y1 * h))
        c, d = min(w, int(np.ceil(x2 * w))), min(h, int(np.ceil(y2 * h)))
        if c - a < 2 or d - b < 2:
            continue
        # Pixelate to at most 8 blocks across, then blur the blocks: a Gaussian blur alone can be
        # partly inverted, 8 averaged blocks cannot give back a face or a plate.
        small = cv2.resize(out[b:d, a:c], (min(8, c - a), min(8, d - b)), interpolation=cv2.INTER_AREA)
        blocks = cv2.resize(small, (c - a, d - b), interpolation=cv2.INTER_NEAREST)
        out[b:d, a:c] = cv2.GaussianBlur(blocks, (0, 0), max(1.0, (c - a) / 16))
    return out


def private_boxes(dets: Detections, classes: list[str], config: SnapshotConfig) -> np.ndarray:
    blur = set(config.blur_labels)
    boxes = [dets.xyxy[i] for i in range(len(dets)) if classes[int(dets.class_id[i])] in blur]
    if config.blur_plate_region and not PLATE_LABELS & set(classes):
        vehicles = set(config.vehicle_labels)
        for i in range(len(dets)):
            if classes[int(dets.class_id[i])] in vehicles:
                x1, y1, x2, y2 = dets.xyxy[i]
                boxes.append(np.asarray([x1, y2 - (y2 - y1) * PLATE_BAND, x2, y2], np.float32))
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def snapshot(image: np.ndarray, found: list[tuple[Detections, list[str]]], config: SnapshotConfig) -> bytes:
    """The frame as JPEG, downscaled to ``max_width``, with every private region blurred."""
    boxes = np.concatenate([private_boxes(d, c, config) for d, c in found] or [np.zeros((0, 4), np.float32)])
    out = blur_regions(image, boxes)
    h, w = out.shape[:2]
    if w > config.max_width:
        out = cv2.resize(
            out, (config.max_width, round(h * config.max_width / w)), interpolation=cv2.INTER_AREA
        )
    ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
    if not ok:
        raise RuntimeError("JPEG encoding of a snapshot failed")
    return data.tobytes()
