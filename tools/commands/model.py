"""`edgectl model`: look inside a model package and measure it on this machine.

Each subcommand is a ``cmd_*`` function added in ``register``; keygen, sign and verify come from ``tools/commands/_trust.py``.
"""

# Lazy imports: onnxruntime (160 ms), OpenCV (127), agent.vision.engine (181) and .manifest (5.5) would
# add their time to every edgectl start-up (`edgectl --help`: 0.39 s), so the handlers import them.

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import tomli_w

from agent.config.camera import STATIC_CLASSES, CameraConfig, IssueRule, static_rule
from agent.vision.describe import LayoutError, OnnxFacts, describe, guess_adapter

from ..errors import MODEL, USAGE, EdgectlError
from ._trust import register_sign
from .model_detect import register as register_detect


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("model", help="inspect, benchmark, sign and verify model packages")
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    inspect = cmds.add_parser(
        "inspect",
        help="inputs, outputs, adapter, classes and hash of a model folder or ONNX file",
        description="Shows what a model folder's manifest promises and what its ONNX file really has. "
        "Given a bare .onnx file (e.g. your own YOLO export) it describes it from its metadata and output "
        "layout as the agent would run it, and can print that manifest or a camera section with issue rules.",
    )
    inspect.add_argument("path", type=Path, help="model folder (with manifest.json) or .onnx file")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    suggest = inspect.add_mutually_exclusive_group()
    suggest.add_argument(
        "--suggest-manifest",
        action="store_true",
        help="print the manifest.json the agent would run an ONNX file with, from its metadata and layout",
    )
    suggest.add_argument(
        "--suggest-camera",
        action="store_true",
        help="print a [[cameras]] config section running the model, with an issue rule for each class",
    )
    inspect.set_defaults(func=cmd_inspect)
    bench = cmds.add_parser("bench", help="milliseconds per frame of a model on this machine")
    bench.add_argument("path", type=Path, help="model folder (with manifest.json) or .onnx file")
    bench.add_argument("--frames", type=int, default=50, help="timed frames (default 50)")
    bench.add_argument("--threads", type=int, default=0, help="inference threads (default: one per core)")
    bench.add_argument("--image", type=Path, help="frame to use (default: the golden image or noise)")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.set_defaults(func=cmd_bench)
    register_sign(cmds)
    register_detect(cmds)


def _io(session: Any) -> dict[str, list[dict[str, Any]]]:
    def describe(args: list[Any]) -> list[dict[str, Any]]:
        return [{"name": a.name, "shape": list(a.shape), "type": a.type} for a in args]

    return {"inputs": describe(session.get_inputs()), "outputs": describe(session.get_outputs())}


def _open(path: Path) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise EdgectlError(f"{path}: onnxruntime cannot load it: {exc}", MODEL) from None


def cmd_inspect(args: argparse.Namespace) -> int:
    from agent.vision.engine import locate_model, manifest_for
    from agent.vision.manifest import ManifestError, sha256_file, validate_manifest

    path: Path = args.path
    if not path.exists():
        raise EdgectlError(f"{path}: no such model folder or file", USAGE)
    try:
        onnx_path, given = locate_model(path)
    except ManifestError as exc:
        raise EdgectlError(str(exc), MODEL) from None
    if not onnx_path.is_file():
        raise EdgectlError(f"{onnx_path}: model file named by the manifest is missing", MODEL)
    digest = sha256_file(onnx_path)
    session = _open(onnx_path)
    facts = OnnxFacts.of(session)
    if args.suggest_manifest or args.suggest_camera:
        # From the file alone, whatever manifest sits beside it: what a bare export would run as.
        try:
            manifest = validate_manifest(describe(facts, onnx_path, digest), onnx_path)
        except (LayoutError, ManifestError) as exc:
            raise EdgectlError(f"{onnx_path}: {exc}", MODEL) from None
        if args.suggest_camera:
            print(_suggest_camera(onnx_path, manifest), end="")
        else:
            print(json.dumps(manifest.model_dump(mode="json", exclude_none=True), indent=2))
            print(
                f"edgectl: issue rules for these classes: edgectl model inspect {onnx_path} --suggest-camera",
                file=sys.stderr,
            )
        return 0
    info: dict[str, Any] = {
        "file": str(onnx_path),
        "size_bytes": onnx_path.stat().st_size,
        "sha256": digest,
    }
    if given is not None:
        info["sha256_matches_manifest"] = digest == given.get("sha256")
    info.update(_io(session))
    if facts.metadata:
        info["metadata"] = facts.metadata
    manifest = None
    try:
        manifest = manifest_for(onnx_path, given, session)
        info["manifest"] = manifest.model_dump(mode="json", exclude_none=True)
    except ManifestError as exc:
        info["problem"] = str(exc)
    classes = manifest.classes if manifest else facts.classes()
    try:
        info["layout_guess"] = guess_adapter(facts, len(classes) if classes else None)
    except LayoutError as exc:
        info["layout_guess"] = "unsupported"
        info.setdefault("problem", str(exc))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_inspect(info, manifest, classes)
    if "problem" in info:
        return MODEL
    return 0 if info.get("sha256_matches_manifest", True) else MODEL


