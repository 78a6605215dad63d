"""`edgectl model detect`: what a model sees in images, folders of images and videos, frame by frame.

Runs the agent's own engine (the manifest's preprocessing, adapter, thresholds and NMS), so what it
prints is what a camera with that model gets, before tracking and rules.
"""

# Lazy imports: agent.vision.engine (181 ms), .detections (102), .draw (144), .manifest (5.5) and OpenCV
# (127) would add their time to every edgectl start-up (`edgectl --help`: 0.39 s), so the steps import them.

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import MODEL, USAGE, EdgectlError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".ts"}


def register(cmds: argparse._SubParsersAction) -> None:
    p = cmds.add_parser(
        "detect",
        help="run a model on images, a folder or a video and print what it finds",
        description="Runs a model through the agent's engine on an image, every image and video of a "
        "folder (in name order) or every frame of a video, and prints each frame's detections (or the "
        "count, for a density model) at the manifest's per-class thresholds.",
    )
    p.add_argument(
        "--model", type=Path, required=True, help="model folder, or an .onnx file (in one, or a bare export)"
    )
    p.add_argument("--source", type=Path, required=True, help="image, folder or video file")
    p.add_argument("--json", action="store_true", help="one JSON line per image or frame")
    p.add_argument("--conf", type=float, help="one confidence threshold for every class (0..1)")
    p.add_argument("--every", type=int, default=1, help="videos: every Nth frame (default 1)")
    p.add_argument("--save", type=Path, help="write annotated images into this folder")
    p.set_defaults(func=cmd_detect)


def _load(model: Path, conf: float | None) -> Any:
    from agent.vision.engine import EngineOptions, ModelRefused, load_engine

    if model.is_file() and model.suffix.lower() != ".onnx":
        raise EdgectlError(f"{model}: give a model folder or an .onnx file", USAGE)
    variant = model.is_file() and model.name in _listed_files(model.parent / "manifest.json")
    try:
        # a folder, an .onnx its manifest names, or a bare export described from its own metadata
        engine = load_engine(model.parent if variant else model, EngineOptions(warmup_runs=1))
    except ModelRefused as exc:
        raise EdgectlError(str(exc), MODEL) from None
    if variant and model.name != engine.manifest.file:
        engine = _other_file(engine, model)
    manifest = engine.manifest
    if conf is not None:
        if not 0.0 <= conf <= 1.0:
            raise EdgectlError(f"--conf must be within 0..1, got {conf}", USAGE)
        t = manifest.thresholds.model_copy(update={"confidence": conf, "per_class": {}})
        manifest = manifest.model_copy(update={"thresholds": t})
    return engine, manifest


def _listed_files(manifest_path: Path) -> set[str]:
    """The other files (precisions) a folder's manifest lists besides its main one."""
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    files = data.get("files") if isinstance(data, dict) else None
    return set(files) if isinstance(files, dict) else set()


def _other_file(engine: Any, path: Path) -> Any:
    """The folder's other precision (e.g. the FP32 file), checked against the manifest's files."""
    from agent.vision.engine import EngineOptions, ModelEngine, ModelRefused, open_session
    from agent.vision.manifest import sha256_file

    want = engine.manifest.files.get(path.name)
    if want is None:
        raise EdgectlError(f"{path}: the folder's manifest does not list this file", MODEL)
    if sha256_file(path) != want:
        raise EdgectlError(f"{path}: sha256 does not match the manifest's files entry", MODEL)
    manifest = engine.manifest.model_copy(update={"file": path.name, "sha256": want})
    try:
        return ModelEngine(engine.folder, manifest, open_session(path, EngineOptions()))
    except (ModelRefused, ValueError) as exc:
        raise EdgectlError(f"{path}: {exc}", MODEL) from None


def _frames(source: Path, every: int) -> Iterator[tuple[str, Any]]:
    import cv2

    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        if not files:
            raise EdgectlError(f"{source}: no images or videos in this folder", USAGE)
        for f in files:
            yield from _frames(f, every)
        return
    if not source.is_file():
        raise EdgectlError(f"{source}: no such file or folder", USAGE)
    if source.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(source), cv2.IMREAD_COLOR)
        if image is None:
            raise EdgectlError(f"{source}: not a readable image", USAGE)
        yield source.name, image
        return
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise EdgectlError(f"{source}: not a readable image or video", USAGE)
    try:
        index = 0
        while True:
            ok, image = cap.read()
            if not ok:
                break
            if index % every == 0:
                yield f"{source.name}#{index}", image
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise EdgectlError(f"{source}: the video has no readable frame", USAGE)


def cmd_detect(args: argparse.Namespace) -> int:
    import cv2

    from agent.vision.detections import DensityMap
    from agent.vision.draw import draw_counts, draw_detections

    if args.every < 1:
        raise EdgectlError("--every must be at least 1", USAGE)
    engine, manifest = _load(args.model, args.conf)
    labels = manifest.labels
    prep = engine.preprocessor()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    out = sys.stdout
    for name, image in _frames(args.source, args.every):
        result = engine.infer(image, prep, manifest)
        if isinstance(result, DensityMap):
            line: dict[str, Any] = {"source": name, "count": round(float(result.count), 2)}
            text = f"{name}: count {result.count:.1f}"
        else:
            dets = [
                {
                    "label": labels[int(c)],
                    "score": round(float(s), 4),
                    "box": [round(float(v), 4) for v in b],
                }
                for b, s, c in zip(result.xyxy, result.confidence, result.class_id, strict=True)
            ]
            line = {"source": name, "detections": dets}
            found = ", ".join(f"{d['label']} {d['score']:.2f}" for d in dets) or "nothing"
            text = f"{name}: {len(dets)} found: {found}"
        try:
            out.write((json.dumps(line) if args.json else text) + "\n")
            out.flush()
        except BrokenPipeError:  # `| head` closed the pipe: stop quietly, as Unix tools do
            sys.stdout = None  # type: ignore[assignment]
            return 0
        if args.save:
            canvas = image.copy()
            if isinstance(result, DensityMap):
                draw_counts(canvas, [f"count {result.count:.1f}"])
            else:
                draw_detections(canvas, result, labels)
            # "a.jpg" -> a.jpg.jpg, "clip.mp4#12" -> clip.mp4_12.jpg: one file per source, never two
            cv2.imwrite(str(args.save / f"{name.replace('#', '_')}.jpg"), canvas)
    return 0
