"""A drawing surface that remembers which object painted each pixel.

Objects are drawn far to near; the instance map tells how much of each object is still visible after
nearer ones are drawn over it, so heavily occluded objects are left unlabelled instead of teaching the
detector to find things it cannot see.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

_SHIFT = 4  # sub-pixel bits for OpenCV drawing calls
_ONE = 1 << _SHIFT

Point = tuple[float, float]
Color = tuple[float, float, float]


def _fix(points: Sequence[Point]) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32)


class Canvas:
    """A BGR image plus an instance-id map and an emissive layer (lights that survive darkening)."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.height, self.width = image.shape[:2]
        self.ids = np.zeros((self.height, self.width), dtype=np.int32)
        self.glow = np.zeros((self.height, self.width, 3), dtype=np.float32)
        self.current = 0
        self._extent: list[float] | None = None

    # -- object bookkeeping -------------------------------------------------------------------------
    def begin(self, instance: int) -> None:
        self.current = instance
        self._extent = None

    def end(self) -> tuple[tuple[float, float, float, float] | None, int]:
        """The finished object's full extent (x1, y1, x2, y2) and the pixels it owns right now."""
        extent = self._extent
        owned = int(np.count_nonzero(self.ids == self.current)) if self.current else 0
        self.current = 0
        self._extent = None
        if extent is None:
            return None, owned
        return (extent[0], extent[1], extent[2], extent[3]), owned

    def _grow(self, pts: np.ndarray) -> None:
        if not self.current:
            return
        x1, y1 = pts.min(axis=0) / _ONE
        x2, y2 = pts.max(axis=0) / _ONE
        if self._extent is None:
            self._extent = [x1, y1, x2, y2]
        else:
            e = self._extent
            self._extent = [min(e[0], x1), min(e[1], y1), max(e[2], x2), max(e[3], y2)]

    # -- primitives ---------------------------------------------------------------------------------
    def poly(self, points: Sequence[Point], color: Color, *, label: bool = True) -> None:
        pts = _fix(points)
        cv2.fillPoly(self.image, [pts], color, cv2.LINE_AA, _SHIFT)
        if label and self.current:
            cv2.fillPoly(self.ids, [pts], self.current, cv2.LINE_8, _SHIFT)
            self._grow(pts)

    def rect(self, x1: float, y1: float, x2: float, y2: float, color: Color, *, label: bool = True) -> None:
        self.poly([(x1, y1), (x2, y1), (x2, y2), (x1, y2)], color, label=label)

    def ellipse(
        self, center: Point, axes: Point, color: Color, *, angle: float = 0.0, label: bool = True
    ) -> None:
        cx, cy = center
        ax, ay = max(axes[0], 0.5), max(axes[1], 0.5)
        pts = cv2.ellipse2Poly((0, 0), (1000, 1000), int(angle), 0, 360, 10).astype(np.float64) / 1000.0
        pts = np.stack([cx + pts[:, 0] * ax, cy + pts[:, 1] * ay], axis=1)
        self.poly([tuple(p) for p in pts], color, label=label)

    def line(self, p1: Point, p2: Point, color: Color, thickness: float, *, label: bool = True) -> None:
        pts = _fix([p1, p2])
        t = max(1, round(thickness))
        cv2.line(self.image, tuple(pts[0]), tuple(pts[1]), color, t, cv2.LINE_AA, _SHIFT)
        if label and self.current:
            cv2.line(self.ids, tuple(pts[0]), tuple(pts[1]), self.current, t, cv2.LINE_8, _SHIFT)
            pad = (t / 2) * _ONE
            self._grow(np.concatenate([pts - pad, pts + pad]).astype(np.int32))

    def ring(
        self, center: Point, radius: float, color: Color, thickness: float, *, label: bool = True
    ) -> None:
        c = _fix([center])[0]
        r = round(max(radius, 0.5) * _ONE)
        t = max(1, round(thickness))
        cv2.circle(self.image, tuple(c), r, color, t, cv2.LINE_AA, _SHIFT)
        if label and self.current:
            cv2.circle(self.ids, tuple(c), r, self.current, t, cv2.LINE_8, _SHIFT)
            pad = r + (t / 2) * _ONE
            self._grow(np.array([c - pad, c + pad], dtype=np.int32))

    def light(self, center: Point, radius: float, color: Color, strength: float) -> None:
        """Add a soft light source (street lamp, headlight) to the emissive layer."""
        r = max(radius, 1.0)
        x1, x2 = int(max(0, center[0] - 3 * r)), int(min(self.width, center[0] + 3 * r + 1))
        y1, y2 = int(max(0, center[1] - 3 * r)), int(min(self.height, center[1] + 3 * r + 1))
        if x1 >= x2 or y1 >= y2:
            return
        yy, xx = np.mgrid[y1:y2, x1:x2].astype(np.float32)
        falloff = np.exp(-((xx - center[0]) ** 2 + (yy - center[1]) ** 2) / (2 * r * r)) * strength
        self.glow[y1:y2, x1:x2] += falloff[..., None] * np.asarray(color, dtype=np.float32)
