"""Motion gating: a frame that barely differs from the last one inferred is not inferred again, so an
idle street costs little CPU; one frame every ``max_skip_s`` is inferred all the same."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class MotionGate:
    """Skips frames that barely differ from the last one inferred (mean abs diff of grey thumbnails)."""

    threshold: float = 1.5
    width: int = 64
    max_skip_s: float = 30.0
    enabled: bool = True
    skipped: int = 0
    _last: np.ndarray | None = field(default=None, repr=False)
    _last_t: float = 0.0

    def should_infer(self, image: np.ndarray, t: float) -> bool:
        if not self.enabled:
            return True
        h, w = image.shape[:2]
        thumb = cv2.resize(
            image, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_AREA
        )
        if thumb.ndim == 3:
            thumb = cv2.cvtColor(thumb, cv2.COLOR_BGR2GRAY)
        if (
            self._last is None
            or self._last.shape != thumb.shape
            or t - self._last_t >= self.max_skip_s
            or float(cv2.absdiff(thumb, self._last).mean()) > self.threshold
        ):
            self._last, self._last_t = thumb, t
            return True
        self.skipped += 1
        return False
