"""Exports with NMS built in (YOLOv10, ``nms=True``): ``[1, N, 6]`` rows of x1, y1, x2, y2, score, class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..detections import Detections
from ..manifest import ModelManifest
from ..preprocess import Letterbox
from . import AdapterError, adapter
from ._yolo import finish, single_output


@adapter("yolo_nms")
def decode(outputs: Sequence[np.ndarray], box: Letterbox, manifest: ModelManifest) -> Detections:
    out = single_output(list(outputs), 3, "[1, boxes, 6]")
    if out.shape[1] != 6:
        raise AdapterError(
            f"yolo_nms layout needs 6 columns (x1, y1, x2, y2, score, class), got {out.shape[1]}"
        )
    xyxy = out[:, :4].astype(np.float32)
    xywh = np.concatenate(((xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]), axis=1)
    # Padding rows of fixed-size exports carry score 0 and are removed by the threshold.
    return finish(
        xywh,
        out[:, 4].astype(np.float32),
        out[:, 5].round().astype(np.int64),
        box,
        manifest,
        nms=False,
        layout="yolo_nms",
    )
