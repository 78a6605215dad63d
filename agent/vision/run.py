"""`edge-agent run --source X --model DIR --print`: one source through the models, events on stdout."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config import ConfigError, VisionConfig
from ..config.camera import CameraConfig
from ..sink import PrintSink
from .part import Vision, run_offline
from .sources import SourceError, source_kind

log = logging.getLogger(__name__)


def camera_from_args(source: str, models: list[Path], zones_file: Path | None, fps: float) -> CameraConfig:
    extra: dict[str, Any] = {}
    if zones_file is not None:
        try:
            extra = tomllib.loads(zones_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(str(zones_file), [("(file)", f"cannot be read as TOML: {exc}")]) from None
    extra.setdefault("fps", fps)
    try:
        return CameraConfig(id="run", source=source, models=models, **extra)
    except ValidationError as exc:
        problems = [
            (".".join(str(p) for p in e["loc"]) or "(top level)", e["msg"].removeprefix("Value error, "))
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise ConfigError(str(zones_file or "arguments"), problems) from None


def run_source(source: str, models: list[Path], zones_file: Path | None, fps: float, device: str) -> int:
    try:
        camera = camera_from_args(source, models, zones_file, fps)
        kind = source_kind(source)
    except (ConfigError, SourceError) as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 2
    vision = Vision([camera], VisionConfig())
    vision.load()
    cam = vision.cameras[0]
    if cam.pipeline is None:
        print(f"edge-agent: {cam.disabled}", file=sys.stderr)
        return 6
    sink = PrintSink(device)
    try:
        if kind in ("file", "folder"):
            frames = asyncio.run(run_offline(cam.pipeline, sink))
            stats = cam.pipeline.stats
            print(
                f"edge-agent: {frames} frames, {stats.inferred} inferred, {stats.events} events",
                file=sys.stderr,
            )
        else:
            stopping = asyncio.Event()
            asyncio.run(vision.supervise(cam, sink, stopping))
    except SourceError as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        cam.executor.shutdown(wait=False, cancel_futures=True)
    return 0
