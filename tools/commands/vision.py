"""`edgectl vision preview`: run a camera's source through its models and rules, write what it sees.

Technicians use it to check a camera's aim and zones: boxes, track ids, zones and counts are drawn
on the frames, and the events the rules would send are written on the frame that made them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import MODEL, USAGE, EdgectlError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG"}


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("vision", help="check cameras: aim, zones and what the models see")
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    preview = cmds.add_parser(
        "preview",
        help="draw boxes, track ids, zones and counts on a source's frames",
        description="Runs a source through a camera's models, tracker and rules and writes the annotated "
        "frames: a video (.mp4, .avi) or the last frame as an image (.png, .jpg).",
    )
    preview.add_argument("--source", help="video file, image folder, stream URL or usb:N (default: camera's)")
    preview.add_argument(
        "--config", type=Path, help="gateway config: takes the camera's models, zones and rules"
    )
    preview.add_argument("--camera", help="camera id in --config (default: the first camera)")
    preview.add_argument(
        "--model", action="append", type=Path, help="model folder or .onnx export, without --config"
    )
    preview.add_argument("--zones", type=Path, help="TOML with [[zones]] and camera keys, without --config")
    preview.add_argument("--out", type=Path, required=True, help="annotated.mp4, .avi, .png or .jpg")
    preview.add_argument("--fps", type=float, help="frames sampled per second (default: the camera's)")
    preview.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: whole file)")
    preview.add_argument(
        "--seconds",
        type=float,
        help="how much to watch: a live stream's wall time (default 10 s), a file's media time (default all)",
    )
    preview.set_defaults(func=cmd_preview)


def _camera(args: argparse.Namespace):  # -> CameraConfig, VisionConfig
    from agent.config import ConfigError, VisionConfig, load_config
    from agent.vision.run import camera_from_args

    try:
        if args.config is not None:
            config = load_config(args.config)
            cams = [c for c in config.cameras if args.camera in (None, c.id)]
            if not cams:
                known = ", ".join(c.id for c in config.cameras) or "none"
                raise EdgectlError(f"{args.config}: no camera {args.camera or ''} (cameras: {known})", USAGE)
            camera = cams[0]
            update = {}
            if args.source:
                update["source"] = args.source
            if args.fps:
                update["fps"] = args.fps
            return camera.model_copy(update=update), config.vision
        if not args.source or not args.model:
            raise EdgectlError("give --config, or --source and at least one --model", USAGE)
        return camera_from_args(args.source, args.model, args.zones, args.fps or 2.0), VisionConfig()
    except ConfigError as exc:
        raise EdgectlError(str(exc), USAGE) from None


def _frames(camera: Any, kind: str, seconds: float | None) -> Iterator[Any]:
    """A file's frames up to ``seconds`` of media time, or a live source's for ``seconds`` (10 s)."""
    from agent.vision.sources import LiveSource, offline_frames

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


def _open_video(out: Path, fps: float, first: Any) -> Any:
    """An OpenCV writer sized to the first annotated frame; EdgectlError if this format cannot be written."""
    import cv2

    h, w = first.shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[out.suffix.lower()])
    writer = cv2.VideoWriter(str(out), fourcc, fps, (w, h))
    if not writer.isOpened():
        raise EdgectlError(f"{out}: OpenCV cannot write this video format here", USAGE)
    return writer


def _progress(count: int, events: int, t: float) -> None:
    print(f"\r  {count} frames, {events} events, at {t:.1f} s", end="", file=sys.stderr, flush=True)


def cmd_preview(args: argparse.Namespace) -> int:
    import cv2

    from agent.vision.draw import annotate, draw_lines
    from agent.vision.part import Vision
    from agent.vision.sources import SourceError, source_kind

    suffix = args.out.suffix.lower()
    if suffix not in IMAGE_SUFFIXES and suffix not in VIDEO_SUFFIXES:
        raise EdgectlError(f"{args.out}: write .mp4, .avi, .png or .jpg", USAGE)
    camera, vision_config = _camera(args)
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
    show_progress, shown = sys.stderr.isatty(), 0.0  # a technician at a terminal sees it advance
    try:
        for frame in _frames(camera, kind, args.seconds):
            result = pipeline.process(frame)
            events += len(result.events)
            last = annotate(frame.image, pipeline.zones, result)
            draw_lines(last, pipeline.config.lines, pipeline.rules.line_totals)
            count += 1
            if show_progress and time.monotonic() - shown >= 0.5:
                shown = time.monotonic()
                _progress(count, events, frame.t)
            if suffix in VIDEO_SUFFIXES:
                if writer is None:
                    writer = _open_video(args.out, camera.fps, last)
                writer.write(last)
            if args.frames and count >= args.frames:
                break
    except SourceError as exc:
        raise EdgectlError(str(exc), USAGE) from None
    finally:
        if writer is not None:
            writer.release()
        cam.executor.shutdown(wait=False)
    if show_progress:
        print(file=sys.stderr)
    if last is None:
        raise EdgectlError(f"{camera.source}: no frame could be read", USAGE)
    if suffix in IMAGE_SUFFIXES and not cv2.imwrite(str(args.out), last):
        raise EdgectlError(f"{args.out}: cannot write the image", USAGE)
    print(f"wrote {args.out}: {count} frame(s), {events} event(s), {len(pipeline.zones)} zone(s)")
    return 0
