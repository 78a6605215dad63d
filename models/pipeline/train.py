"""Training loops for the detector and the counter (PyTorch CPU, the ``train`` extra).

Detector targets follow the anchor-free recipe: a cell is positive for a box when its centre lies
inside the box, near the box centre and on the pyramid level that suits the box size; it then learns
the distances to the four sides (IoU loss) and the class (BCE). Only what the cells can see is taught:
boxes a few pixels wide are left out of the loss rather than forced onto cells that cannot resolve them.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from models.pipeline.data import DetectionSet
from models.pipeline.nets import STRIDES, Detector

# Boxes smaller than this on their longer side (pixels of a 640-wide frame; scaled to the model's input)
# are ignored in the loss: neither positive nor background.
MIN_BOX = 8.0
FRAME_WIDTH = 640
LEVEL_RANGES = ((0, 48), (32, 112), (80, 10_000))  # box size (longer side) handled by each stride


@dataclass
class TrainConfig:
    steps: int
    batch: int = 16
    lr: float = 2e-3
    threads: int = 2
    seed: int = 0
    log_every: int = 50
    time_budget_s: float | None = None  # stop early (with the LR schedule compressed) past this
    ema_decay: float = 0.0  # > 0: also keep an exponential moving average of the weights (the detector)
    # bfloat16 autocast and channels-last tensors: about 2x faster training on CPUs with AVX512-BF16
    # (measured side by side: bench/train_step.py). Weights, optimizer and losses stay float32.
    bf16: bool = False


class WeightAverage:
    """An exponential moving average of a model's weights and batch-norm statistics.

    With batches of four the last weights jitter from step to step; their running average scores
    more steadily. The decay ramps up from 0 so the early, fast-moving weights are soon forgotten."""

    def __init__(self, model: torch.nn.Module, decay: float, ramp_steps: float = 2000.0) -> None:
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay, self.ramp, self.updates = decay, ramp_steps, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.ramp))
        live = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(live[k].detach(), alpha=1 - d)
            else:
                v.copy_(live[k])


def _setup(cfg: TrainConfig) -> torch.Generator:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    return torch.Generator().manual_seed(cfg.seed)


def _lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    warm = max(1, min(200, total // 10))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def _augment(images: np.ndarray, boxes: list[np.ndarray], rng: np.random.Generator):
    """Horizontal flips and a little colour jitter on top of the renderer's own variety."""
    out = images.astype(np.float32)
    w = images.shape[2]
    new_boxes = []
    for i in range(len(out)):
        b = boxes[i].copy()
        if rng.random() < 0.5:
            out[i] = out[i, :, ::-1]
            if len(b):
                b[:, [1, 3]] = w - b[:, [3, 1]]
        out[i] = out[i] * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15)
        new_boxes.append(b)
    return np.clip(out, 0, 255) / 255.0, new_boxes


def assign(
    boxes: list[np.ndarray], points: torch.Tensor, strides: torch.Tensor, num_classes: int, min_box: float
):
    """Per image: class targets ``[N, C]``, box targets ``[N, 4]`` (x1y1x2y2), positive and ignore masks."""
    n = points.shape[1]
    px, py, st = points[0].numpy(), points[1].numpy(), strides[0].numpy()
    cls_t = np.zeros((len(boxes), n, num_classes), dtype=np.float32)
    box_t = np.zeros((len(boxes), n, 4), dtype=np.float32)
    pos = np.zeros((len(boxes), n), dtype=bool)
    ignore = np.zeros((len(boxes), n), dtype=bool)
    level_of = np.zeros(n, dtype=np.int64)
    offset = 0
    for li, s in enumerate(STRIDES):
        count = int((st == s).sum())
        level_of[offset : offset + count] = li
        offset += count
    for b, gt in enumerate(boxes):
        best_area = np.full(n, np.inf)
        for c, x1, y1, x2, y2 in gt:
            bw, bh = x2 - x1, y2 - y1
            size = max(bw, bh)
            inside = (px > x1) & (px < x2) & (py > y1) & (py < y2)
            if size < min_box or min(bw, bh) < 2:
                ignore[b] |= inside
                continue
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            near = (np.abs(px - cx) < 2.5 * st) & (np.abs(py - cy) < 2.5 * st)
            level_ok = np.zeros(n, dtype=bool)
            for li, (lo, hi) in enumerate(LEVEL_RANGES):
                if lo <= size < hi:
                    level_ok |= level_of == li
            cand = inside & near & level_ok
            if not cand.any():  # a small box between cell centres: take the nearest stride-8 cell
                d = (px - cx) ** 2 + (py - cy) ** 2 + (level_of != 0) * 1e9
                cand = np.zeros(n, dtype=bool)
                cand[int(np.argmin(d))] = True
            area = bw * bh
            take = cand & (area < best_area)
            best_area[take] = area
            cls_t[b, take] = 0
            cls_t[b, take, int(c)] = 1.0
            box_t[b, take] = (x1, y1, x2, y2)
            pos[b] |= take
            # cells inside the box but not chosen are neither object nor background
            ignore[b] |= inside & ~cand
    ignore &= ~pos
    return torch.from_numpy(cls_t), torch.from_numpy(box_t), torch.from_numpy(pos), torch.from_numpy(ignore)


