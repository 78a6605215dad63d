"""One configured camera as the vision part runs it: its pipeline, its source, its health.

Its own module so that the part (which runs cameras) and model updates (which swap their
pipelines) both build on it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from ..config.camera import CameraConfig
from .frames import Frame
from .pipeline import CameraPipeline, FrameResult
from .sources import LiveSource


@dataclass
class Camera:
    """One configured camera: its pipeline once its models loaded, or why it is disabled."""

    config: CameraConfig
    pipeline: CameraPipeline | None = None
    disabled: str = ""
    source: LiveSource | None = None
    restarts: int = 0
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1))
    # The commissioning page's live view (agent/web): while viewers > 0, each frame and its result
    # go to ``show``; with none, the camera does nothing extra.
    viewers: int = 0
    show: Callable[[Frame, FrameResult], None] | None = None

    def health(self) -> dict[str, Any]:
        if self.pipeline is None:
            return {"state": "disabled", "reason": self.disabled}
        out: dict[str, Any] = {"state": "running", **self.pipeline.stats.as_dict()}
        out["motion_skipped"] = self.pipeline.motion.skipped
        if self.pipeline.snapshots is not None:
            out["snapshots"] = asdict(self.pipeline.snapshots.counts)
        out["restarts"] = self.restarts
        if self.source is not None:
            out.update(self.source.counters.as_dict())
        return out
