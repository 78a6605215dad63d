"""street-vision: nanodet-coco and street-issues-rw as one network that runs the shared backbone once.

    python -m models.pipeline.merge            # about 3 min on 2 cores, from the two shipped folders

street-issues-rw is NanoDet-g's frozen backbone and neck with a head of its own, so a camera running
both models computed the same features twice (the backbone is 97 % of either model's time). Here
street-issues-rw's head, from the neck's three feature maps to its decoded output, is grafted onto
nanodet-coco's graph at those maps, for FP32 and for INT8 alike: each INT8 half keeps the
calibration it shipped with, so the COCO half is bit for bit nanodet-coco-int8.

The output stays in the YOLOv8 layout any decoder reads: ``[1, 4 + 80 + 5, 2 * 3549]``, nanodet's
3549 candidates with zero issue scores, then the issue head's 3549 (its own boxes) with zero COCO
scores. NMS is per class, so the halves never suppress each other.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import compose, helper

from agent.vision.engine import EngineOptions, load_engine
from agent.vision.manifest import MANIFEST_NAME, InputSpec, sha256_file
from models.pipeline import evaluate
from models.pipeline.camera_conditions import measure as measure_conditions
from models.pipeline.footage import opencv_data
from models.pipeline.footage_report import measure as measure_footage
from models.pipeline.import_detector import preprocess
from models.pipeline.onnx_torch import head_inputs, with_outputs

ROOT = Path(__file__).resolve().parents[2]
COCO_DIR = ROOT / "models" / "nanodet-coco"
ISSUES_DIR = ROOT / "models" / "street-issues-rw"
TARGET = ROOT / "models" / "street-vision"
MODEL_ID = "street-vision"
VERSION = "1.1.0"
# NanoDet's class-score outputs per stride: walking back from them finds the neck's feature maps.
COCO_SCORES = ["Identity:0", "Identity_1:0", "Identity_2:0"]
OPSET = 17  # street-issues-rw's export; every op nanodet-coco uses means the same from 13 to 17
SAME_FEATURES = 1e-5  # the two FP32 graphs' feature maps must agree this closely to be one backbone


def _frames(n: int) -> list[np.ndarray]:
    """Real frames (OpenCV's street clip and photos) for the equivalence checks."""
    cap = cv2.VideoCapture(str(opencv_data("vtest.avi")))
    out = []
    for i in range(n * 40):
        ok, frame = cap.read()
        if not ok:
            break
        if i % 40 == 0:
            out.append(frame)
    cap.release()
    return out[:n]


def issue_head_inputs(model: onnx.ModelProto, head_prefix: str = "/head/") -> list[str]:
    """The tensors street-issues-rw's head reads from its backbone: produced outside the head (not a
    constant), consumed inside it. In the torch export the head's nodes are named ``/head/...``."""
    producer = {o: n for n in model.graph.node for o in n.output}
    found: list[str] = []
    for node in model.graph.node:
        if not node.name.startswith(head_prefix):
            continue
        for t in node.input:
            p = producer.get(t)
            outside = p is not None and not p.name.startswith(head_prefix) and p.op_type != "Constant"
            if outside and t not in found:
                found.append(t)
    return found


def match_features(coco: Path, issues: Path, frames: list[np.ndarray]) -> list[tuple[str, str]]:
    """Pair each issue-head input with nanodet-coco's feature map of equal value, on real frames.

    Refuses unless every pair agrees within ``SAME_FEATURES``: a street-issues-rw trained on another
    backbone must not be grafted onto this one."""
    coco_feats = head_inputs(onnx.load(str(coco)), COCO_SCORES)
    issue_feats = issue_head_inputs(onnx.load(str(issues)))
    s1 = ort.InferenceSession(with_outputs(coco, coco_feats).SerializeToString())
    s2 = ort.InferenceSession(with_outputs(issues, issue_feats).SerializeToString())
    diffs = np.zeros((len(issue_feats), len(coco_feats)))
    for frame in frames:
        x = preprocess(frame)[None]
        a = s1.run(coco_feats, {s1.get_inputs()[0].name: x})
        b = s2.run(issue_feats, {s2.get_inputs()[0].name: x})
        for i, bi in enumerate(b):
            for j, aj in enumerate(a):
                d = float(np.abs(aj - bi).max()) if aj.shape == bi.shape else np.inf
                diffs[i, j] = max(diffs[i, j], d)
    pairs = []
    for i, name in enumerate(issue_feats):
        j = int(np.argmin(diffs[i]))
        if diffs[i, j] > SAME_FEATURES:
            raise SystemExit(
                f"{issues.name}: head input {name} matches no feature map of {coco.name} "
                f"(closest differs by {diffs[i, j]:.3g}); the two models do not share a backbone"
            )
        pairs.append((coco_feats[j], name))
    return pairs


def _rename_output(model: onnx.ModelProto, old: str, new: str) -> None:
    for node in model.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]
    for out in model.graph.output:
        if out.name == old:
            out.name = new


