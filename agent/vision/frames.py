"""What a frame is: its pixels and its clocks, as sources give it and rules read it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    image: np.ndarray  # BGR
    seq: int  # frames read from the source so far
    t: float  # rules clock, seconds: monotonic for live sources, media time for offline ones
    captured_ms: int  # UTC capture time, ms


@dataclass(frozen=True)
class FrameInfo:
    """When a frame was captured: ``now`` drives the rules, ``captured_ms`` goes on the events."""

    now: float
    captured_ms: int
    clock_synced: bool
