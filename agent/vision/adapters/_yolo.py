"""Shared steps of the YOLO adapters: thresholds per class, per-class NMS, back through the letterbox."""

from __future__ import annotations

import cv2
import numpy as np

from ..detections import Detections
from ..manifest import ModelManifest
from ..preprocess import Letterbox
from . import AdapterError


def class_thresholds(manifest: ModelManifest) -> np.ndarray:
    """Confidence threshold for each label id: the per-label value where the manifest gives one."""
    base = manifest.thresholds.confidence
    per = manifest.thresholds.per_class
    return np.asarray([per.get(name, base) for name in manifest.labels], np.float32)


def single_output(outputs: list[np.ndarray], rank: int, what: str) -> np.ndarray:
    if len(outputs) != 1:
        shapes = [list(o.shape) for o in outputs]
        hint = ""
        if len(outputs) == 2 and outputs[1].ndim == 4:
            hint = " (boxes with mask coefficients and mask prototypes: a segmentation export, not supported)"
        raise AdapterError(f"expected one output {what}, the model has {len(outputs)}: {shapes}{hint}")
    out = outputs[0]
    if out.ndim != rank or out.shape[0] != 1:
        raise AdapterError(f"expected one output {what}, got shape {list(out.shape)}")
    return out[0]


def finish(
    xywh: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    box: Letterbox,
    manifest: ModelManifest,
    nms: bool = True,
    layout: str = "",
) -> Detections:
    """Threshold per label, NMS per label, map to normalized image coordinates.

    ``xywh`` are centre-size boxes in model-input pixels; ``layout`` (the adapter's name) turns on
    the check that they really are pixels; ``class_ids`` index the model's classes
    and come back as indices of ``manifest.labels`` (merged classes share one, so a van scored as
    both car and truck is one vehicle after NMS).
    """
    n_classes = len(manifest.classes)
    if len(class_ids) and (class_ids.min() < 0 or class_ids.max() >= n_classes):
        raise AdapterError(
            f"the model outputs class id {int(class_ids.max())} but the manifest lists {n_classes} classes"
        )
    if manifest.merge:
        class_ids = np.asarray(manifest.label_of_class, np.int64)[class_ids]
    keep = scores >= class_thresholds(manifest)[class_ids]
    xywh, scores, class_ids = xywh[keep], scores[keep], class_ids[keep]
    if layout and len(scores) and box.dst_w >= 32 and float(np.abs(xywh[:, :2]).max()) <= 1.0:
        # Every centre within a pixel of the corner: the model gives normalized 0..1 boxes. Decoding
        # them as pixels would put every detection at the top-left corner, silently.
        raise AdapterError(
            f"the model's boxes are normalized (0..1) but the {layout} layout has them in input pixels; "
            "an RT-DETR export needs adapter 'rtdetr'"
        )
    if nms and len(scores) > 1:
        corner = xywh.copy()
        corner[:, :2] -= xywh[:, 2:] / 2  # NMSBoxes wants x, y, w, h with x, y the top-left corner
        idx = cv2.dnn.NMSBoxesBatched(
            corner.astype(np.float64),
            scores.astype(np.float64),
            class_ids.astype(np.int32),
            0.0,
            manifest.thresholds.iou,
        )
        idx = np.asarray(idx, np.int64).reshape(-1)
        xywh, scores, class_ids = xywh[idx], scores[idx], class_ids[idx]
    xyxy = np.empty_like(xywh, dtype=np.float32)
    xyxy[:, :2] = xywh[:, :2] - xywh[:, 2:] / 2
    xyxy[:, 2:] = xywh[:, :2] + xywh[:, 2:] / 2
    # The strongest first, at most max_detections of them (Ultralytics keeps 300 per image).
    order = np.argsort(-scores, kind="stable")[: manifest.thresholds.max_detections]
    return Detections(
        box.to_normalized(xyxy[order]), scores[order].astype(np.float32), class_ids[order].astype(np.int32)
    )
