"""`Detections`: the one currency between adapters, tracker, zones and rules."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Detections:
    """Objects found in one frame, as parallel arrays.

    ``xyxy`` is normalized to the original image (0..1), so zones and events never care about the
    model's input size. ``tracker_id`` is -1 until the tracker assigns ids.
    """

    xyxy: np.ndarray  # (n, 4) float32
    confidence: np.ndarray  # (n,) float32
    class_id: np.ndarray  # (n,) int32
    tracker_id: np.ndarray = field(default=None)  # type: ignore[arg-type]  # (n,) int64, -1 untracked

    def __post_init__(self) -> None:
        if self.tracker_id is None:  # the default above
            untracked = np.full(len(self.confidence), -1, dtype=np.int64)  # type: ignore[unreachable]
            object.__setattr__(self, "tracker_id", untracked)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int32),
            np.zeros(0, np.int64),
        )

    @classmethod
    def of(
        cls, boxes: list[tuple[float, float, float, float]], scores: list[float], classes: list[int]
    ) -> Detections:
        """Build from plain lists (scripted sequences in tests and tools)."""
        if not boxes:
            return cls.empty()
        return cls(
            np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(scores, np.float32),
            np.asarray(classes, np.int32),
        )

    def __len__(self) -> int:
        return len(self.confidence)

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> Detections:
        return Detections(
            self.xyxy[index], self.confidence[index], self.class_id[index], self.tracker_id[index]
        )

    def with_tracker_ids(self, ids: np.ndarray) -> Detections:
        return Detections(self.xyxy, self.confidence, self.class_id, ids.astype(np.int64))

    def bottom_centers(self) -> np.ndarray:
        """Where each object touches the ground: the anchor tested against zones."""
        return np.stack(((self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, self.xyxy[:, 3]), axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boxes ``a`` (n, 4) and ``b`` (m, 4), xyxy."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


@dataclass(frozen=True, slots=True)
class DensityMap:
    """Output of a crowd-density model: a per-pixel person density over the original image."""

    density: np.ndarray  # (h, w) float32 over the whole original image; sums to the person count

    @property
    def count(self) -> float:
        return float(self.density.sum())

    def count_in(self, mask: np.ndarray) -> float:
        """Count inside a boolean mask of the same shape as the map."""
        return float(self.density[mask].sum())
