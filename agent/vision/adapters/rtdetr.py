"""RT-DETR exports: ``[1, queries, 6]`` rows of normalized cx, cy, w, h, score, class.

The boxes are fractions of the input, which RT-DETR is fed stretched (not letterboxed); there is
no NMS, the queries are already distinct. Older exporters gave ``[1, queries, 4 + C]`` with one score
per class instead of score and class; both are read here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..detections import Detections
from ..manifest import ModelManifest
from ..preprocess import Letterbox
from . import AdapterError, adapter
from ._yolo import finish, single_output


@adapter("rtdetr")
def decode(outputs: Sequence[np.ndarray], box: Letterbox, manifest: ModelManifest) -> Detections:
    out = single_output(list(outputs), 3, "[1, queries, 6]")
    n_classes = len(manifest.classes)
    if out.shape[1] == 6:
        scores, class_ids = out[:, 4].astype(np.float32), out[:, 5].round().astype(np.int64)
    elif out.shape[1] == 4 + n_classes:
        class_ids = out[:, 4:].argmax(axis=1)
        scores = out[np.arange(len(out)), 4 + class_ids].astype(np.float32)
    else:
        raise AdapterError(
            f"rtdetr layout needs 6 columns (cx, cy, w, h, score, class) or {4 + n_classes} "
            f"(cx, cy, w, h and {n_classes} class scores), the model gives {out.shape[1]}"
        )
    coords = out[:, :4].astype(np.float32)
    if len(coords) and float(np.abs(coords).max()) > 2.0:
        raise AdapterError(
            "rtdetr layout has boxes normalized to 0..1, this model gives input pixels; "
            "a YOLO export with NMS in the graph needs adapter 'yolo_nms'"
        )
    xywh = coords * np.asarray([box.dst_w, box.dst_h, box.dst_w, box.dst_h], np.float32)
    return finish(xywh, scores, class_ids, box, manifest, nms=False)
