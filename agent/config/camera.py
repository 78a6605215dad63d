"""Cameras, their models and their zones."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from .base import Section
from .device import DEVICE_ID_PATTERN


class ZoneConfig(Section):
    id: str = Field(pattern=DEVICE_ID_PATTERN)
    polygon: list[tuple[float, float]] = Field(description="normalized [x, y] corners, 0..1")
    classes: list[str] = Field(default_factory=list, description="classes this zone watches; empty: all")
    area_m2: float | None = Field(default=None, gt=0, description="ground area, for crowd density")

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(points) < 3:
            raise ValueError("a zone polygon needs at least 3 corners")
        for x, y in points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"corner ({x}, {y}) is outside the image; use normalized 0..1 coordinates")
        return points


class CameraConfig(Section):
    id: str = Field(pattern=DEVICE_ID_PATTERN)
    source: str = Field(description="video file, image folder, rtsp:// or http:// URL, or usb:N")
    fps: float = Field(default=2.0, gt=0, le=60, description="frames sampled per second")
    models: list[Path] = Field(min_length=1, description="model folders (with manifest.json)")
    zones: list[ZoneConfig] = Field(default_factory=list)

    @field_validator("zones")
    @classmethod
    def _unique_zone_ids(cls, zones: list[ZoneConfig]) -> list[ZoneConfig]:
        ids = [z.id for z in zones]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"zone ids must be unique, repeated: {', '.join(dupes)}")
        return zones
