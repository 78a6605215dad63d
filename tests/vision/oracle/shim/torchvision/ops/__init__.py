"""``torchvision.ops.nms`` as a torch operator over Ultralytics' ``TorchNMS.nms``.

It is registered as the operator torchvision defines (``torchvision::nms``), with the same ONNX
translation (``NonMaxSuppression``), so that ``nms=True`` exports put a real NMS in the graph instead
of a trace of one example's result.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

_LIB = torch.library.Library("torchvision", "DEF")
_LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def _nms_cpu(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    from ultralytics.utils.nms import TorchNMS

    return TorchNMS.nms(dets, scores, iou_threshold)


_LIB.impl("nms", _nms_cpu, "CPU")


@torch.library.register_fake("torchvision::nms")
def _nms_fake(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    n = torch.library.get_ctx().new_dynamic_size()
    return dets.new_empty(n, dtype=torch.int64)


def _nms_onnx(g: Any, boxes: Any, scores: Any, iou_threshold: Any) -> Any:
    from torch.onnx import symbolic_helper as sh

    iou_threshold = sh._maybe_get_const(iou_threshold, "f")
    boxes = sh._unsqueeze_helper(g, boxes, [0])
    scores = sh._unsqueeze_helper(g, sh._unsqueeze_helper(g, scores, [0]), [0])
    max_out = g.op("Constant", value_t=torch.tensor([sys.maxsize], dtype=torch.long))
    iou = g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float))
    selected = g.op("NonMaxSuppression", boxes, scores, max_out, iou)
    index = g.op("Constant", value_t=torch.tensor([2], dtype=torch.long))
    return sh._squeeze_helper(g, g.op("Gather", selected, index, axis_i=1), [1])


torch.onnx.register_custom_op_symbolic("torchvision::nms", _nms_onnx, 11)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    return torch.ops.torchvision.nms(boxes, scores, float(iou_threshold))
