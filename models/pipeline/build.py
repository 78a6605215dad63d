"""Rebuild a shipped model end to end: data, training, ONNX export, INT8, evaluation, manifest, card.

    python -m models.pipeline.build street-issues            # the shipped detector
    python -m models.pipeline.build crowd-counter            # the shipped counter (crowd_real.py)
    python -m models.pipeline.build street-issues --data DIR # train on real YOLO-labelled images

Rendered training data is cached under ``out/cache`` so a rerun with other training settings skips
rendering. The held-out figures always come from rendered seeds training never used; with ``--data``
they still describe the synthetic set, so also evaluate on a held-out part of your own images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from models.pipeline import crowd_real
from models.pipeline import data as datasets
from models.pipeline import evaluate as ev
from models.pipeline.build_options import add_build_options, cache_folder, run_build
from models.pipeline.card import write_detector_card
from models.pipeline.letterbox import letterbox, to_source, to_tensor
from models.pipeline.manifest import write_manifest
from models.pipeline.objects import CLASSES
from models.pipeline.render import render_street
from models.pipeline.spec import Spec

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


SPECS = {
    # A fixed number of steps and no time budget (0), so a rebuild repeats the shipped training
    # whatever else the machine is doing; the budget is for quick experiments (--smoke).
    # The detector sees a 640x360 camera frame at full resolution (letterboxed to 640x384): at half
    # size (1.1.0) a distant person or a bag of rubbish is a few pixels wide and most were missed.
    "street-issues": Spec(
        "street-issues", "detect", "2.0.0", 640, 384, 6000, 600, 600, 12000, 4, 1.5e-3, 0, 0
    ),
}
# crowd-counter is built by crowd_real.py (painted crowds on real frames), with a plan of its own.
CROWD_COUNTER = "crowd-counter"
# Per-class thresholds are the lowest score reaching this precision on the validation frames. It is
# above the 0.90 goal because the lowest passing threshold on one set lands a little under it on
# another (1.1.0, tuned for 0.90: 0.88-0.89 on the held-out set for three classes).
TARGET_PRECISION = 0.92
SMOKE = {
    "train_images": 8,
    "val_images": 4,
    "heldout_images": 4,
    "steps": 3,
    "batch": 2,
    "time_budget_s": 120,
}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _cached(first: int, count: int, spec: Spec, cache: Path | None) -> datasets.DetectionSet:
    if cache is None:
        return datasets.render_detection_set(first, count, spec.width, spec.height)
    path = cache / f"street-{spec.width}x{spec.height}-{first}-{count}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=True)
        return datasets.DetectionSet(z["images"], list(z["labels"]), list(z["lighting"]), list(z["weather"]))
    out = datasets.render_detection_set(first, count, spec.width, spec.height)
    cache.mkdir(parents=True, exist_ok=True)
    arr = np.empty(len(out.boxes), dtype=object)
    arr[:] = out.boxes
    np.savez(path, images=out.images, labels=arr, lighting=out.lighting, weather=out.weather)
    return out


def build(
    name: str, out: Path, data_dir: Path | None, smoke: bool, cache: Path | None, bf16: bool = False
) -> dict:
    import torch  # the train extra: imported here so rendering and evaluation work without it

    from models.pipeline.export import export_onnx, quantize_int8, tail_nodes
    from models.pipeline.nets import Detector
    from models.pipeline.train import TrainConfig, train_detector

    spec = SPECS[name]
    if smoke:
        spec = replace(spec, **SMOKE)
    if bf16:
        spec = replace(spec, bf16=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    _log(f"{name}: preparing {spec.train_images} training images")
    if data_dir is not None:
        train = datasets.load_detection_dir(data_dir, len(CLASSES), spec.width, spec.height)
        source = f"{len(train.images)} images from {data_dir}"
    else:
        train = _cached(datasets.TRAIN_SEEDS, spec.train_images, spec, cache)
        source = f"{spec.train_images} rendered scenes, seeds {datasets.TRAIN_SEEDS}..{spec.train_images - 1}"
    val = _cached(datasets.VALIDATION_SEEDS, spec.val_images, spec, cache)
    heldout = _cached(datasets.HELDOUT_SEEDS, spec.heldout_images, spec, cache)
    render_s = time.monotonic() - started

    cfg = TrainConfig(
        steps=spec.steps,
        batch=spec.batch,
        lr=spec.lr,
        time_budget_s=spec.time_budget_s,
        ema_decay=spec.ema_decay,
        bf16=spec.bf16,
    )
    t0 = time.monotonic()
    model, averaged = train_detector(Detector(len(CLASSES), spec.width, spec.height), train, cfg, log=_log)
    train_s = time.monotonic() - t0
    fp32, int8 = out / f"{name}-fp32.onnx", out / f"{name}-int8.onnx"
    last_weights = None
    if averaged is not None:
        # the last weights are exported too, unshipped, so the card can show what averaging bought
        last_weights = out / "last-weights-fp32.onnx"
        export_onnx(model, last_weights, spec.width, spec.height, "output0")
        model = averaged
    torch.save(model.state_dict(), out / "weights.pt")

    export_onnx(model, fp32, spec.width, spec.height, "output0")
    calib = to_tensor(val.images[: min(64, len(val.images))])
    quantize_int8(fp32, int8, calib, exclude=tail_nodes(fp32, include_last_convs=False))
    (out / "weights.pt").unlink()
    training = {
        "data": source,
        "steps": cfg.steps,
        "batch": spec.batch,
        "train_s": round(train_s),
        "render_s": round(render_s),
        "torch": torch.__version__,
        "bf16": cfg.bf16,
    }
    if last_weights is not None:
        min_px = ev.min_eval_px(spec.width)
        compare = {}
        for key, path in (("last_weights", last_weights), ("averaged", fp32)):
            dets = ev.detect_all(ev.session(path), heldout.images)
            compare[key] = ev.score(dets, heldout, len(CLASSES), {}, min_px=min_px).map50
        training["weight_average"] = {"decay": spec.ema_decay, "heldout_map50_fp32": compare}
        _log(
            f"{name}: held-out mAP@0.5 (fp32) last weights {compare['last_weights']:.3f}, "
            f"averaged {compare['averaged']:.3f}"
        )
        last_weights.unlink()
    return _measure(spec, out, val, heldout, training, started, runs=10 if smoke else 40)


def remeasure(name: str, out: Path, cache: Path | None, smoke: bool = False) -> dict:
    """Measure the ONNX files a build left in ``out`` again, and rewrite metrics, manifest and card.

    No training: for a new figure in the card, or to re-time a model on another machine. The training
    record is kept from the existing ``metrics.json``."""
    spec = SPECS[name] if not smoke else replace(SPECS[name], **SMOKE)
    previous = json.loads((out / "metrics.json").read_text())
    if previous.get("input") != [spec.width, spec.height]:
        raise SystemExit(
            f"error: {out} holds a {previous.get('input')} model; this spec is {spec.width}x{spec.height}"
        )
    val = _cached(datasets.VALIDATION_SEEDS, spec.val_images, spec, cache)
    heldout = _cached(datasets.HELDOUT_SEEDS, spec.heldout_images, spec, cache)
    return _measure(
        spec, out, val, heldout, previous["training"], None, runs=40, total_s=previous.get("total_s")
    )


def _measure(
    spec: Spec,
    out: Path,
    val,
    heldout,
    training: dict,
    started: float | None,
    runs: int,
    total_s: int | None = None,
) -> dict:
    name = spec.name
    fp32, int8 = out / f"{name}-fp32.onnx", out / f"{name}-int8.onnx"
    timing = ev.time_side_by_side({"fp32": fp32, "int8": int8}, spec.width, spec.height, runs=runs)
    _log(f"{name}: ms/frame {timing}")

    metrics: dict = {
        "name": name,
        "version": spec.version,
        "input": [spec.width, spec.height],
        "training": training,
        "heldout": {"first_seed": datasets.HELDOUT_SEEDS, "images": len(heldout.images)},
        "ms_per_frame": timing,
    }
    result = _finish_detector(spec, fp32, int8, val, heldout, metrics, out)
    metrics["total_s"] = round(time.monotonic() - started) if started is not None else total_s
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_detector_card(out / "MODEL_CARD.md", metrics, result)
    _log(f"{name}: done in {metrics['total_s']} s, shipped {result['file']}")
    return metrics


def _detector_figures(dets, data, thresholds, min_px: float) -> dict:
    rep = ev.score(dets, data, len(CLASSES), thresholds, min_px=min_px)
    out = {
        "map50": rep.map50,
        "pooled_precision": rep.pooled_precision,
        "pooled_recall": rep.pooled_recall,
        "per_class": {
            CLASSES[c]: {
                "ap50": rep.ap[c],
                "precision": rep.precision[c],
                "recall": rep.recall[c],
                "gt": rep.gt[c],
            }
            for c in range(len(CLASSES))
        },
        "recall_by_size": {
            CLASSES[c]: bands
            for c, bands in ev.recall_by_size(
                dets, data, len(CLASSES), thresholds, min_px / ev.MIN_EVAL_FRAME_PX
            ).items()
        },
    }
    for key, values in (("lighting", data.lighting), ("weather", data.weather)):
        out[key] = {}
        for v in sorted(set(values)):
            sub = [i for i, x in enumerate(values) if x == v]
            r = ev.score(dets, data, len(CLASSES), thresholds, subset=sub, min_px=min_px)
            out[key][v] = {
                "images": len(sub),
                "map50": r.map50,
                "precision": r.pooled_precision,
                "recall": r.pooled_recall,
                "per_class_recall": {CLASSES[c]: r.recall[c] for c in range(len(CLASSES))},
            }
    return out


def _finish_detector(spec: Spec, fp32: Path, int8: Path, val, heldout, metrics: dict, out: Path) -> dict:
    sessions = {"fp32": ev.session(fp32), "int8": ev.session(int8)}
    min_px = ev.min_eval_px(spec.width)
    held = {k: ev.detect_all(s, heldout.images) for k, s in sessions.items()}
    maps = {k: ev.score(d, heldout, len(CLASSES), {}, min_px=min_px).map50 for k, d in held.items()}
    drop = (maps["fp32"] - maps["int8"]) * 100
    speedup = metrics["ms_per_frame"]["fp32"] / metrics["ms_per_frame"]["int8"]
    shipped = "int8" if drop <= 2.0 else "fp32"
    _log(f"{spec.name}: held-out mAP@0.5 fp32 {maps['fp32']:.3f} int8 {maps['int8']:.3f}; shipping {shipped}")
    val_dets = ev.detect_all(sessions[shipped], val.images)
    thresholds = ev.tune_thresholds(val_dets, val, len(CLASSES), TARGET_PRECISION, min_px=min_px)
    metrics["thresholds"] = {CLASSES[c]: t for c, t in thresholds.items()}
    metrics["threshold_tuning"] = {"target_precision": TARGET_PRECISION, "validation_images": len(val.images)}
    metrics["shipped"] = shipped
    metrics["int8"] = {
        "map50_fp32": maps["fp32"],
        "map50_int8": maps["int8"],
        "drop_points": drop,
        "speedup": speedup,
    }
    for k in ("fp32", "int8"):
        metrics[k + "_heldout"] = _detector_figures(held[k], heldout, thresholds, min_px)
    golden = _detector_golden(spec, sessions[shipped], thresholds, out, strict=spec.steps > SMOKE["steps"])
    file = (int8 if shipped == "int8" else fp32).name
    write_manifest(
        out,
        spec,
        file=file,
        other=[fp32.name, int8.name],
        classes=list(CLASSES),
        thresholds={
            "confidence": min(thresholds.values()),
            "iou": 0.5,
            "per_class": {CLASSES[c]: t for c, t in thresholds.items()},
        },
        golden=golden,
    )
    return {"file": file, "golden": golden}


def _detector_golden(spec: Spec, sess, thresholds: dict[int, float], out: Path, strict: bool = True) -> dict:
    """A rendered frame with clearly visible objects, and what the shipped model finds on it.

    Frames where any score sits within 0.05 of its threshold are passed over, so the check at start
    does not flip on another CPU's rounding. ``strict=False`` (smoke runs) takes the first candidate.
    """
    h_w = None
    for seed in range(9_500_000 + spec.golden_seed, 9_500_000 + spec.golden_seed + 400):
        scene = render_street(seed)
        big = {lab.cls for lab in scene.labels if lab.box[3] - lab.box[1] > 30}
        if scene.conditions.lighting != "noon" or scene.conditions.weather != "clear" or len(big) < 4:
            continue
        _ok, buf = cv2.imencode(".jpg", scene.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # exactly what the runtime will read back
        rgb, lb = letterbox(image, spec.width, spec.height)
        raw = sess.run(None, {sess.get_inputs()[0].name: to_tensor(rgb)})[0]
        near = ev.decode(raw, {}, 0.05, 0.5)
        if strict and any(abs(d.score - thresholds.get(d.cls, 0.25)) < 0.05 for d in near):
            continue
        dets = ev.decode(raw, thresholds, 0.25, 0.5)
        if len({d.cls for d in dets}) >= 3 or not strict:
            h_w = image.shape[:2]
            (out / "golden.jpg").write_bytes(buf.tobytes())
            break
    if h_w is None:
        raise RuntimeError("no rendered frame gave a stable golden result; the model is too weak to ship")
    h, w = h_w
    golden = []
    for d in sorted(dets, key=lambda d: -d.score):
        x1, y1, x2, y2 = to_source(lb, np.array(d.box))
        box = [
            float(np.clip(x1 / w, 0, 1)),
            float(np.clip(y1 / h, 0, 1)),
            float(np.clip(x2 / w, 0, 1)),
            float(np.clip(y2 / h, 0, 1)),
        ]
        golden.append({"label": CLASSES[d.cls], "box": [round(v, 4) for v in box], "min_iou": 0.5})
    return {"image": "golden.jpg", "detections": golden}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.pipeline.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "model", choices=sorted([*SPECS, CROWD_COUNTER]), help="which shipped model to rebuild"
    )
    add_build_options(
        parser,
        out="output folder (default: models/<model>/)",
        data="train on this directory of real labelled images instead",
        smoke="a few steps on a few images: checks the pipeline",
        no_cache="render data afresh instead of using out/cache",
    )
    parser.add_argument(
        "--remeasure",
        action="store_true",
        help="no training: measure the ONNX files already in --out again and rewrite metrics, manifest, card",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="train the detector under bfloat16 autocast: about 2x faster on CPUs with AVX512-BF16",
    )
    args = parser.parse_args(argv)
    if args.model == CROWD_COUNTER:
        if args.remeasure:
            print(
                "error: crowd-counter has no --remeasure; rebuild it (python -m models.pipeline.build crowd-counter)",
                file=sys.stderr,
            )
            return 2
        return crowd_real.run(args)
    out = args.out or MODELS / args.model
    cache = cache_folder(args)
    if args.remeasure:
        return run_build(lambda: remeasure(args.model, out, cache, args.smoke))
    return run_build(lambda: build(args.model, out, args.data, args.smoke, cache, bf16=args.bf16))


if __name__ == "__main__":
    sys.exit(main())
