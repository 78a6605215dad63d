"""Faces for the snapshot blur: BlazeFace (MediaPipe's back-camera model) on onnxruntime.

The person detector misses small and partly hidden people; a face detector of its own is the second
line of the fail-closed blur. BlazeFace sees 256x256 and finds faces down to about 16 px of its
input, so a frame is searched in overlapping square tiles at a few scales, not once shrunk whole.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

TILES = (256, 512)  # tile sides in frame pixels, besides the whole frame
OVERLAP = 0.25  # a face on a tile border is whole in the neighbouring tile
GROW = 0.25  # BlazeFace boxes end at the brows and chin: hair and ears are private too


def _anchors() -> np.ndarray:
    # The back model's SSD anchors: a 16x16 grid with 2 per cell, then an 8x8 grid with 6 per cell,
    # all of unit size (the regressors give width and height directly), centred in their cells.
    out = []
    for grid, per_cell in ((16, 2), (8, 6)):
        c = (np.arange(grid, dtype=np.float32) + 0.5) / grid
        cx, cy = np.meshgrid(c, c)
        centres = np.stack([cx.ravel(), cy.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out)


class FaceDetector:
    """One onnxruntime session of the BlazeFace ONNX file; call it on a BGR image."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for a missing or bad file
            raise ValueError(f"cannot load the face model {path}: {exc}") from None
        self.input = self.session.get_inputs()[0].name
        # 256 for the back-camera model; BlazeFace's front-camera one (128) decodes the same way.
        self.side = int(self.session.get_inputs()[0].shape[1])
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.anchors = _anchors()

    def _square(self, tile: np.ndarray) -> tuple[np.ndarray, float]:
        # Pad to a square (bottom and right), so the model sees faces unstretched.
        side = max(tile.shape[:2])
        square = np.zeros((side, side, 3), np.uint8)
        square[: tile.shape[0], : tile.shape[1]] = tile
        rgb = cv2.cvtColor(
            cv2.resize(square, (self.side, self.side), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
        )
        return rgb.astype(np.float32) / 127.5 - 1.0, float(side)

    def _run(self, tile: np.ndarray, min_score: float) -> np.ndarray:
        x, side = self._square(tile)
        s16, s8, r16, r8 = self.session.run(self.outputs, {self.input: x[None]})
        logits = np.concatenate([s16[0, :, 0], s8[0, :, 0]])
        keep = logits > np.log(min_score / (1.0 - min_score))
        if not keep.any():
            return np.zeros((0, 4), np.float32)
        reg = np.concatenate([r16[0], r8[0]])[keep, :4] / self.side
        centre = self.anchors[keep] + reg[:, :2]
        half = reg[:, 2:4] * (0.5 + GROW / 2)
        return np.concatenate([centre - half, centre + half], axis=1) * side  # tile pixels

    def __call__(self, image: np.ndarray, min_score: float = 0.5) -> np.ndarray:
        """Normalized x1, y1, x2, y2 of every face scored ``min_score`` or more (not deduplicated)."""
        h, w = image.shape[:2]
        found = [self._run(image, min_score)]
        for side in TILES:
            if side >= max(h, w):
                continue
            step = max(1, int(side * (1.0 - OVERLAP)))
            for y in range(0, max(1, h - side + step), step):
                for x in range(0, max(1, w - side + step), step):
                    boxes = self._run(image[y : y + side, x : x + side], min_score)
                    found.append(boxes + np.asarray([x, y, x, y], np.float32))
        boxes = np.concatenate(found)
        return np.clip(boxes / np.asarray([w, h, w, h], np.float32), 0.0, 1.0).astype(np.float32)


_LOADED: dict[Path, FaceDetector] = {}


def load_face_detector(path: Path) -> FaceDetector:
    """The face model of a folder (its manifest names the file and its sha256) or an .onnx file.

    One session per file for all cameras, like the detectors; the hash is checked once, at load.
    """
    path = Path(path)
    key = path.resolve()
    if key in _LOADED:
        return _LOADED[key]
    onnx_path = path
    if path.is_dir():
        manifest_path = path / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the face model's manifest {manifest_path}: {exc}") from None
        onnx_path = path / str(manifest.get("file", ""))
        want = str(manifest.get("sha256", "")).lower()
        try:
            got = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
        except OSError as exc:
            raise ValueError(f"cannot read the face model {onnx_path}: {exc.strerror}") from None
        if got != want:
            raise ValueError(
                f"face model {onnx_path} has sha256 {got}, its manifest says {want}: reinstall it"
            )
    detector = FaceDetector(onnx_path)
    _LOADED[key] = detector
    return detector
