"""Annotated frames for technicians: boxes, track ids, zones and counts (``edgectl vision preview``)."""

from __future__ import annotations

import cv2
import numpy as np

from .crowd import CrowdReading
from .detections import Detections
from .zones import Zone

_PALETTE = [
    (56, 56, 255),
    (151, 157, 255),
    (31, 112, 255),
    (29, 178, 255),
    (49, 210, 207),
    (10, 249, 72),
    (23, 204, 146),
    (134, 219, 61),
    (52, 147, 26),
    (187, 212, 0),
    (168, 153, 44),
    (255, 194, 0),
    (147, 69, 52),
    (255, 115, 100),
    (236, 24, 0),
    (255, 56, 132),
    (133, 0, 82),
    (255, 56, 203),
]


def colour(class_id: int) -> tuple[int, int, int]:
    return _PALETTE[class_id % len(_PALETTE)]


def draw_zones(image: np.ndarray, zones: list[Zone], readings: dict[str, CrowdReading] | None = None) -> None:
    h, w = image.shape[:2]
    for zone in zones:
        pts = np.round(zone.polygon * [w, h]).astype(np.int32)
        overlay = image.copy()
        cv2.fillPoly(overlay, [pts], (255, 200, 0))
        cv2.addWeighted(overlay, 0.15, image, 0.85, 0, dst=image)
        cv2.polylines(image, [pts], True, (255, 200, 0), 2)
        text = zone.id
        reading = (readings or {}).get(zone.id)
        if reading is not None:
            text += f"  people {reading.count:.1f}"
            if reading.density is not None:
                text += f" ({reading.density:.2f}/m2)"
        x, y = pts[:, 0].min(), pts[:, 1].min()
        _label(image, text, int(x) + 2, int(y) + 18, (255, 200, 0))


def draw_detections(image: np.ndarray, dets: Detections, classes: list[str]) -> None:
    h, w = image.shape[:2]
    for i in range(len(dets)):
        x1, y1, x2, y2 = (dets.xyxy[i] * [w, h, w, h]).round().astype(int)
        cid = int(dets.class_id[i])
        col = colour(cid)
        cv2.rectangle(image, (x1, y1), (x2, y2), col, 2)
        name = classes[cid] if cid < len(classes) else str(cid)
        tid = int(dets.tracker_id[i])
        text = f"{name} {dets.confidence[i]:.2f}" + (f" #{tid}" if tid >= 0 else "")
        _label(image, text, x1, max(12, y1 - 4), col)


def draw_counts(image: np.ndarray, lines: list[str]) -> None:
    for k, line in enumerate(lines):
        _label(image, line, 8, 22 + 20 * k, (255, 255, 255))


def _label(image: np.ndarray, text: str, x: int, y: int, col: tuple[int, int, int]) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    cv2.rectangle(image, (x, y - th - base), (x + tw + 2, y + base), col, -1)
    cv2.putText(image, text, (x + 1, y - 1), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
