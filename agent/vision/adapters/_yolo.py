"""Shared steps of the YOLO adapters: thresholds per class, per-class NMS, back through the letterbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..detections import Detections
from ..manifest import ModelManifest
from ..preprocess import Letterbox
from . import AdapterError


@dataclass(frozen=True, slots=True)
class ClassTable:
    """A manifest's thresholds and merges as arrays: built once per manifest, not once per frame."""

    n_classes: int
    floor: float  # the lowest threshold of any label: below it no row can be kept
    threshold: np.ndarray  # (n_classes,) float32: each model class's own threshold (its label's)
    label_of: np.ndarray | None  # (n_classes,) int64 label id of each class; None: no merges


_TABLES: dict[int, tuple[ModelManifest, ClassTable]] = {}


def class_table(manifest: ModelManifest) -> ClassTable:
    """The manifest's ``ClassTable``; manifests are frozen, so one built for it stays right."""
    hit = _TABLES.get(id(manifest))
    if hit is not None and hit[0] is manifest:
        return hit[1]
    base, per = manifest.thresholds.confidence, manifest.thresholds.per_class
    by_label = np.asarray([per.get(name, base) for name in manifest.labels], np.float32)
    label_of = np.asarray(manifest.label_of_class, np.int64) if manifest.merge else None
    table = ClassTable(
        len(manifest.classes),
        min(base, *per.values(), 1.0),
        by_label[label_of] if label_of is not None else by_label,
        label_of,
    )
    if len(_TABLES) >= 256:  # per-camera manifests are few; this only bounds a churn of reloads
        _TABLES.clear()
    _TABLES[id(manifest)] = (manifest, table)  # the manifest held too, so its id is not reused
    return table


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
    table = class_table(manifest)
    if not len(class_ids):
        return Detections.empty()
    if class_ids.min() < 0 or class_ids.max() >= table.n_classes:
        raise AdapterError(
            f"the model outputs class id {int(class_ids.max())} but the manifest lists "
            f"{table.n_classes} classes"
        )
    keep = scores >= table.threshold[class_ids]
    if table.label_of is not None:
        class_ids = table.label_of[class_ids]
    xywh, scores, class_ids = xywh[keep], scores[keep], class_ids[keep]
    if not len(scores):
        return Detections.empty()
    if layout and box.dst_w >= 32 and float(np.abs(xywh[:, :2]).max()) <= 1.0:
        # Every centre within a pixel of the corner: the model gives normalized 0..1 boxes. Decoding
        # them as pixels would put every detection at the top-left corner, silently.
        raise AdapterError(
            f"the model's boxes are normalized (0..1) but the {layout} layout has them in input pixels; "
            "an RT-DETR export needs adapter 'rtdetr'"
        )
    if nms and len(scores) > 1:
        corner = xywh.copy()
        corner[:, :2] -= xywh[:, 2:] / 2  # NMSBoxes wants x, y, w, h with x, y the top-left corner
        # OpenCV's stubs ask for sequences; its binding takes the arrays as they are, with no copy.
        nms_boxes: Any = cv2.dnn.NMSBoxesBatched
        found = nms_boxes(
            corner.astype(np.float64),
            scores.astype(np.float64),
            class_ids.astype(np.int32),
            0.0,
            manifest.thresholds.iou,
        )
        idx = np.asarray(found, np.int64).reshape(-1)
        xywh, scores, class_ids = xywh[idx], scores[idx], class_ids[idx]
    xyxy = np.empty_like(xywh, dtype=np.float32)
    xyxy[:, :2] = xywh[:, :2] - xywh[:, 2:] / 2
    xyxy[:, 2:] = xywh[:, :2] + xywh[:, 2:] / 2
    # The strongest first, at most max_detections of them (Ultralytics keeps 300 per image).
    order = np.argsort(-scores, kind="stable")[: manifest.thresholds.max_detections]
    return Detections(
        box.to_normalized(xyxy[order]), scores[order].astype(np.float32), class_ids[order].astype(np.int32)
    )
