"""Frame → model input exactly as the manifest says: letterbox, colour order, scaling, layout, dtype.

Buffers are allocated once per (camera, model); a frame costs one resize, one copy into the padded
canvas and one fused scale/normalize pass, with no per-frame allocation of the input tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .manifest import InputSpec


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image of ``src_w`` x ``src_h`` was placed in the model input (scale, then pad)."""

    src_w: int
    src_h: int
    scale: float
    pad_x: int
    pad_y: int
    dst_w: int
    dst_h: int

    @classmethod
    def fit(cls, src_w: int, src_h: int, dst_w: int, dst_h: int) -> Letterbox:
        scale = min(dst_w / src_w, dst_h / src_h)
        new_w, new_h = round(src_w * scale), round(src_h * scale)
        return cls(src_w, src_h, scale, (dst_w - new_w) // 2, (dst_h - new_h) // 2, dst_w, dst_h)

    @property
    def inner_size(self) -> tuple[int, int]:
        return round(self.src_w * self.scale), round(self.src_h * self.scale)

    def to_normalized(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes in model-input pixels (n, 4) → normalized to the original image, clipped to it."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad_x) / (self.scale * self.src_w)
        out[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad_y) / (self.scale * self.src_h)
        return np.clip(out, 0.0, 1.0, out=out)

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Normalized boxes of the original image → model-input pixels (inverse of to_normalized)."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, [0, 2]] = boxes[:, [0, 2]] * self.scale * self.src_w + self.pad_x
        out[:, [1, 3]] = boxes[:, [1, 3]] * self.scale * self.src_h + self.pad_y
        return out


class Preprocessor:
    """Preallocated letterbox canvas and input tensor for one model input spec; not thread-safe."""

    def __init__(self, spec: InputSpec, batch: int = 1) -> None:
        self.spec = spec
        self._canvas = np.full((spec.height, spec.width, 3), spec.pad_value, np.uint8)
        shape = (
            (batch, 3, spec.height, spec.width)
            if spec.layout == "NCHW"
            else (batch, spec.height, spec.width, 3)
        )
        self.tensor = np.zeros(shape, np.float32 if spec.dtype == "float32" else np.uint8)
        self._float = np.zeros((spec.height, spec.width, 3), np.float32) if spec.dtype == "float32" else None
        # Fold scale, mean and std into one multiply-add per channel: (x * s - m) / d = x * a + b.
        std = np.asarray(spec.std, np.float32)
        self._mul = (spec.scale / std).astype(np.float32)
        self._add = (-np.asarray(spec.mean, np.float32) / std).astype(np.float32)
        self._identity = bool(np.all(self._mul == 1.0) and np.all(self._add == 0.0))
        self._last: Letterbox | None = None

    def __call__(self, frame: np.ndarray, slot: int = 0) -> Letterbox:
        """Fill batch slot ``slot`` of ``self.tensor`` from a BGR frame; returns the letterbox used."""
        spec = self.spec
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        h, w = frame.shape[:2]
        box = self._last
        if box is None or (box.src_w, box.src_h) != (w, h):
            box = Letterbox.fit(w, h, spec.width, spec.height)
            self._canvas[:] = spec.pad_value  # the border only changes when the frame size does
            self._last = box
        new_w, new_h = box.inner_size
        inner = self._canvas[box.pad_y : box.pad_y + new_h, box.pad_x : box.pad_x + new_w]
        if (new_w, new_h) == (w, h):
            inner[:] = frame
        else:
            area = spec.resize == "area" and box.scale < 1
            interp = cv2.INTER_AREA if area else cv2.INTER_LINEAR
            cv2.resize(frame, (new_w, new_h), dst=inner, interpolation=interp)
        image = self._canvas
        if spec.layout == "NCHW" and self._float is not None:
            # Channel planes straight into the tensor: one pass per plane, no interleaved float copy
            # to transpose afterwards (the costly, cache-unfriendly part on a small CPU).
            planes = cv2.split(image)  # B, G, R
            order = (2, 1, 0) if spec.color == "RGB" else (0, 1, 2)
            for c, src in enumerate(order):
                out = self.tensor[slot, c]
                np.multiply(planes[src], self._mul[c], out=out, casting="unsafe")
                if not self._identity:
                    out += self._add[c]
            return box
        if spec.color == "RGB":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self._float is not None:
            np.multiply(image, self._mul, out=self._float, casting="unsafe")
            if not self._identity:
                self._float += self._add
            image = self._float
        if spec.layout == "NCHW":
            self.tensor[slot] = image.transpose(2, 0, 1)
        else:
            self.tensor[slot] = image
        return box
