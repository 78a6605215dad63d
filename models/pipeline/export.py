"""ONNX export and INT8 static quantization.

INT8 uses onnxruntime's QDQ format with calibration on rendered frames, per-channel weights, and keeps
float32 inputs and outputs, so the runtime feeds both variants the same tensors.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from models.pipeline.nets import fold_batchnorm

OPSET = 17


def export_onnx(model: torch.nn.Module, path: Path, width: int, height: int, output_name: str) -> None:
    """Export in inference form (batch norm folded, decoding inside), batch 1, fixed input size."""
    m = fold_batchnorm(copy.deepcopy(model).eval())
    m.export_mode = True
    dummy = torch.zeros(1, 3, height, width)
    with torch.no_grad():
        torch.onnx.export(
            m,
            (dummy,),
            str(path),
            input_names=["images"],
            output_names=[output_name],
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)))


class _Frames(CalibrationDataReader):
    def __init__(self, tensors: np.ndarray, input_name: str) -> None:
        self._it = iter([{input_name: t[None].astype(np.float32)} for t in tensors])

    def get_next(self) -> dict | None:
        return next(self._it, None)


def quantize_int8(
    fp32: Path, int8: Path, calibration: np.ndarray, *, exclude: list[str] | None = None
) -> None:
    """Static QDQ INT8 from ``calibration`` (``[N, 3, H, W]`` float32 in 0..1, letterboxed frames)."""
    pre = int8.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    try:
        quantize_static(
            str(pre),
            str(int8),
            _Frames(calibration, "images"),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.Percentile,
            nodes_to_exclude=exclude or [],
            extra_options={"CalibPercentile": 99.99},
        )
    finally:
        pre.unlink(missing_ok=True)


def tail_nodes(path: Path, *, include_last_convs: bool) -> list[str]:
    """Nodes downstream of the output convolutions (box decoding, sigmoid, density scaling).

    They stay in float: they are cheap, and 8-bit steps there would move box edges by pixels or
    round small density values to zero. ``include_last_convs`` also keeps those convolutions float.
    """
    graph = onnx.load(str(path)).graph
    consumers: dict[str, list] = {}
    for n in graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    outputs = {o.name for o in graph.output}

    # an output conv is one from which no other conv is reachable
    def reaches_conv(node, seen) -> bool:
        for out in node.output:
            for nxt in consumers.get(out, []):
                if id(nxt) in seen:
                    continue
                seen.add(id(nxt))
                if nxt.op_type == "Conv" or reaches_conv(nxt, seen):
                    return True
        return False

    last_convs = [n for n in graph.node if n.op_type == "Conv" and not reaches_conv(n, set())]
    tail, stack = set(), [o for n in last_convs for o in n.output]
    while stack:
        for nxt in consumers.get(stack.pop(), []):
            if nxt.name not in tail:
                tail.add(nxt.name)
                stack.extend(nxt.output)
    if include_last_convs:
        tail |= {n.name for n in last_convs}
    assert outputs, "graph has no outputs"
    return sorted(tail)
