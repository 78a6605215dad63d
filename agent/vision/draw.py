"""Annotated frames for technicians: boxes, track ids, zones and counts (``edgectl vision preview``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..config.camera import LineConfig
from .crowd import CrowdReading
from .detections import Detections
from .zones import Masks, Zone

if TYPE_CHECKING:
    from .pipeline import FrameResult

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


LINE_COLOUR = (60, 220, 60)
MASK_COLOUR = (90, 90, 90)


def draw_masks(image: np.ndarray, masks: Masks) -> None:
    """Masked areas darkened and outlined, so a technician sees where nothing is believed."""
    h, w = image.shape[:2]
    for zone, classes in masks.areas:
        pts = np.round(zone.polygon * [w, h]).astype(np.int32)
        overlay = image.copy()
        cv2.fillPoly(overlay, [pts], MASK_COLOUR)
        cv2.addWeighted(overlay, 0.45, image, 0.55, 0, dst=image)
        cv2.polylines(image, [pts], True, MASK_COLOUR, 2)
        text = f"mask {zone.id}" + (f" ({', '.join(sorted(classes))})" if classes else "")
        _label(image, text, int(pts[:, 0].min()) + 2, int(pts[:, 1].min()) + 18, (170, 170, 170))


def draw_lines(image: np.ndarray, lines: list[LineConfig], totals: dict[str, tuple[int, int]]) -> None:
    """Counting lines with an arrow to their ``in`` side and the crossings counted so far."""
    h, w = image.shape[:2]
    for line in lines:
        (x1, y1), (x2, y2) = ((round(x * w), round(y * h)) for x, y in line.points)
        cv2.line(image, (x1, y1), (x2, y2), LINE_COLOUR, 2)
        # "in" goes to the right of first -> second; in image coordinates (y down) that is (-dy, dx)
        dx, dy = x2 - x1, y2 - y1
        norm = max(1.0, float(np.hypot(dx, dy)))
        mx, my = (x1 + x2) // 2, (y1 + y2) // 2
        tip = (round(mx - dy / norm * 24), round(my + dx / norm * 24))
        cv2.arrowedLine(image, (mx, my), tip, LINE_COLOUR, 2, tipLength=0.35)
        got_in, got_out = totals.get(line.id, (0, 0))
        _label(image, f"{line.id}  in {got_in}  out {got_out}", min(x1, x2) + 2, min(y1, y2) - 6, LINE_COLOUR)


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
    size = min(0.8, max(0.3, image.shape[1] / 1600))  # legible on a 4K frame and a thumbnail alike
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, 1)
    cv2.rectangle(image, (x, y - th - base), (x + tw + 2, y + base), col, -1)
    cv2.putText(image, text, (x + 1, y - 1), cv2.FONT_HERSHEY_SIMPLEX, size, (0, 0, 0), 1, cv2.LINE_AA)


def annotate(
    image: np.ndarray, zones: list[Zone], result: FrameResult, masks: Masks | None = None
) -> np.ndarray:
    """A copy of the frame with masks, zones, tracked objects, per-class counts and this frame's events."""
    out = image.copy()
    if masks is not None:
        draw_masks(out, masks)
    draw_zones(out, zones, result.crowd)
    lines = []
    for dets, classes in result.found:
        draw_detections(out, dets, classes)
        ids, counts = np.unique(dets.class_id, return_counts=True)
        lines += [f"{classes[int(i)]}: {int(n)}" for i, n in zip(ids, counts, strict=True)]
    if result.density is not None:
        lines.append(f"crowd (density map): {result.density.count:.1f}")
    lines += [
        f"EVENT {e.kind} {e.phase or ''} {e.label or ''} {e.zone or ''}".rstrip() for e in result.events
    ]
    draw_counts(out, lines)
    return out
