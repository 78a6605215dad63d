"""street-issues' network, small enough for a gateway CPU: a YOLOv8-style detector (crowd-counter
from 2.0.0 is a head on NanoDet's backbone: ``crowd_head.py``).

It uses plain Conv-BN-ReLU blocks (ReLU quantizes to INT8 without loss and runs fast on CPU) that are
folded into single convolutions before export. The detector's export form decodes its own boxes, so
the ONNX output is exactly YOLOv8's ``[1, 4 + C, N]`` (cx, cy, w, h in input pixels, sigmoid scores).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

STRIDES = (8, 16, 32)


class ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x) if self.act else x


class Block(nn.Module):
    """A residual pair of 3x3 convs on half the channels, concatenated back (a small C2f)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        h = c // 2
        self.a = ConvBN(h, h)
        self.b = ConvBN(h, h)
        self.out = ConvBN(c + h, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        y = x2 + self.b(self.a(x2))
        return self.out(torch.cat([x1, x2, y], dim=1))


class Backbone(nn.Module):
    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        self.stem = nn.Sequential(ConvBN(3, c1, s=2), ConvBN(c1, c2, s=2), Block(c2))
        self.s8 = nn.Sequential(ConvBN(c2, c3, s=2), Block(c3))
        self.s16 = nn.Sequential(ConvBN(c3, c4, s=2), Block(c4))
        self.s32 = nn.Sequential(ConvBN(c4, c5, s=2), Block(c5))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s4 = self.stem(x)
        s8 = self.s8(s4)
        s16 = self.s16(s8)
        s32 = self.s32(s16)
        return s4, s8, s16, s32


class Detector(nn.Module):
    """Anchor-free detector on strides 8/16/32: per cell, distances to the box sides and class logits."""

    def __init__(self, num_classes: int, width: int, height: int, widths=(16, 32, 48, 96, 128)) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.width, self.height = width, height
        self.backbone = Backbone(widths)
        c3, c4, c5 = widths[2], widths[3], widths[4]
        n = 64
        self.lat5 = ConvBN(c5, n, 1)
        self.lat4 = ConvBN(c4, n, 1)
        self.lat3 = ConvBN(c3, n, 1)
        self.fuse4 = Block(n)
        self.fuse3 = Block(n)
        self.down3 = ConvBN(n, n, s=2)
        self.fuse4b = Block(n)
        self.down4 = ConvBN(n, n, s=2)
        self.fuse5b = Block(n)
        self.reg = nn.ModuleList(nn.Sequential(ConvBN(n, n), nn.Conv2d(n, 4, 1)) for _ in STRIDES)
        self.cls = nn.ModuleList(nn.Sequential(ConvBN(n, n), nn.Conv2d(n, num_classes, 1)) for _ in STRIDES)
        for head in self.cls:
            nn.init.constant_(head[-1].bias, -4.6)  # start at p = 0.01: almost every cell is background
        self.export_mode = False
        points, strides = anchor_points(width, height)
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("strides", strides, persistent=False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        _, s8, s16, s32 = self.backbone(x)
        p5 = self.lat5(s32)
        p4 = self.fuse4(self.lat4(s16) + F.interpolate(p5, scale_factor=2.0, mode="nearest"))
        p3 = self.fuse3(self.lat3(s8) + F.interpolate(p4, scale_factor=2.0, mode="nearest"))
        n4 = self.fuse4b(p4 + self.down3(p3))
        n5 = self.fuse5b(p5 + self.down4(n4))
        return [p3, n4, n5]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        feats = self.features(x)
        dist = torch.cat([r(f).flatten(2) for r, f in zip(self.reg, feats, strict=False)], dim=2)  # [B, 4, N]
        logits = torch.cat(
            [c(f).flatten(2) for c, f in zip(self.cls, feats, strict=False)], dim=2
        )  # [B, C, N]
        ltrb = F.softplus(dist) * self.strides  # distances in input pixels
        if not self.export_mode:
            return ltrb, logits
        px, py = self.points[0], self.points[1]
        x1, y1 = px - ltrb[:, 0], py - ltrb[:, 1]
        x2, y2 = px + ltrb[:, 2], py + ltrb[:, 3]
        box = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=1)
        return torch.cat([box, torch.sigmoid(logits)], dim=1)


def anchor_points(width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres ``[2, N]`` in input pixels and each cell's stride ``[1, N]``, level by level."""
    pts, strides = [], []
    for s in STRIDES:
        gy, gx = torch.meshgrid(
            torch.arange(height // s, dtype=torch.float32),
            torch.arange(width // s, dtype=torch.float32),
            indexing="ij",
        )
        pts.append(torch.stack([(gx.flatten() + 0.5) * s, (gy.flatten() + 0.5) * s]))
        strides.append(torch.full((1, gx.numel()), float(s)))
    return torch.cat(pts, dim=1), torch.cat(strides, dim=1)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ConvBN's batch norm into its convolution (in place) so export has bare Conv+ReLU."""
    for m in model.modules():
        if isinstance(m, ConvBN) and isinstance(m.bn, nn.BatchNorm2d):
            bn, conv = m.bn, m.conv
            std = torch.sqrt(bn.running_var + bn.eps)
            w = conv.weight * (bn.weight / std)[:, None, None, None]
            b = bn.bias - bn.running_mean * bn.weight / std
            fused = nn.Conv2d(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True
            )
            fused.weight.data.copy_(w.detach())
            fused.bias.data.copy_(b.detach())
            m.conv = fused
            m.bn = nn.Identity()
    return model