def _suggest_camera(onnx_path: Path, manifest: Any) -> str:
    """A ``[[cameras]]`` section running this model, with an issue rule for each of its labels.

    Without a rule a label never becomes an issue, so an integrator's own classes would emit nothing.
    """
    thresholds = manifest.thresholds
    issues = {}
    for label in manifest.labels:
        rule = static_rule() if label in STATIC_CLASSES else IssueRule()
        issues[label] = {
            # what the model reports may become an issue: its own threshold, not a fixed bar above it
            "min_confidence": thresholds.per_class.get(label, thresholds.confidence),
            "k": rule.k,
            "n": rule.n,
            "min_dwell_s": rule.min_dwell_s,
            "end_after_s": rule.end_after_s,
            "static": rule.static,
        }
    camera = {
        "id": "cam-1",
        "source": "rtsp://CAMERA-ADDRESS/stream",
        "models": [str(onnx_path)],
        "issues": issues,
    }
    CameraConfig.model_validate(camera)  # the suggestion must load as it is
    text = tomli_w.dumps({"cameras": [camera]})
    return (
        "# A camera running this model: each label becomes an issue once seen in k of n frames for\n"
        "# min_dwell_s; static = true for things that do not move (deduplicated by place). Edit to taste.\n"
        + text
    )


def _print_inspect(info: dict[str, Any], manifest: Any, classes: list[str] | None) -> None:
    print(f"file      {info['file']} ({info['size_bytes'] / 1e6:.1f} MB)")
    status = ""
    if "sha256_matches_manifest" in info:
        status = (
            "  (matches manifest)" if info["sha256_matches_manifest"] else "  (DOES NOT MATCH the manifest)"
        )
    print(f"sha256    {info['sha256']}{status}")
    if manifest is not None:
        print(f"model     {manifest.id} {manifest.version}, task {manifest.task}, adapter {manifest.adapter}")
        i = manifest.input
        fit = "stretched" if i.fit == "stretch" else f"letterbox pad {i.pad_value}"
        if i.stride:
            fit += f" to a multiple of {i.stride}"
        print(
            f"input     {i.width}x{i.height} {i.layout} {i.color} {i.dtype}, scale {i.scale:.5g}, "
            f"mean {list(i.mean)}, std {list(i.std)}, {fit}, resize {i.resize}"
        )
        t = manifest.thresholds
        print(
            f"threshold confidence {t.confidence}, NMS IoU {t.iou}, at most {t.max_detections} a frame, "
            f"per class {t.per_class or '-'}"
        )
        print(f"golden    {manifest.golden.image if manifest.golden else 'none (no self-test at start)'}")
    print(f"layout    looks like: {info['layout_guess']}")
    if "problem" in info:
        print(f"problem   {info['problem']}")
    for kind in ("inputs", "outputs"):
        for io in info[kind]:
            print(f"{kind[:-1]:9} {io['name']}: {io['shape']} {io['type']}")
    if classes:
        print(f"classes   {len(classes)}: {', '.join(classes)}")


def cmd_bench(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from agent.vision.engine import EngineOptions, ModelRefused, load_engine

    if args.frames < 1:
        raise EdgectlError("--frames must be at least 1", USAGE)
    options = EngineOptions(intra_op_threads=args.threads, warmup_runs=3)
    try:
        engine = load_engine(args.path, options)
    except ModelRefused as exc:
        raise EdgectlError(str(exc), MODEL) from None
    image_path = args.image
    if image_path is None and engine.manifest.golden is not None:
        image_path = engine.folder / engine.manifest.golden.image
    if image_path is not None:
        frame = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if frame is None:
            raise EdgectlError(f"{image_path}: not a readable image", USAGE)
    else:
        frame = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    prep = engine.preprocessor()
    pre_ms, run_ms, post_ms = [], [], []
    for _ in range(args.frames):
        t0 = time.perf_counter()
        box = prep(frame)
        t1 = time.perf_counter()
        outputs = engine.run(prep.tensor)
        t2 = time.perf_counter()
        engine.decode(outputs, box)
        t3 = time.perf_counter()
        pre_ms.append((t1 - t0) * 1000)
        run_ms.append((t2 - t1) * 1000)
        post_ms.append((t3 - t2) * 1000)
    total = [a + b + c for a, b, c in zip(pre_ms, run_ms, post_ms, strict=True)]
    result = {
        "model": f"{engine.manifest.id} {engine.manifest.version}",
        "frame": f"{frame.shape[1]}x{frame.shape[0]}",
        "frames": args.frames,
        "threads": args.threads or "auto",
        "preprocess_ms": round(float(np.median(pre_ms)), 2),
        "inference_ms": round(float(np.median(run_ms)), 2),
        "decode_ms": round(float(np.median(post_ms)), 2),
        "total_ms": round(float(np.median(total)), 2),
        "p95_total_ms": round(float(np.percentile(total, 95)), 2),
        "fps": round(1000.0 / float(np.median(total)), 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        threads = args.threads or "auto"
        print(f"{result['model']} on a {result['frame']} frame, {args.frames} frames, threads {threads}")
        print(
            f"median ms: preprocess {result['preprocess_ms']}, inference {result['inference_ms']}, "
            f"decode {result['decode_ms']}, total {result['total_ms']} (p95 {result['p95_total_ms']}) "
            f"= {result['fps']} fps"
        )
    return 0
