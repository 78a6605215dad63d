"""The frame rate a camera must keep on a newly installed model, or it goes back to the previous one.

A model can pass every check and still be too slow for its gateway (a bigger export, no INT8 kernels
on this CPU): the camera then drops most frames as stale. The rule is made so that a noisy machine
or a camera that delivers fewer frames does not roll a good model back:

- the rate is counted over a sliding window (``window_s``), never from one slow frame;
- the camera is slow when it processes fewer frames per second than ``ratio`` times what the
  previous model managed on it before the update, or fewer than ``floor``;
- and only while the pipeline is what holds it back: it took fewer than ``KEEP_UP`` of the frames
  its source delivered in the window (the rest were dropped as stale). A stream that stalls, or
  sends fewer frames, delivers fewer frames: that is the camera's doing, not the model's;
- and it must stay slow for a whole further window before the verdict.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from .pipeline import FPS_WINDOW_S, CameraStats

KEEP_UP = 0.8  # below this share of the delivered frames, the pipeline is the bottleneck


@dataclass(frozen=True)
class FrameRateRule:
    ratio: float = 0.5  # of the previous model's rate; 0: no comparison
    floor: float = 0.0  # frames per second; 0: none
    window_s: float = 30.0

    @property
    def active(self) -> bool:
        return self.ratio > 0 or self.floor > 0


@dataclass(frozen=True)
class SlowCamera:
    """The verdict: the figures over the last window, and the threshold they fell under."""

    fps: float  # frames processed per second on the new model
    delivered: float  # frames per second the source delivered meanwhile
    before: float | None  # the previous model's rate, when it was measured
    threshold: float
    slow_s: float  # how long it has been below the threshold


def rate_before(stats: CameraStats, window_s: float, now: float | None = None) -> float | None:
    """Frames per second a pipeline processed over its last ``window_s`` (at most health's window);
    None when it has not run that long, so a camera just started sets no baseline."""
    now = time.monotonic() if now is None else now
    window = min(window_s, FPS_WINDOW_S)
    if now - stats.started < window:
        return None
    return sum(1 for t, _ in list(stats.recent) if now - t <= window) / window


class FrameRateWatch:
    """Samples of a camera on its new model (processed and delivered frame counters) and the verdict."""

    def __init__(self, rule: FrameRateRule, before: float | None) -> None:
        self.rule = rule
        self.before = before
        self.threshold = max(rule.ratio * before if before else 0.0, rule.floor)
        self._samples: deque[tuple[float, int, int]] = deque()
        self._slow_since: float | None = None

    def restart(self) -> None:
        """Count from the next sample on: the counters are new (a new pipeline, a reopened source)."""
        self._samples.clear()
        self._slow_since = None

    def sample(self, now: float, processed: int, delivered: int) -> SlowCamera | None:
        """Add one sample; the verdict once the camera has been slow for a whole window."""
        if self._samples and (processed < self._samples[-1][1] or delivered < self._samples[-1][2]):
            self.restart()  # counters started again
        self._samples.append((now, processed, delivered))
        window = self.rule.window_s
        # Keep the newest sample at least a window old, so the rate spans a whole window.
        while len(self._samples) > 2 and now - self._samples[1][0] >= window:
            self._samples.popleft()
        t0, p0, d0 = self._samples[0]
        span = now - t0
        if self.threshold <= 0 or span < window:
            return None
        fps, fed = (processed - p0) / span, (delivered - d0) / span
        if not (fps < self.threshold and fps < KEEP_UP * fed):
            self._slow_since = None
            return None
        if self._slow_since is None:
            self._slow_since = now
        if now - self._slow_since < window:
            return None
        return SlowCamera(
            round(fps, 2), round(fed, 2), self.before, round(self.threshold, 2), now - self._slow_since
        )
