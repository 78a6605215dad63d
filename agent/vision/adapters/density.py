"""Crowd-density models: one output ``[1, 1, H, W]`` whose sum is the person count.

The map covers the letterboxed input; the padded border is cut away so the map returned covers
exactly the original image, and zones can be rasterized onto it in normalized coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..detections import DensityMap
from ..manifest import ModelManifest
from ..preprocess import Letterbox
from . import AdapterError, adapter


@adapter("density")
def decode(outputs: Sequence[np.ndarray], box: Letterbox, manifest: ModelManifest) -> DensityMap:
    if len(outputs) != 1 or outputs[0].ndim != 4 or outputs[0].shape[:2] != (1, 1):
        shapes = [list(o.shape) for o in outputs]
        raise AdapterError(f"density layout needs one output [1, 1, H, W], the model gives {shapes}")
    dmap = outputs[0][0, 0]
    if not np.all(np.isfinite(dmap)):
        raise AdapterError("the density map holds NaN or infinite values")
    return DensityMap(crop_to_image(dmap, box))


def crop_to_image(dmap: np.ndarray, box: Letterbox) -> np.ndarray:
    """The part of a letterboxed input's density map that covers the original image, clipped at 0."""
    h, w = dmap.shape
    sx, sy = w / box.dst_w, h / box.dst_h
    inner_w, inner_h = box.inner_size
    x0, y0 = round(box.pad_x * sx), round(box.pad_y * sy)
    x1, y1 = max(x0 + 1, round((box.pad_x + inner_w) * sx)), max(y0 + 1, round((box.pad_y + inner_h) * sy))
    # Negative densities are regression noise; they must not cancel people elsewhere.
    return np.clip(dmap[y0:y1, x0:x1], 0.0, None).astype(np.float32)
