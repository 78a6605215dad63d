"""The preprocessing every shipped model declares in its manifest, in one place.

Letterbox to the model size keeping aspect ratio (grey 114 border), BGR to RGB, scale 1/255, NCHW
float32. Training, evaluation and the golden check all go through this function, so the numbers in the
model cards are what the runtime sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How a source frame was mapped into the model input: ``model = source * scale + pad``."""

    scale: float
    pad_x: float
    pad_y: float
    source_w: int
    source_h: int

    def to_model(self, xy: np.ndarray) -> np.ndarray:
        out = np.asarray(xy, dtype=np.float32).copy()
        out[..., 0::2] = out[..., 0::2] * self.scale + self.pad_x
        out[..., 1::2] = out[..., 1::2] * self.scale + self.pad_y
        return out

    def to_source(self, xy: np.ndarray) -> np.ndarray:
        out = np.asarray(xy, dtype=np.float32).copy()
        out[..., 0::2] = (out[..., 0::2] - self.pad_x) / self.scale
        out[..., 1::2] = (out[..., 1::2] - self.pad_y) / self.scale
        return out


def letterbox(image_bgr: np.ndarray, width: int, height: int) -> tuple[np.ndarray, Letterbox]:
    """The RGB uint8 model-sized image and the mapping back to the source frame."""
    h, w = image_bgr.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = round(w * scale), round(h * scale)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image_bgr, (nw, nh), interpolation=interp)
    px, py = (width - nw) // 2, (height - nh) // 2
    out = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
    out[py : py + nh, px : px + nw] = resized[..., ::-1]
    return out, Letterbox(scale, float(px), float(py), w, h)


def to_tensor(rgb: np.ndarray) -> np.ndarray:
    """``[1, 3, H, W]`` float32 in 0..1 from an RGB uint8 image (or a batch ``[N, H, W, 3]``)."""
    arr = rgb[None] if rgb.ndim == 3 else rgb
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
