"""A camera's annotated view: its source run through its models, tracker and rules, written out.

`edgectl vision preview` (tools/commands/vision.py) and the demo's annotated clips (tools/demo.py)
both call ``write_preview``. This module loads OpenCV and the agent's vision stack at import, so the
command modules import it only when a preview is asked for.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from agent.config import CameraConfig, VisionConfig
from agent.vision.draw import annotate, draw_lines
from agent.vision.frames import Frame
from agent.vision.part import Vision
from agent.vision.sources import LiveSource, SourceError, offline_frames, source_kind

from .errors import MODEL, USAGE, EdgectlError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG"}

Progress = Callable[[int, int, float], None]  # frames so far, events so far, media time


@dataclass(frozen=True)
class PreviewResult:
    out: Path
    frames: int
    events: int
    zones: int


def check_out(out: Path) -> None:
    """EdgectlError unless ``out`` names a format the preview writes."""
    suffix = out.suffix.lower()
    if suffix not in IMAGE_SUFFIXES and suffix not in VIDEO_SUFFIXES:
        raise EdgectlError(f"{out}: write .mp4, .avi, .png or .jpg", USAGE)


def terminal_progress() -> Progress | None:
    """A line on stderr that advances, for a technician at a terminal; None when stderr is not one."""
    if not sys.stderr.isatty():
        return None

    def show(count: int, events: int, t: float) -> None:
        print(f"\r  {count} frames, {events} events, at {t:.1f} s", end="", file=sys.stderr, flush=True)

    return show


def _frames(camera: CameraConfig, kind: str, seconds: float | None) -> Iterator[Frame]:
    """A file's frames up to ``seconds`` of media time, or a live source's for ``seconds`` (10 s)."""
    if kind in ("file", "folder"):
        for frame in offline_frames(camera.source, camera.fps):
            if seconds is not None and frame.t > seconds:
                return
            yield frame
        return
    with LiveSource(camera.source_url(), camera.fps, name=camera.id) as live:
        deadline = time.monotonic() + (seconds if seconds is not None else 10.0)
        while time.monotonic() < deadline:
            frame = live.latest(timeout=1.0)
            if frame is not None:
                yield frame


def _open_video(out: Path, fps: float, first: np.ndarray) -> cv2.VideoWriter:
    """An OpenCV writer sized to the first annotated frame; EdgectlError if this format cannot be written."""
    h, w = first.shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[out.suffix.lower()])
    writer = cv2.VideoWriter(str(out), fourcc, fps, (w, h))
    if not writer.isOpened():
        raise EdgectlError(f"{out}: OpenCV cannot write this video format here", USAGE)
    return writer


def write_preview(
    camera: CameraConfig,
    vision_config: VisionConfig,
    out: Path,
    *,
    seconds: float | None = None,
    frames: int = 0,
    progress: Progress | None = None,
) -> PreviewResult:
    """Annotate ``camera``'s frames into ``out`` (a video, or the last frame as an image): at most
    ``frames`` frames (0: all) and ``seconds`` of them; EdgectlError when nothing could be written."""
    check_out(out)
    suffix = out.suffix.lower()
    try:
        kind = source_kind(camera.source)
    except SourceError as exc:
        raise EdgectlError(str(exc), USAGE) from None
    vision = Vision([camera], vision_config)
    vision.load()
    cam = vision.cameras[0]
    if cam.pipeline is None:
        raise EdgectlError(f"camera {camera.id}: {cam.disabled}", MODEL)
    pipeline = cam.pipeline

    writer = None
    last = None
    count = events = 0
    shown = 0.0
    try:
        for frame in _frames(camera, kind, seconds):
            result = pipeline.process(frame)
            events += len(result.events)
            last = annotate(frame.image, pipeline.zones, result, pipeline.masks)
            draw_lines(last, pipeline.config.lines, pipeline.rules.line_totals)
            count += 1
            if progress is not None and time.monotonic() - shown >= 0.5:
                shown = time.monotonic()
                progress(count, events, frame.t)
            if suffix in VIDEO_SUFFIXES:
                if writer is None:
                    writer = _open_video(out, camera.fps, last)
                writer.write(last)
            if frames and count >= frames:
                break
    except SourceError as exc:
        raise EdgectlError(str(exc), USAGE) from None
    finally:
        if writer is not None:
            writer.release()
        cam.executor.shutdown(wait=False)
    if progress is not None:
        print(file=sys.stderr)
    if last is None:
        raise EdgectlError(f"{camera.source}: no frame could be read", USAGE)
    if suffix in IMAGE_SUFFIXES and not cv2.imwrite(str(out), last):
        raise EdgectlError(f"{out}: cannot write the image", USAGE)
    return PreviewResult(out, count, events, len(pipeline.zones))
