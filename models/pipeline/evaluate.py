"""Measure ONNX models the way the model cards report them: through onnxruntime, on letterboxed frames.

The pipeline has its own small YOLOv8 decode (confidence filter, per-class NMS) so its figures do not
depend on the runtime's adapter; the two are cross-checked by the golden image in the manifest.
Ground-truth boxes under ``MIN_EVAL_FRAME_PX`` on their longer side (pixels of a 640-wide frame, so
the scope does not change with the model's input size) are "difficult" (VOC's term): neither counted
as misses nor do detections on them count as false alarms; the model cards say so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.pipeline.data import CrowdSet, DetectionSet
from models.pipeline.letterbox import to_tensor

MIN_EVAL_FRAME_PX = 16.0  # in a 640-wide camera frame, whatever the model's input size
FRAME_WIDTH = 640  # the renderer's (and the demo camera's) frame width


def min_eval_px(model_width: int) -> float:
    """The "difficult" size limit in model-input pixels, for a model ``model_width`` wide."""
    return MIN_EVAL_FRAME_PX * model_width / FRAME_WIDTH


MATCH_IOU = 0.5


@dataclass(frozen=True)
class Detection:
    cls: int
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in model pixels


def session(path: Path | str, threads: int = 2) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def decode(output: np.ndarray, thresholds: dict[int, float], default: float, iou: float) -> list[Detection]:
    """YOLOv8 layout ``[1, 4 + C, N]`` to detections: best class per cell, threshold, per-class NMS."""
    pred = output[0]
    scores = pred[4:]
    cls = scores.argmax(axis=0)
    best = scores[cls, np.arange(scores.shape[1])]
    limit = np.array([thresholds.get(int(c), default) for c in range(scores.shape[0])], dtype=np.float32)
    keep = best >= limit[cls]
    cx, cy, w, h = pred[0, keep], pred[1, keep], pred[2, keep], pred[3, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    cls, best = cls[keep], best[keep]
    out: list[Detection] = []
    for c in np.unique(cls):
        idx = np.where(cls == c)[0]
        idx = idx[np.argsort(-best[idx])]
        while len(idx):
            i = idx[0]
            out.append(Detection(int(c), float(best[i]), tuple(float(v) for v in boxes[i])))
            if len(idx) == 1:
                break
            overlap = iou_matrix(boxes[i : i + 1], boxes[idx[1:]])[0]
            idx = idx[1:][overlap < iou]
    return out


def detect_all(sess: ort.InferenceSession, images: np.ndarray, low: float = 0.01, iou: float = 0.5) -> list:
    name = sess.get_inputs()[0].name
    return [decode(sess.run(None, {name: to_tensor(img)})[0], {}, low, iou) for img in images]


def _match(dets: list[Detection], gt: np.ndarray, num_classes: int, min_px: float):
    """Per detection: 1 true positive, 0 false positive, -1 ignored (on a difficult box)."""
    verdict = np.zeros(len(dets), dtype=np.int8)
    order = np.argsort([-d.score for d in dets])
    sizes = np.maximum(gt[:, 3] - gt[:, 1], gt[:, 4] - gt[:, 2]) if len(gt) else np.zeros(0)
    difficult = sizes < min_px
    used = np.zeros(len(gt), dtype=bool)
    for i in order:
        d = dets[i]
        same = np.where(gt[:, 0] == d.cls)[0] if len(gt) else np.zeros(0, dtype=int)
        if len(same) == 0:
            continue
        ious = iou_matrix(np.array([d.box]), gt[same, 1:])[0]
        free = np.where(~used[same] | difficult[same], ious, -1)
        j = int(np.argmax(free))
        if free[j] >= MATCH_IOU:
            k = same[j]
            if difficult[k]:
                verdict[i] = -1
            else:
                used[k] = True
                verdict[i] = 1
    gt_count = (
        np.bincount(gt[~difficult, 0].astype(int), minlength=num_classes)
        if len(gt)
        else np.zeros(num_classes)
    )
    return verdict, gt_count


def _ap(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> float:
    if n_gt == 0:
        return float("nan")
    order = np.argsort(-scores)
    tp = tp[order].astype(np.float64)
    ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-9)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


@dataclass
class DetectionReport:
    ap: dict[int, float]
    precision: dict[int, float]
    recall: dict[int, float]
    gt: dict[int, int]
    pooled_precision: float  # over all classes together
    pooled_recall: float

    @property
    def map50(self) -> float:
        vals = [v for v in self.ap.values() if not np.isnan(v)]
        return float(np.mean(vals)) if vals else float("nan")


def score(
    dets: list[list[Detection]],
    data: DetectionSet,
    num_classes: int,
    thresholds: dict[int, float],
    subset=None,
    *,
    min_px: float,
) -> DetectionReport:
    """mAP@0.5 per class over the full score range, and P/R at ``thresholds``."""
    idx = range(len(dets)) if subset is None else subset
    per_cls: dict[int, list] = {c: [] for c in range(num_classes)}
    gt_total = np.zeros(num_classes, dtype=int)
    for i in idx:
        verdict, gt_count = _match(dets[i], data.boxes[i], num_classes, min_px)
        gt_total += gt_count.astype(int)
        for d, v in zip(dets[i], verdict, strict=False):
            if v >= 0:
                per_cls[d.cls].append((d.score, v))
    ap, prec, rec = {}, {}, {}
    tp_all = fp_all = 0
    for c in range(num_classes):
        arr = np.array(per_cls[c], dtype=np.float64).reshape(-1, 2)
        ap[c] = _ap(arr[:, 0], arr[:, 1], int(gt_total[c]))
        above = arr[arr[:, 0] >= thresholds.get(c, 0.25)]
        tp = int(above[:, 1].sum())
        fp = len(above) - tp
        tp_all, fp_all = tp_all + tp, fp_all + fp
        prec[c] = tp / (tp + fp) if tp + fp else float("nan")
        rec[c] = tp / gt_total[c] if gt_total[c] else float("nan")
    return DetectionReport(
        ap,
        prec,
        rec,
        {c: int(gt_total[c]) for c in range(num_classes)},
        pooled_precision=tp_all / (tp_all + fp_all) if tp_all + fp_all else float("nan"),
        pooled_recall=tp_all / gt_total.sum() if gt_total.sum() else float("nan"),
    )


SIZE_BINS = (16, 24, 32, 48, 64, 96)  # object size bands (longer side), pixels of a 640-wide frame


def recall_by_size(
    dets: list[list[Detection]],
    data: DetectionSet,
    num_classes: int,
    thresholds: dict[int, float],
    scale: float,
) -> dict[int, list[tuple[int, int]]]:
    """Per class and size band of ``SIZE_BINS`` (the last band open-ended): (found, objects) at
    ``thresholds``. ``scale`` is model pixels per frame pixel. Tells how far away a camera still sees
    each kind of object, which the pooled recall hides."""
    edges = np.array(SIZE_BINS, dtype=np.float64) * scale
    out = {c: [(0, 0)] * len(edges) for c in range(num_classes)}
    for d_img, gt in zip(dets, data.boxes, strict=False):
        kept = [d for d in d_img if d.score >= thresholds.get(d.cls, 0.25)]
        for g in gt:
            c, size = int(g[0]), max(g[3] - g[1], g[4] - g[2])
            band = int(np.searchsorted(edges, size, side="right")) - 1
            if band < 0:
                continue  # under the scored size: "difficult"
            boxes = np.array([d.box for d in kept if d.cls == c]).reshape(-1, 4)
            found = bool(len(boxes)) and float(iou_matrix(boxes, g[None, 1:]).max()) >= MATCH_IOU
            hit, total = out[c][band]
            out[c][band] = (hit + int(found), total + 1)
    return out


THRESHOLD_GRID = np.arange(15, 91) / 100  # exact hundredths, the values the manifest ships


def _curves(dets: list[list[Detection]], data: DetectionSet, num_classes: int, min_px: float):
    """Per class, (precision, recall, F1) at each threshold of ``THRESHOLD_GRID``."""
    per_cls: dict[int, list] = {c: [] for c in range(num_classes)}
    gt_total = np.zeros(num_classes, dtype=int)
    for d_img, gt in zip(dets, data.boxes, strict=False):
        verdict, gt_count = _match(d_img, gt, num_classes, min_px)
        gt_total += gt_count.astype(int)
        for d, v in zip(d_img, verdict, strict=False):
            if v >= 0:
                per_cls[d.cls].append((d.score, v))
    out = {}
    for c in range(num_classes):
        arr = np.array(per_cls[c], dtype=np.float64).reshape(-1, 2)
        above = arr[:, 0][None, :] >= THRESHOLD_GRID[:, None]
        n = above.sum(axis=1)
        tp = (above * arr[:, 1][None, :]).sum(axis=1)
        p = np.divide(tp, n, out=np.zeros(len(n)), where=n > 0)
        r = tp / max(int(gt_total[c]), 1)
        f1 = np.divide(2 * p * r, p + r, out=np.zeros(len(n)), where=p + r > 0)
        out[c] = (p, r, f1)
    return out


def tune_thresholds(
    dets: list[list[Detection]],
    data: DetectionSet,
    num_classes: int,
    target_p: float = 0.9,
    *,
    min_px: float,
):
    """Per class, the lowest score threshold whose precision reaches ``target_p`` on this (validation) set;
    where no threshold reaches it, the one with the best F1."""
    out = {}
    for c, (p, r, f1) in _curves(dets, data, num_classes, min_px).items():
        reach = np.flatnonzero((p >= target_p) & (r > 0))
        i = int(reach[0]) if len(reach) else int(np.argmax(f1))
        out[c] = round(float(THRESHOLD_GRID[i]), 2)
    return out


def real_frame_guard(negatives: list[list[Detection]], num_classes: int) -> dict[int, float]:
    """Per class, the lowest threshold of the grid at which it makes no detection on real frames that
    show no such object (the grid's top, 0.90, where even that one fires)."""
    top = {c: 0.0 for c in range(num_classes)}
    for d_img in negatives:
        for d in d_img:
            top[d.cls] = max(top[d.cls], d.score)
    out = {}
    for c in range(num_classes):
        clear = np.flatnonzero(top[c] < THRESHOLD_GRID)
        out[c] = round(float(THRESHOLD_GRID[clear[0] if len(clear) else -1]), 2)
    return out


def operating_point(
    dets: list[list[Detection]],
    data: DetectionSet,
    num_classes: int,
    guard: dict[int, float],
    floor_p: float = 0.8,
    *,
    min_px: float,
) -> dict[int, float]:
    """Per class, on validation only: no lower than ``guard`` (``real_frame_guard`` of detections on
    real frames without any such object), and above it the best F1 among thresholds whose precision
    reaches ``floor_p``; where none does, the best F1 above the guard. F1 because the goals weigh
    recall beside precision; the guard because a false alarm on a real street costs a city more than a
    miss on a painted one."""
    out = {}
    for c, (p, _r, f1) in _curves(dets, data, num_classes, min_px).items():
        allowed = guard[c] - 1e-9 <= THRESHOLD_GRID
        pick = allowed & (p >= floor_p)
        pool = pick if pick.any() and f1[pick].max() > 0 else allowed
        i = int(np.flatnonzero(pool)[np.argmax(f1[pool])])  # the lowest of equal F1s
        out[c] = round(float(THRESHOLD_GRID[i]), 2)
    return out


COUNT_BANDS = ((0, 9), (10, 50), (51, 100), (101, 200))


def count_report(pred: np.ndarray, data: CrowdSet, subset=None) -> dict[str, dict[str, float]]:
    """MAE and MAPE per crowd-size band, and over 10-200 people (the goal's range)."""
    truth = np.array([len(p) for p in data.points], dtype=np.float64)
    idx = np.arange(len(truth)) if subset is None else np.asarray(list(subset))
    out = {}
    for lo, hi in (*COUNT_BANDS, (10, 200)):
        sel = idx[(truth[idx] >= lo) & (truth[idx] <= hi)]
        if len(sel) == 0:
            continue
        err = np.abs(pred[sel] - truth[sel])
        mape = float(np.mean(err / truth[sel]) * 100) if lo > 0 else float("nan")
        out[f"{lo}-{hi}"] = {"n": len(sel), "mae": float(err.mean()), "mape": mape}
    return out


def time_interleaved(
    models: dict[str, tuple[Path, np.ndarray]], runs: int = 40, threads: int = 2
) -> dict[str, list[float]]:
    """ms per run of each model on its own input tensor, runs interleaved so machine load hits all
    of them alike (after three warm-up runs each)."""
    sessions = {k: (session(p, threads), x) for k, (p, x) in models.items()}
    for s, x in sessions.values():
        for _ in range(3):
            s.run(None, {s.get_inputs()[0].name: x})
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(runs):
        for k, (s, x) in sessions.items():
            t = time.perf_counter()
            s.run(None, {s.get_inputs()[0].name: x})
            times[k].append((time.perf_counter() - t) * 1000)
    return times


def time_side_by_side(paths: dict[str, Path], width: int, height: int, runs: int = 40, threads: int = 2):
    """Median ms per frame for each model on the same random frame, runs interleaved."""
    x = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    times = time_interleaved({k: (p, x) for k, p in paths.items()}, runs, threads)
    return {k: float(np.median(v)) for k, v in times.items()}
