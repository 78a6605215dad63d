"""``torchvision.ops.nms`` through Ultralytics' ``TorchNMS.nms``."""

from __future__ import annotations

from typing import Any


def nms(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    from ultralytics.utils.nms import TorchNMS

    return TorchNMS.nms(boxes, scores, iou_threshold)