def _giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ix1, iy1 = torch.max(a[:, 0], b[:, 0]), torch.max(a[:, 1], b[:, 1])
    ix2, iy2 = torch.min(a[:, 2], b[:, 2]), torch.min(a[:, 3], b[:, 3])
    inter = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - inter + 1e-6
    iou = inter / union
    cx1, cy1 = torch.min(a[:, 0], b[:, 0]), torch.min(a[:, 1], b[:, 1])
    cx2, cy2 = torch.max(a[:, 2], b[:, 2]), torch.max(a[:, 3], b[:, 3])
    hull = (cx2 - cx1) * (cy2 - cy1) + 1e-6
    return iou - (hull - union) / hull


def detector_loss(model: Detector, x: torch.Tensor, boxes: list[np.ndarray]) -> tuple[torch.Tensor, dict]:
    ltrb, logits = model(x)
    ltrb, logits = ltrb.float(), logits.float()  # losses in float32 even under bfloat16 autocast
    min_box = MIN_BOX * model.width / FRAME_WIDTH
    cls_t, box_t, pos, ignore = assign(boxes, model.points, model.strides, model.num_classes, min_box)
    logits = logits.permute(0, 2, 1)  # [B, N, C]
    weight = (~ignore).float()[..., None]
    num_pos = max(float(pos.sum()), 1.0)
    # focal-style down-weighting of easy background keeps 1000+ empty cells from drowning the few objects
    p = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, cls_t, reduction="none")
    mod = (cls_t - p).abs().pow(1.5).detach()
    cls_loss = (bce * mod * weight).sum() / num_pos
    if pos.any():
        pts = model.points.T[None].expand(len(boxes), -1, -1)  # [B, N, 2]
        d = ltrb.permute(0, 2, 1)
        pred = torch.cat([pts - d[..., :2], pts + d[..., 2:]], dim=-1)[pos]
        box_loss = (1 - _giou(pred, box_t[pos])).sum() / num_pos
    else:
        box_loss = ltrb.sum() * 0
    loss = cls_loss + 2.0 * box_loss
    return loss, {"cls": cls_loss.item(), "box": box_loss.item(), "pos": num_pos / len(boxes)}


def train_detector(
    model: Detector, data: DetectionSet, cfg: TrainConfig, log=print
) -> tuple[Detector, Detector | None]:
    """Train in place; returns the model and, with ``cfg.ema_decay``, the averaged copy to ship."""
    gen = _setup(cfg)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=5e-4)
    layout = torch.channels_last if cfg.bf16 else torch.contiguous_format
    model = model.to(memory_format=layout)
    ema = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    model.train()
    start = time.monotonic()
    total = cfg.steps
    for step in range(cfg.steps):
        if cfg.time_budget_s and step > 20:
            elapsed = time.monotonic() - start
            projected = int(elapsed / step * cfg.steps)
            if projected > cfg.time_budget_s:  # shrink the schedule to fit the time we have
                total = min(total, max(step + 1, int(cfg.time_budget_s / (elapsed / step))))
            if step >= total:
                break
        for g in opt.param_groups:
            g["lr"] = _lr_at(cfg, step, total)
        idx = torch.randint(len(data.images), (cfg.batch,), generator=gen).numpy()
        imgs, boxes = _augment(data.images[idx], [data.boxes[i] for i in idx], rng)
        # NHWC images are already channels-last memory; permuting the view costs nothing
        x = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).contiguous(memory_format=layout)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            loss, parts = detector_loss(model, x, boxes)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        if ema is not None:
            ema.update(model)
        if step % cfg.log_every == 0 or step == total - 1:
            log(
                f"detector step {step}/{total} loss {loss.item():.3f} cls {parts['cls']:.3f} "
                f"box {parts['box']:.3f} pos/img {parts['pos']:.1f} ({time.monotonic() - start:.0f}s)"
            )
    model = model.eval().to(memory_format=torch.contiguous_format)
    return model, (ema.model.to(memory_format=torch.contiguous_format) if ema is not None else None)


DENSITY_SCALE = 100.0  # density targets are scaled up in training; an export divides it back out


def density_loss(pred: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The counter's loss on a batch of density maps (scaled by ``DENSITY_SCALE``): per-pixel
    squared error plus a relative error on each image's count. Returns it with the predicted and true
    counts, for the training log."""
    pix = F.mse_loss(pred, t, reduction="sum") / len(pred)
    count_p, count_t = pred.sum((1, 2, 3)), t.sum((1, 2, 3))
    cnt = (F.smooth_l1_loss(count_p, count_t, reduction="none") / (count_t + DENSITY_SCALE * 5)).mean()
    return pix / 100.0 + cnt * 10.0, count_p, count_t
