"""Fixtures for the vision tests: real ONNX files built with onnx.helper, real video files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from synthetic_models import constant_model, write_manifest

ModelFactory = Callable[..., Path]


@pytest.fixture
def make_model(tmp_path: Path) -> ModelFactory:
    """A model folder whose ONNX file always outputs ``output``; manifest fields from kwargs."""
    counter = iter(range(1000))

    def make(output: np.ndarray, width: int = 64, height: int = 64, **fields: Any) -> Path:
        folder = tmp_path / f"model{next(counter)}"
        constant_model(folder / "model.onnx", output, width, height)
        fields.setdefault("input", {"width": width, "height": height})
        write_manifest(folder, "model.onnx", **fields)
        return folder

    return make


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def moving_square_frames(n: int, w: int = 160, h: int = 120) -> list[np.ndarray]:
    """Frames of a white square crossing a grey street: every frame differs from the last."""
    frames = []
    for i in range(n):
        img = np.full((h, w, 3), 90, np.uint8)
        x = 5 + (i * 7) % (w - 30)
        cv2.rectangle(img, (x, 40), (x + 20, 60), (255, 255, 255), -1)
        cv2.putText(img, str(i), (5, h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        frames.append(img)
    return frames
