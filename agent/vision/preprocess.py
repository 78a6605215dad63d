"""Frame → model input exactly as the manifest says: letterbox, colour order, scaling, layout, dtype.

Buffers are allocated once per (camera, model). For the usual NCHW float input a frame costs a
resize into the canvas (none when it already has the input's size), one split into channel planes
and one scaling pass per plane into the tensor, with no per-frame allocation.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .manifest import InputSpec


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image of ``src_w`` x ``src_h`` was placed in the model input (scale, then pad).

    ``scale_y`` differs from ``scale`` only for stretched inputs (RT-DETR); 0 means the same.
    """

    src_w: int
    src_h: int
    scale: float
    pad_x: int
    pad_y: int
    dst_w: int
    dst_h: int
    scale_y: float = 0.0

    @classmethod
    def fit(cls, src_w: int, src_h: int, dst_w: int, dst_h: int, stride: int | None = None) -> Letterbox:
        """Keep the aspect ratio, pad evenly; with ``stride``, pad only up to a multiple of it."""
        scale = min(dst_w / src_w, dst_h / src_h)
        new_w, new_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
        if stride:
            dst_w, dst_h = new_w + (dst_w - new_w) % stride, new_h + (dst_h - new_h) % stride
        return cls(src_w, src_h, scale, (dst_w - new_w) // 2, (dst_h - new_h) // 2, dst_w, dst_h)

    @classmethod
    def stretch(cls, src_w: int, src_h: int, dst_w: int, dst_h: int) -> Letterbox:
        return cls(src_w, src_h, dst_w / src_w, 0, 0, dst_w, dst_h, dst_h / src_h)

    @property
    def sy(self) -> float:
        return self.scale_y or self.scale

    @property
    def inner_size(self) -> tuple[int, int]:
        return max(1, round(self.src_w * self.scale)), max(1, round(self.src_h * self.sy))

    def to_normalized(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes in model-input pixels (n, 4) → normalized to the original image, clipped to it.

        The image spans exactly its resized (rounded) size in the input, so that size is what maps
        back, per axis, as Ultralytics' scale_boxes does: not the unrounded scale.
        """
        inner_w, inner_h = self.inner_size
        offset = np.asarray((self.pad_x, self.pad_y) * 2, np.float32)
        out = ((boxes - offset) / np.asarray((inner_w, inner_h) * 2, np.float32)).astype(
            np.float32, copy=False
        )
        return np.clip(out, 0.0, 1.0, out=out)

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Normalized boxes of the original image → model-input pixels (inverse of to_normalized)."""
        inner_w, inner_h = self.inner_size
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, [0, 2]] = boxes[:, [0, 2]] * inner_w + self.pad_x
        out[:, [1, 3]] = boxes[:, [1, 3]] * inner_h + self.pad_y
        return out


def place(spec: InputSpec, src_w: int, src_h: int) -> Letterbox:
    """Where a frame of this size goes in the model input, as the model's exporter places it."""
    if spec.fit == "stretch":
        return Letterbox.stretch(src_w, src_h, spec.width, spec.height)
    return Letterbox.fit(src_w, src_h, spec.width, spec.height, spec.stride)


def resize_filter(spec: InputSpec, box: Letterbox) -> int:
    """The OpenCV filter that scales a frame into the input as the model was trained: area only shrinks."""
    return cv2.INTER_AREA if spec.resize == "area" and box.scale < 1 else cv2.INTER_LINEAR


class Preprocessor:
    """Preallocated letterbox canvas and input tensor for one model input spec; not thread-safe.

    With ``spec.stride`` (dynamic-shape models) the input size follows the frame's aspect, so the
    buffers are sized again when the frame size changes, never per frame.
    """

    def __init__(self, spec: InputSpec, batch: int = 1) -> None:
        self.spec = spec
        self.batch = batch
        # Fold scale, mean and std into one multiply-add per channel: (x * s - m) / d = x * a + b.
        std = np.asarray(spec.std, np.float32)
        self._mul = (spec.scale / std).astype(np.float32)
        self._add = (-np.asarray(spec.mean, np.float32) / std).astype(np.float32)
        # Most exports only scale (mean 0, std 1): skip the add, a whole pass over the float tensor.
        self._no_add = bool(np.all(self._add == 0.0))
        # Channel planes go straight from the frame into the tensor, with no interleaved copy between,
        # each through a table of its 256 values: one pass, where a multiply (and add) over the plane
        # casts in a buffer first (0.32 against 0.42 ms for a 640x360 frame just after a run).
        self._planar = spec.layout == "NCHW" and spec.dtype != "uint8"
        levels = np.arange(256, dtype=np.float32)[None, :] * self._mul[:, None]
        if not self._no_add:
            levels += self._add[:, None]
        self._luts = [np.ascontiguousarray(levels[c : c + 1]) for c in range(3)]  # the same float32 ops
        self._last: Letterbox | None = None
        self._planes = [np.empty((0, 0), np.uint8)] * 3
        self._allocate(spec.width, spec.height)

    def _allocate(self, width: int, height: int) -> None:
        spec, ch = self.spec, self.spec.channels
        self._canvas = np.full((height, width, ch) if ch == 3 else (height, width), spec.pad_value, np.uint8)
        shape = (self.batch, ch, height, width) if spec.layout == "NCHW" else (self.batch, height, width, ch)
        dtype = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}[spec.dtype]
        self.tensor = np.zeros(shape, dtype)
        # float16 inputs are computed in float32 and rounded once, as the exporter's float path does.
        self._work = np.zeros(shape, np.float32) if spec.dtype == "float16" else self.tensor
        interleaved = spec.dtype != "uint8" and not self._planar
        self._float = np.zeros((height, width, ch), np.float32) if interleaved else None

    def __call__(self, frame: np.ndarray, slot: int = 0) -> Letterbox:
        """Fill batch slot ``slot`` of ``self.tensor`` from a BGR frame; returns the letterbox used."""
        spec = self.spec
        if spec.color == "GRAY":
            if frame.ndim == 3:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        elif frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        h, w = frame.shape[:2]
        box = self._last
        if box is None or (box.src_w, box.src_h) != (w, h):
            box = place(spec, w, h)
            if self._canvas.shape[:2] != (box.dst_h, box.dst_w):
                self._allocate(box.dst_w, box.dst_h)
            # The border only changes with the frame size: it goes into every slot once, here.
            self._canvas[:] = spec.pad_value
            for k in range(self.batch):
                self._fill(k, (slice(None), slice(None)), self._canvas)
            self._last = box
        new_w, new_h = box.inner_size
        region = (slice(box.pad_y, box.pad_y + new_h), slice(box.pad_x, box.pad_x + new_w))
        if (new_w, new_h) == (w, h) and self._planar and frame.dtype == np.uint8:
            image = frame  # already the input's size: split it as it is, no copy into the canvas
        else:
            image = self._canvas[region]
            if (new_w, new_h) == (w, h):
                image[:] = frame
            else:
                cv2.resize(frame, (new_w, new_h), dst=image, interpolation=resize_filter(spec, box))
        self._fill(slot, region, image)
        return box

    def _fill(self, slot: int, region: tuple[slice, slice], image: np.ndarray) -> None:
        """Convert ``image`` into the tensor's ``region`` (the border is already there)."""
        self._convert(slot, region, image)
        if self._work is not self.tensor:
            if self.spec.layout == "NCHW":
                np.copyto(self.tensor[slot][(slice(None), *region)], self._work[slot][(slice(None), *region)])
            else:
                np.copyto(self.tensor[slot][region], self._work[slot][region])

    def _convert(self, slot: int, region: tuple[slice, slice], image: np.ndarray) -> None:
        spec = self.spec
        if self._planar:
            # Channel planes straight into the tensor: one pass per plane, no interleaved float copy
            # to transpose afterwards (the costly, cache-unfriendly part on a small CPU); only the
            # image's part of the input, the letterbox border is written once per frame size.
            if image.ndim == 3:
                # into buffers kept across frames: fresh ones cost page faults (0.46 against 0.02 ms)
                if self._planes[0].shape != image.shape[:2]:
                    self._planes = [np.empty(image.shape[:2], np.uint8) for _ in range(3)]
                planes = cv2.split(image, self._planes)  # B, G, R
            else:
                planes = [image]
            order = (2, 1, 0) if spec.color == "RGB" else (0, 1, 2)
            for c in range(len(planes)):
                out = self._work[slot, c][region]
                got = cv2.LUT(planes[order[c]], self._luts[c], dst=out)
                if got is not out:  # OpenCV allocates anew a dst it cannot write into
                    out[...] = got
            return
        image = self._canvas
        if image.ndim == 2:
            image = image[:, :, None]
        if spec.color == "RGB":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self._float is not None:
            mul, add = self._mul[: image.shape[2]], self._add[: image.shape[2]]
            np.multiply(image, mul, out=self._float, casting="unsafe")
            if not self._no_add:
                self._float += add
            image = self._float
        if spec.layout == "NCHW":
            self._work[slot] = image.transpose(2, 0, 1)
        else:
            self._work[slot] = image
