"""`edgectl vision preview`: run a camera's source through its models and rules, write what it sees.

Technicians use it to check a camera's aim and zones: boxes, track ids, zones and counts are drawn
on the frames, and the events the rules would send are written on the frame that made them.
"""

# Lazy imports: agent.vision.run (197 ms) and tools.preview (203 ms: OpenCV and the vision stack) would
# add their time to every edgectl start-up (`edgectl --help`: 0.39 s), so the handlers import them.

from __future__ import annotations

import argparse
from pathlib import Path

from agent.config import CameraConfig, ConfigError, VisionConfig, load_config

from ..errors import USAGE, EdgectlError


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


def _camera(args: argparse.Namespace) -> tuple[CameraConfig, VisionConfig]:
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


def cmd_preview(args: argparse.Namespace) -> int:
    from ..preview import check_out, terminal_progress, write_preview

    check_out(args.out)
    camera, vision_config = _camera(args)
    done = write_preview(
        camera,
        vision_config,
        args.out,
        seconds=args.seconds,
        frames=args.frames,
        progress=terminal_progress(),
    )
    print(f"wrote {done.out}: {done.frames} frame(s), {done.events} event(s), {done.zones} zone(s)")
    return 0
