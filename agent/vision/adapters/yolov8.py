"""YOLOv8 / YOLO11 exports: one output ``[1, 4 + C, N]`` of cx, cy, w, h and class scores, no objectness."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..detections import Detections
from ..manifest import ModelManifest
from ..preprocess import Letterbox
from . import AdapterError, adapter
from ._yolo import class_table, finish, single_output


@adapter("yolov8")
def decode(outputs: Sequence[np.ndarray], box: Letterbox, manifest: ModelManifest) -> Detections:
    out = single_output(list(outputs), 3, "[1, 4 + classes, boxes]")
    n_classes = len(manifest.classes)
    if out.shape[0] != 4 + n_classes:
        raise AdapterError(
            f"yolov8 layout needs {4 + n_classes} rows (4 box values + {n_classes} classes), "
            f"the model gives {out.shape[0]}{_hint(out.shape, n_classes)}"
        )
    scores_all = out[4:]  # (C, N)
    # max over the class axis is vectorized, argmax is not (0.06 against 0.55 ms for 80 x 8400):
    # find the candidates with max, and their class only for them.
    best = scores_all.max(axis=0)
    candidates = np.flatnonzero(best >= class_table(manifest).floor)
    if not len(candidates):
        return Detections.empty()
    class_ids = scores_all[:, candidates].argmax(axis=0)
    xywh = out[:4, candidates].T.astype(np.float32)
    return finish(xywh, best[candidates], class_ids, box, manifest, layout="yolov8")


def _hint(shape: tuple[int, ...], n_classes: int) -> str:
    extra = shape[0] - 4 - n_classes
    if shape[0] > shape[1]:
        return "; rows and columns look swapped: is it a YOLOv5 export (adapter 'yolov5')?"
    if extra == 32:
        return "; 32 mask coefficients per box look like a segmentation export, not supported"
    if extra > 0 and extra % 3 == 0 and n_classes == 1:
        return f"; {extra // 3} keypoints (x, y, visibility) per box look like a pose export, not supported"
    return ""
