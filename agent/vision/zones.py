"""Polygon zones in normalized image coordinates, and which detections stand in them."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..config.camera import MaskConfig, ZoneConfig
from .detections import Detections

WHOLE_FRAME = ZoneConfig(id="frame", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)])


@dataclass
class Zone:
    config: ZoneConfig
    polygon: np.ndarray = field(init=False)  # (k, 2) float32, normalized
    _masks: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.polygon = np.asarray(self.config.polygon, np.float32)

    @property
    def id(self) -> str:
        return self.config.id

    def watches(self, label: str) -> bool:
        return not self.config.classes or label in self.config.classes

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean per normalized point (n, 2): inside or on the border of the polygon."""
        if len(points) == 0:
            return np.zeros(0, bool)
        # pointPolygonTest works on any scale; 10k keeps border decisions exact to the wire's precision.
        contour = (self.polygon * 10_000).reshape(-1, 1, 2)
        return np.asarray(
            [
                cv2.pointPolygonTest(contour, (float(x) * 10_000, float(y) * 10_000), False) >= 0
                for x, y in points
            ],
            bool,
        )

    def mask(self, height: int, width: int) -> np.ndarray:
        """The zone rasterized at a density map's resolution (cached per size)."""
        key = (height, width)
        if key not in self._masks:
            canvas = np.zeros((height, width), np.uint8)
            pts = np.round(self.polygon * [width, height]).astype(np.int32)
            cv2.fillPoly(canvas, [pts], 1)
            self._masks[key] = canvas.astype(bool)
        return self._masks[key]


def make_zones(configs: list[ZoneConfig]) -> list[Zone]:
    """The camera's zones; a camera without zones watches the whole frame as one zone."""
    return [Zone(c) for c in (configs or [WHOLE_FRAME])]


def membership(zones: list[Zone], dets: Detections) -> np.ndarray:
    """(n_detections, n_zones) booleans: which zone each object's ground point stands in."""
    points = dets.bottom_centers() if len(dets) else np.zeros((0, 2), np.float32)
    if not zones:
        return np.zeros((len(dets), 0), bool)
    return np.stack([z.contains(points) for z in zones], axis=1)


@dataclass
class Masks:
    """A camera's masks: which detections to drop before tracking, per detector's class list."""

    areas: list[tuple[Zone, frozenset[str]]]

    @classmethod
    def of(cls, configs: list[MaskConfig]) -> Masks:
        return cls([(Zone(ZoneConfig(id=m.id, polygon=m.polygon)), frozenset(m.classes)) for m in configs])

    def apply(self, dets: Detections, classes: list[str]) -> Detections:
        """``dets`` without the detections whose class is masked where their ground point stands."""
        if not self.areas or not len(dets):
            return dets
        points = dets.bottom_centers()
        drop = np.zeros(len(dets), bool)
        for zone, masked in self.areas:
            hit = zone.contains(points)
            if masked:
                hit &= np.isin(dets.class_id, [i for i, label in enumerate(classes) if label in masked])
            drop |= hit
        return dets if not drop.any() else dets[np.flatnonzero(~drop)]