def graft(
    coco: onnx.ModelProto,
    issues: onnx.ModelProto,
    pairs: list[tuple[str, str]],
    n_coco: int,
    n_issue: int,
) -> onnx.ModelProto:
    """One graph: ``coco`` whole, plus ``issues``' head fed from ``coco``'s feature maps."""
    typed = onnx.shape_inference.infer_shapes(issues)  # the extractor needs the cut tensors' types
    head = onnx.utils.Extractor(typed).extract_model([b for _, b in pairs], [issues.graph.output[0].name])
    base = onnx.ModelProto()
    base.CopyFrom(coco)
    coco_out = base.graph.output[0].name
    _rename_output(base, coco_out, "coco/output0")
    for a, _ in pairs:
        base.graph.output.append(helper.make_tensor_value_info(a, onnx.TensorProto.FLOAT, None))
    for m in (base, head):
        del m.opset_import[:]
        m.opset_import.append(helper.make_opsetid("", OPSET))
        m.ir_version = max(coco.ir_version, issues.ir_version)
    merged = compose.merge_models(
        base,
        head,
        io_map=list(pairs),
        prefix2="issues/",
        outputs=["coco/output0", "issues/" + head.graph.output[0].name],
    )
    g = merged.graph
    ints = [
        helper.make_tensor("merge/pad_coco", onnx.TensorProto.INT64, [6], [0, 0, 0, 0, n_issue, 0]),
        helper.make_tensor("merge/pad_issue", onnx.TensorProto.INT64, [6], [0, n_coco, 0, 0, 0, 0]),
        helper.make_tensor("merge/split", onnx.TensorProto.INT64, [2], [4, n_issue]),
    ]
    g.initializer.extend(ints)
    issue_out = "issues/" + head.graph.output[0].name
    g.node.extend(
        [
            helper.make_node("Pad", ["coco/output0", "merge/pad_coco"], ["merge/coco"], name="merge/PadCoco"),
            helper.make_node(
                "Split",
                [issue_out, "merge/split"],
                ["merge/ibox", "merge/iscore"],
                axis=1,
                name="merge/Split",
            ),
            helper.make_node(
                "Pad", ["merge/iscore", "merge/pad_issue"], ["merge/iscore_all"], name="merge/PadIssue"
            ),
            helper.make_node(
                "Concat", ["merge/ibox", "merge/iscore_all"], ["merge/issue"], axis=1, name="merge/Rows"
            ),
            helper.make_node(
                "Concat", ["merge/coco", "merge/issue"], ["output0"], axis=2, name="merge/Anchors"
            ),
        ]
    )
    del g.output[:]
    g.output.append(
        helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, [1, 4 + n_coco + n_issue, None])
    )
    merged.producer_name = "street-edge merge"
    merged.graph.name = MODEL_ID
    onnx.checker.check_model(merged)
    return merged


def equivalence(merged: Path, coco: Path, issues: Path, frames: list[np.ndarray]) -> dict[str, float]:
    """Largest difference between the merged output's halves and the two models run apart."""
    sm, sc, si = (evaluate.session(p, 2) for p in (merged, coco, issues))
    worst = {"coco": 0.0, "issues": 0.0}
    for frame in frames:
        x = preprocess(frame)[None]
        m = sm.run(None, {sm.get_inputs()[0].name: x})[0]
        c = sc.run(None, {sc.get_inputs()[0].name: x})[0]
        i = si.run(None, {si.get_inputs()[0].name: x})[0]
        n, k = c.shape[2], c.shape[1]
        worst["coco"] = max(
            worst["coco"], float(np.abs(m[:, :k, :n] - c).max()), float(np.abs(m[:, k:, :n]).max())
        )
        worst["issues"] = max(
            worst["issues"],
            float(np.abs(m[:, :4, n:] - i[:, :4]).max()),
            float(np.abs(m[:, k:, n:] - i[:, 4:]).max()),
            float(np.abs(m[:, 4:k, n:]).max()),
        )
    return {k: float(v) for k, v in worst.items()}


