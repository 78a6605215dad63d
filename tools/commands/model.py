"""`edgectl model`: look inside a model package and measure it on this machine.

Each subcommand is a ``cmd_*`` function added in ``register``; keygen, sign and verify come from ``tools/model_signing.py``.
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path
from typing import Any

from ..errors import MODEL, USAGE, EdgectlError
from ..model_signing import register_sign
from .model_detect import register as register_detect


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("model", help="inspect, benchmark, sign and verify model packages")
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    inspect = cmds.add_parser(
        "inspect",
        help="inputs, outputs, adapter, classes and hash of a model folder or ONNX file",
        description="Shows what a model folder's manifest promises and what its ONNX file really has. "
        "Given a bare .onnx file (e.g. your own YOLO export) it guesses the adapter from the output "
        "layout and can print a starting manifest.",
    )
    inspect.add_argument("path", type=Path, help="model folder (with manifest.json) or .onnx file")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.add_argument(
        "--suggest-manifest", action="store_true", help="print a manifest.json for a bare ONNX file"
    )
    inspect.set_defaults(func=cmd_inspect)
    bench = cmds.add_parser("bench", help="milliseconds per frame of a model on this machine")
    bench.add_argument("path", type=Path, help="model folder (with manifest.json)")
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


def guess_layout(output_shapes: list[list[Any]], n_classes: int | None = None) -> tuple[str, int | None]:
    """Adapter name and class count suggested by the output shapes of a model ('' if unknown)."""
    if len(output_shapes) != 1:
        return "", None
    shape = output_shapes[0]
    if len(shape) == 4 and shape[1] == 1:
        return "density", None
    if len(shape) != 3 or not all(isinstance(s, int) for s in shape[1:]):
        return "", None
    a, b = shape[1], shape[2]
    if n_classes:
        if a == 4 + n_classes:
            return "yolov8", n_classes
        if b == 5 + n_classes:
            return "yolov5", n_classes
    if b == 6 and a > 6:
        return "yolo_nms", n_classes
    if a < b:  # YOLOv8/11: few rows (4 + classes), thousands of anchor columns
        return "yolov8", a - 4
    return "yolov5", b - 5


def _metadata(session: Any) -> dict[str, str]:
    try:
        return dict(session.get_modelmeta().custom_metadata_map)
    except Exception:
        return {}


def _classes_from_metadata(meta: dict[str, str]) -> list[str] | None:
    # Ultralytics exports store {0: 'person', 1: 'bicycle', ...} as a Python literal under "names".
    names = meta.get("names")
    if not names:
        return None
    try:
        value = ast.literal_eval(names)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, dict):
        return [str(value[k]) for k in sorted(value)]
    if isinstance(value, list):
        return [str(v) for v in value]
    return None


def cmd_inspect(args: argparse.Namespace) -> int:
    from agent.vision.manifest import ManifestError, load_manifest, sha256_file

    path: Path = args.path
    info: dict[str, Any] = {}
    manifest = None
    if path.is_dir():
        try:
            manifest = load_manifest(path)
        except ManifestError as exc:
            raise EdgectlError(str(exc), MODEL) from None
        onnx_path = path / manifest.file
        info["manifest"] = manifest.model_dump(mode="json")
    elif path.is_file():
        onnx_path = path
    else:
        raise EdgectlError(f"{path}: no such model folder or file", USAGE)
    if not onnx_path.is_file():
        raise EdgectlError(f"{onnx_path}: model file named by the manifest is missing", MODEL)
    digest = sha256_file(onnx_path)
    info["file"] = str(onnx_path)
    info["size_bytes"] = onnx_path.stat().st_size
    info["sha256"] = digest
    if manifest is not None:
        info["sha256_matches_manifest"] = digest == manifest.sha256
    session = _open(onnx_path)
    info.update(_io(session))
    meta = _metadata(session)
    if meta:
        info["metadata"] = meta
    classes = manifest.classes if manifest else _classes_from_metadata(meta)
    adapter, n_classes = guess_layout(
        [o["shape"] for o in info["outputs"]], len(classes) if classes else None
    )
    info["layout_guess"] = adapter or "unknown"
    if args.suggest_manifest:
        print(json.dumps(_suggest(onnx_path, digest, info, adapter, n_classes, classes), indent=2))
        return 0
    if args.json:
        print(json.dumps(info, indent=2))
        return 0 if info.get("sha256_matches_manifest", True) else MODEL
    _print_inspect(info, manifest, classes)
    return 0 if info.get("sha256_matches_manifest", True) else MODEL


def _suggest(
    onnx_path: Path, digest: str, info: dict, adapter: str, n_classes: int | None, classes: list[str] | None
) -> dict[str, Any]:
    shape = info["inputs"][0]["shape"] if info["inputs"] else [1, 3, 640, 640]
    nhwc = len(shape) == 4 and shape[3] == 3
    height, width = (shape[1], shape[2]) if nhwc else (shape[2], shape[3])
    if not classes:
        classes = [f"class{k}" for k in range(n_classes or 0)]
    return {
        "id": onnx_path.stem.lower().replace(" ", "-"),
        "version": "0.1.0",
        "task": "density" if adapter == "density" else "detect",
        "adapter": adapter or "FILL IN: yolov8, yolov5, yolo_nms or density",
        "file": onnx_path.name,
        "sha256": digest,
        "input": {
            "width": width if isinstance(width, int) else 640,
            "height": height if isinstance(height, int) else 640,
            "layout": "NHWC" if nhwc else "NCHW",
            "color": "RGB",
            "dtype": "uint8" if "uint8" in info["inputs"][0]["type"] else "float32",
            "scale": 1 / 255,
            "pad_value": 114,
        },
        "classes": classes if adapter != "density" else [],
        "thresholds": {"confidence": 0.25, "iou": 0.45},
    }


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
        print(
            f"input     {i.width}x{i.height} {i.layout} {i.color} {i.dtype}, scale {i.scale:.5g}, "
            f"mean {list(i.mean)}, std {list(i.std)}, letterbox pad {i.pad_value}"
        )
        t = manifest.thresholds
        print(f"threshold confidence {t.confidence}, NMS IoU {t.iou}, per class {t.per_class or '-'}")
        print(f"golden    {manifest.golden.image if manifest.golden else 'none (no self-test at start)'}")
    print(f"layout    looks like: {info['layout_guess']}")
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
