"""crowd-counter 2.0: a density head on NanoDet's frozen neck (COCO-pretrained on real photos).

1.3.0 learnt its features from scratch on painted crowds and counted the renderer's unseen style
31.6 % off. The same composites read through the real-image features of the default camera's
detector backbone count it 19 % off in the pilot (FP32, docs in the card): the features already
know people, so the head only learns how much person there is per cell.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from torch.nn import functional as F

from agent.vision.adapters.density import crop_to_image
from agent.vision.preprocess import Letterbox
from models.pipeline import data as datasets
from models.pipeline.import_detector import SIZE, preprocess
from models.pipeline.nets import Block, ConvBN, fold_batchnorm
from models.pipeline.train import DENSITY_SCALE, density_loss
from models.pipeline.transfer import _lr, export_graph, nanodet_backbone

STRIDE = 8  # the density map's cell: NanoDet's finest neck map (52x52 at 416)


class DensityHead(nn.Module):
    """A small top-down path over the three neck maps to one density map at stride 8."""

    def __init__(self, channels: int = 128, width: int = 64) -> None:
        super().__init__()
        self.l8, self.l16, self.l32 = (ConvBN(channels, width, 1) for _ in range(3))
        self.ctx = nn.Sequential(ConvBN(width, width), ConvBN(width, width))
        self.f16 = Block(width)
        self.f8 = nn.Sequential(Block(width), ConvBN(width, width))
        self.out = nn.Conv2d(width, 1, 1)
        nn.init.constant_(self.out.bias, 0.01)

    def forward(self, f8: torch.Tensor, f16: torch.Tensor, f32: torch.Tensor) -> torch.Tensor:
        p32 = self.ctx(self.l32(f32))
        p16 = self.f16(self.l16(f16) + F.interpolate(p32, size=f16.shape[-2:], mode="nearest"))
        p8 = self.f8(self.l8(f8) + F.interpolate(p16, size=f8.shape[-2:], mode="nearest"))
        return F.relu(self.out(p8))


class CrowdTransfer(nn.Module):
    """NanoDet's frozen backbone+neck and a :class:`DensityHead`: NanoDet's normalized BGR in, one
    ``[1, 1, 52, 52]`` density map out whose sum is the count (the agent's density adapter)."""

    def __init__(self, head: DensityHead) -> None:
        super().__init__()
        self.backbone = nanodet_backbone()
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(*self.backbone(x)) / DENSITY_SCALE


def to_input(image: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Head points (pixels of ``image``) in the 416x416 letterbox NanoDet sees."""
    h, w = image.shape[:2]
    lb = Letterbox.fit(w, h, SIZE, SIZE)
    return np.asarray(heads, np.float32).reshape(-1, 2) * lb.scale + [lb.pad_x, lb.pad_y]


def targets(images: list[np.ndarray], heads: list[np.ndarray]) -> np.ndarray:
    """Scaled density maps at stride 8 for each image's head points."""
    maps = [
        datasets.density_map(to_input(img, h), SIZE, SIZE, STRIDE)
        for img, h in zip(images, heads, strict=True)
    ]
    return (np.stack(maps) * DENSITY_SCALE).astype(np.float32)


def train_head(
    feats: list[np.ndarray],
    maps: np.ndarray,
    steps: int,
    batch: int = 16,
    lr: float = 2e-3,
    log: Callable[[str], None] = print,
    threads: int = 2,
) -> tuple[DensityHead, float]:
    """AdamW with warm-up and cosine decay on cached features (``transfer.cache_features``), under
    bfloat16 autocast, with the counter's density loss (``train.density_loss``)."""
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    head = DensityHead()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    head.train()
    start = time.monotonic()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, lr)
        idx = torch.randint(len(maps), (batch,), generator=gen).numpy()
        x = [torch.from_numpy(f[idx].astype(np.float32)) for f in feats]
        t = torch.from_numpy(maps[idx])[:, None]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred = head(*x)
        loss, cp, ct = density_loss(pred.float(), t)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(head.parameters(), 10.0)
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            mae = (cp - ct).abs().mean().item() / DENSITY_SCALE
            log(
                f"crowd head step {step}/{steps} loss {loss.item():.3f} batch MAE {mae:.1f} ({time.monotonic() - start:.0f}s)"
            )
    return head.eval(), time.monotonic() - start


def export(head: DensityHead, path: Path) -> None:
    export_graph(fold_batchnorm(CrowdTransfer(copy.deepcopy(head)).eval()), path, "density")


def onnx_counts(sess: ort.InferenceSession, images: list[np.ndarray]) -> np.ndarray:
    """Counts of an exported counter on BGR frames of any size, the letterbox's border cut away as
    the agent's density adapter does."""
    name = sess.get_inputs()[0].name
    out = []
    for img in images:
        dmap = sess.run(None, {name: preprocess(img)[None]})[0][0, 0]
        out.append(float(crop_to_image(dmap, Letterbox.fit(img.shape[1], img.shape[0], SIZE, SIZE)).sum()))
    return np.asarray(out)