# -- the folder ---------------------------------------------------------------------------------------
def write_manifest(
    folder: Path, file: str, golden: dict | None, issue_thresholds: dict[str, float] | None = None
) -> dict:
    """The two manifests as one: COCO classes then the issue classes. COCO thresholds are
    nanodet-coco's; issue thresholds street-issues-rw's until ``issue_thresholds`` (tuned on this
    graph) replace them. NMS overlap is nanodet-coco's, tuned for people on real footage."""
    coco = json.loads((COCO_DIR / MANIFEST_NAME).read_text())
    iss = json.loads((ISSUES_DIR / MANIFEST_NAME).read_text())
    if InputSpec.model_validate(coco["input"]) != InputSpec.model_validate(iss["input"]):
        raise SystemExit(
            "nanodet-coco and street-issues-rw take different inputs; they cannot share a backbone"
        )
    clash = set(coco["classes"]) & set(iss["classes"])
    if clash:
        raise SystemExit(f"both models name {sorted(clash)}; class names must be unique in one model")
    names = sorted(p.name for p in folder.iterdir() if p.suffix in {".onnx", ".jpg"})
    files = {n: sha256_file(folder / n) for n in names}
    data = {
        "id": MODEL_ID,
        "version": VERSION,
        "task": "detect",
        "adapter": "yolov8",
        "file": file,
        "sha256": files[file],
        "input": coco["input"],
        "classes": coco["classes"] + iss["classes"],
        "merge": coco.get("merge", {}),
        "thresholds": {
            "confidence": coco["thresholds"]["confidence"],
            "iou": coco["thresholds"]["iou"],
            "per_class": {
                **coco["thresholds"]["per_class"],
                **iss["thresholds"]["per_class"],
                **(issue_thresholds or {}),
            },
        },
        "golden": golden,
        "files": files,
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


def golden(folder: Path, file: str, issue_thresholds: dict[str, float]) -> dict | None:
    """street-issues-rw's golden composite (a real frame with painted issues): what the merged model
    finds on it at high confidence, COCO classes and issues alike, is the start self-test."""
    shutil.copyfile(ISSUES_DIR / "golden.jpg", folder / "golden.jpg")
    write_manifest(folder, file, None, issue_thresholds)
    engine = load_engine(folder, EngineOptions(intra_op_threads=2, self_test=False))
    dets = engine.infer(cv2.imread(str(folder / "golden.jpg"), cv2.IMREAD_COLOR), engine.preprocessor())
    strong = dets[dets.confidence >= 0.6]
    if not len(strong):
        return None
    return {
        "image": "golden.jpg",
        "detections": [
            {"label": engine.manifest.labels[int(c)], "box": [round(float(v), 4) for v in b], "min_iou": 0.5}
            for b, c in zip(strong.xyxy, strong.class_id, strict=True)
        ],
    }


# -- measurement ----------------------------------------------------------------------------------------
def _composites(seed: int, n: int):
    """street-issues-rw's held-out composites (real frames it never trained on) with the truth boxes
    in frame pixels, as the agent's engine reports them."""
    from models.pipeline import transfer

    data = transfer.make_set(seed, n, transfer.backgrounds(held=True, smoke=n < 50))
    truth = []
    for img, b in zip(data.images, data.boxes, strict=True):  # model pixels back to frame pixels
        lb = _letterbox(img)
        f = b.copy()
        f[:, [1, 3]] = (b[:, [1, 3]] - lb.pad_x) / lb.scale
        f[:, [2, 4]] = (b[:, [2, 4]] - lb.pad_y) / lb.scale
        truth.append(f)
    return data, truth


def tune_issue_thresholds(folder: Path, n_val: int) -> dict[str, float]:
    """Issue thresholds for this graph on street-issues-rw's validation composites, by its own rule
    (the lowest reaching its target precision, else the best F1): the INT8 head reads
    nanodet-coco-int8's features, whose quantization differs from its own, so its scores move."""
    from models.pipeline import transfer

    val, truth = _composites(transfer.VAL_SEED, n_val)
    engine = load_engine(folder, EngineOptions(intra_op_threads=2, self_test=False))
    engine.manifest = engine.with_thresholds(dict.fromkeys(transfer.ISSUES, 0.15))  # the scan's lowest
    dets = transfer.engine_dets(engine, val.images)
    th = evaluate.tune_thresholds(
        dets,
        transfer._Boxes(truth),
        len(transfer.ISSUES),
        transfer.TARGET_PRECISION,
        min_px=evaluate.MIN_EVAL_FRAME_PX,
    )
    return {transfer.ISSUES[c]: t for c, t in th.items()}


def issue_figures(engines: dict[str, object], n_test: int, n_style: int) -> dict:
    """street-issues-rw's own held-out composites and unseen style, for each engine, same images."""
    from models.pipeline import transfer

    test, truth = _composites(transfer.TEST_SEED, n_test)
    style_images, style_boxes = transfer.style_set(n_style)
    every = dict.fromkeys(range(len(transfer.ISSUES)), 0.0)  # the engines already applied theirs
    out: dict = {"test_images": n_test, "test_negatives": test.negatives, "style_images": n_style}
    for name, engine in engines.items():
        held = transfer.engine_dets(engine, test.images)
        style = transfer.engine_dets(engine, style_images)
        out[name] = {
            "held_out": transfer.pr_table(held, truth, every, evaluate.MIN_EVAL_FRAME_PX),
            "unseen_style": transfer.pr_table(style, style_boxes, every, evaluate.MIN_EVAL_FRAME_PX),
        }
    return out


def _letterbox(img: np.ndarray):
    from agent.vision.preprocess import Letterbox
    from models.pipeline.import_detector import SIZE

    return Letterbox.fit(img.shape[1], img.shape[0], SIZE, SIZE)


def false_alarms(engines: dict[str, object], smoke: bool) -> dict:
    """Issue detections per frame on vtest.avi frames never trained on (>= 400; no issue in view)."""
    from models.pipeline import transfer

    frames = transfer.video_frames("vtest.avi", lambda i: i >= transfer.VTEST_TRAIN_END, 8 if smoke else None)
    return {name: transfer.false_alarms(e, frames) for name, e in engines.items()}


def stills_figures(engines: dict[str, object]) -> dict:
    """Real photos from other cameras (models/footage/stills.labels.json), never trained or tuned on:
    people and vehicles scored, and every issue detection a false alarm (none shows an issue)."""
    from models.pipeline.footage import load_stills, score_label
    from models.pipeline.transfer import ISSUES

    stills = load_stills()
    out: dict = {"images": len(stills)}
    for name, engine in engines.items():
        prep = engine.preprocessor()
        labels = engine.manifest.labels
        found = [engine.infer(f.image, prep) for f in stills]
        r: dict = {
            label: score_label(label, labels, stills, found).at(0.0)
            for label in ("person", "vehicle")
            if label in labels
        }
        issues = [labels[int(c)] for d in found for c in d.class_id if labels[int(c)] in ISSUES]
        r["issue_detections"] = len(issues)
        r["issue_labels"] = sorted(set(issues))
        r["images_with_issue"] = sum(any(labels[int(c)] in ISSUES for c in d.class_id) for d in found)
        out[name] = r
    return out


def speed(out: Path, runs: int) -> dict[str, float]:
    """Median ms per frame, 2 threads, one real frame, all runs interleaved: the merged model against
    the two it replaces run one after the other."""
    x = preprocess(_frames(1)[0])[None]
    paths = {
        "street_vision_int8": out / f"{MODEL_ID}-int8.onnx",
        "nanodet_coco_int8": COCO_DIR / "nanodet-coco-int8.onnx",
        "street_issues_rw_int8": ISSUES_DIR / "street-issues-rw-int8.onnx",
        "street_vision_fp32": out / f"{MODEL_ID}-fp32.onnx",
    }
    times = evaluate.time_interleaved({k: (p, x) for k, p in paths.items()}, runs)
    med = {k: round(float(np.median(v)), 2) for k, v in times.items()}
    pair = np.asarray(times["nanodet_coco_int8"]) + np.asarray(times["street_issues_rw_int8"])
    med["two_models_int8"] = round(float(np.median(pair)), 2)
    med["speedup_int8"] = round(med["two_models_int8"] / med["street_vision_int8"], 2)
    return med


def build(out: Path = TARGET, *, smoke: bool = False, log=print) -> dict:
    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.onnx"):
        old.unlink()
    frames = _frames(2 if smoke else 8)
    pairs = match_features(
        COCO_DIR / "nanodet-coco-fp32.onnx", ISSUES_DIR / "street-issues-rw-fp32.onnx", frames
    )
    # the classes' counts from the manifests: the exported output shapes may be symbolic
    n_coco = len(json.loads((COCO_DIR / MANIFEST_NAME).read_text())["classes"])
    n_issue = len(json.loads((ISSUES_DIR / MANIFEST_NAME).read_text())["classes"])
    same: dict[str, dict[str, float]] = {}
    for p in ("fp32", "int8"):
        coco, iss = COCO_DIR / f"nanodet-coco-{p}.onnx", ISSUES_DIR / f"street-issues-rw-{p}.onnx"
        path = out / f"{MODEL_ID}-{p}.onnx"
        onnx.save(graft(onnx.load(str(coco)), onnx.load(str(iss)), pairs, n_coco, n_issue), str(path))
        same[p] = equivalence(path, coco, iss, frames)
        log(f"{p}: largest difference to the separate models {same[p]}")
    # FP32 must be the two models exactly; INT8's COCO half too (same nodes, same calibration). The
    # INT8 issue head reads nanodet-int8's features instead of its own quantized copy: measured below.
    if same["fp32"]["coco"] > 1e-5 or same["fp32"]["issues"] > 1e-4 or same["int8"]["coco"] > 1e-5:
        raise SystemExit(f"the merged graph does not reproduce the separate models: {same}")
    from models.pipeline.transfer import copy_licenses

    copy_licenses(out)
    shipped = "int8"
    file = f"{MODEL_ID}-{shipped}.onnx"
    write_manifest(out, file, None)
    log("tuning the issue thresholds on the validation composites")
    tuned = tune_issue_thresholds(out, 12 if smoke else 500)
    write_manifest(out, file, golden(out, file, tuned), tuned)
    merged = load_engine(out, EngineOptions(intra_op_threads=2))  # as the agent loads it, self-test included
    opts = EngineOptions(intra_op_threads=2, self_test=False)
    engines = {"street-vision": merged, "street-issues-rw": load_engine(ISSUES_DIR, opts)}
    log("measuring on real footage, held-out composites and the unseen style")
    metrics = {
        "model": MODEL_ID,
        "version": VERSION,
        "smoke": smoke,
        "from": {
            "nanodet-coco": json.loads((COCO_DIR / MANIFEST_NAME).read_text())["version"],
            "street-issues-rw": json.loads((ISSUES_DIR / MANIFEST_NAME).read_text())["version"],
        },
        "shipped": shipped,
        "equivalence_max_abs": same,
        "nms_iou": merged.manifest.thresholds.iou,
        "issue_thresholds": tuned,
        "real_footage": {
            "street-vision": measure_footage(out),
            "nanodet-coco": measure_footage(COCO_DIR),
        },
        "issues": issue_figures(engines, 12 if smoke else 500, 4 if smoke else 300),
        "false_alarms_real": false_alarms(engines, smoke),
        "real_stills": stills_figures(engines),
        "ms_per_frame_2_threads": speed(out, 5 if smoke else 60),
        "build_s": 0.0,
    }
    if not smoke:  # about half a minute of real frames under eight conditions; tests build smoke models
        log("measuring real footage under camera conditions")
        metrics["camera_conditions"] = measure_conditions(out)
    metrics["build_s"] = round(time.time() - started, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    from models.pipeline.merge_card import write_card

    write_card(out / "MODEL_CARD.md", metrics)
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TARGET)
    parser.add_argument("--smoke", action="store_true", help="tiny measurement sets (tests)")
    args = parser.parse_args(argv)
    m = build(args.out, smoke=args.smoke)
    rf = m["real_footage"]["street-vision"]["person"]
    sp = m["ms_per_frame_2_threads"]
    print(
        f"{MODEL_ID} {VERSION}: person P {rf['precision']:.2f} R {rf['recall']:.2f} on vtest test frames; "
        f"{sp['street_vision_int8']} ms against {sp['two_models_int8']} ms for the two models "
        f"({sp['speedup_int8']}x); {m['build_s']} s"
    )


if __name__ == "__main__":
    main()
