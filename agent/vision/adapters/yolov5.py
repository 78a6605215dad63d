"""YOLOv5 / YOLOv7 exports: one output ``[1, N, 5 + C]`` of cx, cy, w, h, objectness, class scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..detections import Detections
from ..manifest import ModelManifest
from ..preprocess import Letterbox
from . import AdapterError, adapter
from ._yolo import class_table, finish, single_output


@adapter("yolov5")
def decode(outputs: Sequence[np.ndarray], box: Letterbox, manifest: ModelManifest) -> Detections:
    out = single_output(list(outputs), 3, "[1, boxes, 5 + classes]")
    n_classes = len(manifest.classes)
    if out.shape[1] != 5 + n_classes:
        raise AdapterError(
            f"yolov5 layout needs {5 + n_classes} columns (4 box values, objectness, {n_classes} classes), "
            f"the model gives {out.shape[1]}"
        )
    # objectness bounds the final score, so this drops most rows early
    rows = out[out[:, 4] >= class_table(manifest).floor]
    class_scores = rows[:, 5:] * rows[:, 4:5]
    class_ids = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(rows)), class_ids]
    return finish(rows[:, :4].astype(np.float32), scores, class_ids, box, manifest, layout="yolov5")
