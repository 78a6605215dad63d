"""The input of the renders-trained models (street-issues, crowd-counter), placed by the agent's geometry.

Placement, border and resize filter are the agent's (``agent.vision.preprocess.place`` and
``resize_filter``) with the ``InputSpec`` these models' manifests declare (``input_spec``), so training,
evaluation, the golden checks and the runtime cannot drift: ``letterbox()`` writes the pixels the
agent's ``Preprocessor`` writes, bit for bit. Two steps stay the pipeline's own, kept so the shipped
figures hold, and this is the one place they differ from the runtime:

- ``to_tensor`` divides by 255; the runtime multiplies by float32(1/255): at most 1 ulp (5.96e-8) apart.
- ``to_model``/``to_source`` map labels with the unrounded scale; the runtime maps boxes back through
  the rounded image size (``Letterbox.to_normalized``): under half a pixel apart.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from agent.vision.manifest import InputSpec
from agent.vision.preprocess import Letterbox, place, resize_filter

PAD_VALUE = 114


@lru_cache(maxsize=8)
def input_spec(width: int, height: int) -> InputSpec:
    """The input these models' manifests declare: RGB, grey border, INTER_AREA shrink, 1/255, NCHW float32."""
    return InputSpec(width=width, height=height, pad_value=PAD_VALUE, resize="area")


def letterbox(image_bgr: np.ndarray, width: int, height: int) -> tuple[np.ndarray, Letterbox]:
    """The RGB uint8 model-sized image and where the source frame was placed in it."""
    spec = input_spec(width, height)
    h, w = image_bgr.shape[:2]
    box = place(spec, w, h)
    nw, nh = box.inner_size
    resized = cv2.resize(image_bgr, (nw, nh), interpolation=resize_filter(spec, box))
    out = np.full((box.dst_h, box.dst_w, 3), spec.pad_value, dtype=np.uint8)
    out[box.pad_y : box.pad_y + nh, box.pad_x : box.pad_x + nw] = resized[..., ::-1]
    return out, box


def to_model(box: Letterbox, xy: np.ndarray) -> np.ndarray:
    """Source-frame points or boxes (x, y, x, y, ...) into model-input pixels: ``xy * scale + pad``."""
    out = np.asarray(xy, dtype=np.float32).copy()
    out[..., 0::2] = out[..., 0::2] * box.scale + box.pad_x
    out[..., 1::2] = out[..., 1::2] * box.scale + box.pad_y
    return out


def to_source(box: Letterbox, xy: np.ndarray) -> np.ndarray:
    """Model-input points or boxes back into source-frame pixels (inverse of ``to_model``)."""
    out = np.asarray(xy, dtype=np.float32).copy()
    out[..., 0::2] = (out[..., 0::2] - box.pad_x) / box.scale
    out[..., 1::2] = (out[..., 1::2] - box.pad_y) / box.scale
    return out


def to_tensor(rgb: np.ndarray) -> np.ndarray:
    """``[1, 3, H, W]`` float32 in 0..1 from an RGB uint8 image (or a batch ``[N, H, W, 3]``)."""
    arr = rgb[None] if rgb.ndim == 3 else rgb
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
