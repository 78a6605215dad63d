"""Training and evaluation sets, from the renderer or from a directory of real labelled images.

A set is model-ready: letterboxed RGB uint8 images plus boxes (or head points) in model-input pixels,
with each image's lighting and weather kept for the per-condition figures in the model cards.

Real data layouts accepted (so a city can train on its own images or on public sets):

- detection: ``DIR/images/*.jpg|png`` with ``DIR/labels/<stem>.txt`` in YOLO format
  (``class cx cy w h`` normalized, one object a line); class ids index the model's class list.
- crowd: ``DIR/images/*.jpg|png`` with ``DIR/points/<stem>.txt`` holding ``x y`` head positions in
  pixels, one a line (convert ShanghaiTech's ``.mat`` files to this once).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.pipeline.letterbox import letterbox, to_model
from models.pipeline.render import render_street

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}

# Seed ranges: training, threshold tuning and the held-out test never share a seed.
TRAIN_SEEDS = 0
VALIDATION_SEEDS = 5_000_000
HELDOUT_SEEDS = 9_000_000


@dataclass
class DetectionSet:
    images: np.ndarray  # [N, H, W, 3] RGB uint8, letterboxed
    boxes: list[np.ndarray]  # per image [k, 5]: class, x1, y1, x2, y2 in model pixels
    lighting: list[str]
    weather: list[str]


@dataclass
class CrowdSet:
    images: np.ndarray
    points: list[np.ndarray]  # per image [k, 2] head positions in model pixels
    lighting: list[str]
    weather: list[str]


class DataError(ValueError):
    """A dataset directory that cannot be used; the message names the file and the problem."""


def _street_sample(args: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, str, str]:
    seed, width, height = args
    scene = render_street(seed)
    rgb, lb = letterbox(scene.image, width, height)
    rows = [(lab.cls, *to_model(lb, np.array(lab.box))) for lab in scene.labels]
    return (
        rgb,
        np.array(rows, dtype=np.float32).reshape(-1, 5),
        scene.conditions.lighting,
        scene.conditions.weather,
    )


def _workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _render(fn, seeds: Iterable[int], width: int, height: int) -> list:
    jobs = [(s, width, height) for s in seeds]
    if len(jobs) < 64:
        return [fn(j) for j in jobs]
    with ProcessPoolExecutor(_workers()) as pool:
        return list(pool.map(fn, jobs, chunksize=32))


def render_detection_set(first_seed: int, count: int, width: int, height: int) -> DetectionSet:
    out = _render(_street_sample, range(first_seed, first_seed + count), width, height)
    return DetectionSet(
        np.stack([o[0] for o in out]), [o[1] for o in out], [o[2] for o in out], [o[3] for o in out]
    )


def _images(folder: Path) -> list[Path]:
    images = sorted(p for p in (folder / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"{folder}: no images found in {folder / 'images'} (expected .jpg or .png files)")
    return images


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: cannot be decoded as an image; remove it or re-export it as JPEG/PNG")
    return image


def load_detection_dir(folder: str | Path, num_classes: int, width: int, height: int) -> DetectionSet:
    """A YOLO-format directory (``images/`` + ``labels/``) letterboxed to the model size."""
    folder = Path(folder)
    images, boxes = [], []
    for path in _images(folder):
        image = _read(path)
        h, w = image.shape[:2]
        rgb, lb = letterbox(image, width, height)
        label_path = folder / "labels" / f"{path.stem}.txt"
        rows = []
        if label_path.exists():  # an image without a label file is a background image
            for n, line in enumerate(label_path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                try:
                    cls, cx, cy, bw, bh = int(parts[0]), *map(float, parts[1:5])
                except (ValueError, IndexError):
                    raise DataError(f"{label_path}:{n}: expected 'class cx cy w h', got {line!r}") from None
                if not 0 <= cls < num_classes:
                    raise DataError(f"{label_path}:{n}: class {cls} is outside 0..{num_classes - 1}")
                box = np.array([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
                rows.append((cls, *to_model(lb, box)))
        images.append(rgb)
        boxes.append(np.array(rows, dtype=np.float32).reshape(-1, 5))
    n = len(images)
    return DetectionSet(np.stack(images), boxes, ["unknown"] * n, ["unknown"] * n)


def read_crowd_dir(folder: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """A directory of ``images/`` + ``points/`` (``x y`` pixels per line): each image (BGR, as read)
    with its head points."""
    folder = Path(folder)
    out = []
    for path in _images(folder):
        image = _read(path)
        point_path = folder / "points" / f"{path.stem}.txt"
        if not point_path.exists():
            raise DataError(
                f"{point_path}: missing; every crowd image needs its head points (empty file: nobody)"
            )
        try:
            pts = np.loadtxt(point_path, dtype=np.float32, ndmin=2).reshape(-1, 2)
        except ValueError as exc:
            raise DataError(f"{point_path}: expected 'x y' pixel positions one a line: {exc}") from None
        out.append((image, pts))
    return out


def load_crowd_dir(folder: str | Path, width: int, height: int) -> CrowdSet:
    """A directory of ``images/`` + ``points/`` (``x y`` per line) letterboxed to the model size."""
    images, points = [], []
    for image, pts in read_crowd_dir(folder):
        rgb, lb = letterbox(image, width, height)
        images.append(rgb)
        points.append(to_model(lb, pts))
    n = len(images)
    return CrowdSet(np.stack(images), points, ["unknown"] * n, ["unknown"] * n)


def write_detection_dir(data: DetectionSet, folder: str | Path) -> None:
    """Write a set in the YOLO layout (model-sized images), e.g. to inspect or to train other tools."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    h, w = data.images.shape[1:3]
    for i, (img, boxes) in enumerate(zip(data.images, data.boxes, strict=False)):
        cv2.imwrite(str(folder / "images" / f"{i:06d}.jpg"), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        lines = [
            f"{int(c)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
            f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
            for c, x1, y1, x2, y2 in boxes
        ]
        (folder / "labels" / f"{i:06d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def density_map(points: np.ndarray, width: int, height: int, stride: int = 4) -> np.ndarray:
    """Gaussian-smoothed head points at the counter's output resolution; sums to the head count.

    Each head spreads over a Gaussian whose width follows the distance to its nearest neighbours
    (geometry-adaptive kernels), so dense crowds stay separable and sparse ones smooth.
    """
    ow, oh = width // stride, height // stride
    out = np.zeros((oh, ow), dtype=np.float32)
    if len(points) == 0:
        return out
    pts = points / stride
    if len(pts) > 3:
        d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
        d.sort(axis=1)
        sigmas = np.clip(0.3 * d[:, 1:4].mean(axis=1), 0.6, 3.0)
    else:
        sigmas = np.full(len(pts), 2.0)
    for (x, y), s in zip(pts, sigmas, strict=False):
        r = int(np.ceil(3 * s))
        xs = np.arange(int(np.floor(x)) - r, int(np.floor(x)) + r + 2)
        ys = np.arange(int(np.floor(y)) - r, int(np.floor(y)) + r + 2)
        gx = np.exp(-((xs + 0.5 - x) ** 2) / (2 * s * s))
        gy = np.exp(-((ys + 0.5 - y) ** 2) / (2 * s * s))
        g = gy[:, None] * gx[None, :]
        # a head near the border keeps its whole unit of mass inside the frame, so the map sums to the count
        vx, vy = (xs >= 0) & (xs < ow), (ys >= 0) & (ys < oh)
        if vx.any() and vy.any():
            inside = g[np.ix_(vy, vx)]
            out[np.ix_(ys[vy], xs[vx])] += inside / max(inside.sum(), 1e-6)
    return out
