"""Run part of an ONNX graph (NanoDet's backbone and neck) as a torch module, so it can be fine-tuned.

Converters such as onnx2torch pull in torchvision, which has no CPU build matching our torch, so this
executes the few ops NanoDet's converted graph uses directly, with the graph's initializers as
Parameters (convolution weights, trainable if wanted) and plain Python values (pads, scales, splits).
Any other op is refused by name rather than run wrongly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn
from torch.nn import functional as F

SUPPORTED = {"Conv", "Pad", "LeakyRelu", "Concat", "Resize", "Add", "Split", "MaxPool"}


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def head_inputs(model: onnx.ModelProto, outputs: list[str], head_convs: int = 2) -> list[str]:
    """The tensor feeding each output's head: walk back ``head_convs`` convolutions, then over Pads.

    NanoDet's head per stride is Pad, 3x3 Conv, LeakyRelu, 1x1 Conv, then Split/Sigmoid/Reshape/
    Transpose; what feeds its first Pad is the neck's feature map for that stride."""
    producer = {o: n for n in model.graph.node for o in n.output}
    found = []
    for name in outputs:
        convs, tensor = 0, name
        while True:
            node = producer[tensor]
            if convs == head_convs and node.op_type != "Pad":
                break
            convs += node.op_type == "Conv"
            tensor = node.input[0]
        found.append(tensor)
    return found


class OnnxSubgraph(nn.Module):
    """The nodes of an ONNX graph that the ``targets`` depend on, run in graph order."""

    def __init__(self, path: Path | str, targets: list[str]) -> None:
        super().__init__()
        model = onnx.load(str(path))
        graph = model.graph
        inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        producer = {o: n for n in graph.node for o in n.output}
        needed, stack = set(), list(targets)
        while stack:  # every node some target depends on
            t = stack.pop()
            node = producer.get(t)
            if node is None or node.name in needed:
                continue
            needed.add(node.name)
            stack.extend(node.input)
        self.nodes = [n for n in graph.node if n.name in needed]
        bad = sorted({n.op_type for n in self.nodes} - SUPPORTED)
        if bad:
            raise NotImplementedError(
                f"{path}: ops {bad} are not supported by OnnxSubgraph ({sorted(SUPPORTED)})"
            )
        inputs = [i.name for i in graph.input if i.name not in inits]
        if len(inputs) != 1:
            raise ValueError(f"{path}: expected one graph input, found {inputs}")
        self.input_name, self.targets = inputs[0], list(targets)
        self.convs = nn.ModuleDict()
        self.consts: dict[str, np.ndarray] = inits  # non-weight constants (pads, scales, split sizes)
        for n in self.nodes:
            if n.op_type == "Conv":
                a = _attrs(n)
                w = inits[n.input[1]]
                conv = nn.Conv2d(
                    w.shape[1] * a.get("group", 1),
                    w.shape[0],
                    tuple(w.shape[2:]),
                    stride=tuple(a.get("strides", [1, 1])),
                    dilation=tuple(a.get("dilations", [1, 1])),
                    groups=a.get("group", 1),
                    bias=len(n.input) > 2,
                )
                if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
                    raise NotImplementedError(f"{n.name}: auto_pad {a['auto_pad']!r}")
                conv.weight.data.copy_(torch.from_numpy(w.copy()))
                if conv.bias is not None:
                    conv.bias.data.copy_(torch.from_numpy(inits[n.input[2]].copy()))
                conv.onnx_pads = list(a.get("pads", [0, 0, 0, 0]))  # begin h, w, end h, w
                self.convs[self._key(n)] = conv

    @staticmethod
    def _key(node: onnx.NodeProto) -> str:
        return node.name.replace(".", "_").replace("/", "_").replace(":", "_")

    def _const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None

    def _run(self, n: onnx.NodeProto, env: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        a = _attrs(n)
        x = env[n.input[0]]
        op = n.op_type
        if op == "Conv":
            conv = self.convs[self._key(n)]
            p = conv.onnx_pads
            if any(p):
                x = F.pad(x, (p[1], p[3], p[0], p[2]))
            return [conv(x)]
        if op == "Pad":
            pads = [int(v) for v in self._const(n.input[1])]
            value = self._const(n.input[2]) if len(n.input) > 2 else None
            mode = a.get("mode", b"constant").decode()
            rank = len(pads) // 2
            torch_pads: list[int] = []
            for d in reversed(range(rank)):  # torch lists the last dimension first
                torch_pads += [pads[d], pads[d + rank]]
            while len(torch_pads) > 4 and torch_pads[-2:] == [0, 0]:
                torch_pads = torch_pads[:-2]
            if mode == "constant":
                return [F.pad(x, torch_pads, value=float(value) if value is not None else 0.0)]
            return [F.pad(x, torch_pads, mode={"reflect": "reflect", "edge": "replicate"}[mode])]
        if op == "LeakyRelu":
            return [F.leaky_relu(x, a.get("alpha", 0.01))]
        if op == "Add":
            return [x + env[n.input[1]]]
        if op == "Concat":
            return [torch.cat([env[i] for i in n.input], dim=a["axis"])]
        if op == "Split":
            sizes = self._const(n.input[1]) if len(n.input) > 1 else a.get("split")
            if sizes is None:
                return list(torch.chunk(x, len(n.output), dim=a.get("axis", 0)))
            return list(torch.split(x, [int(s) for s in sizes], dim=a.get("axis", 0)))
        if op == "MaxPool":
            p = a.get("pads", [0, 0, 0, 0])
            if any(p):
                x = F.pad(x, (p[1], p[3], p[0], p[2]), value=float("-inf"))
            return [
                F.max_pool2d(
                    x,
                    a["kernel_shape"],
                    a.get("strides", a["kernel_shape"]),
                    ceil_mode=bool(a.get("ceil_mode", 0)),
                )
            ]
        if op == "Resize":
            return [self._resize(n, a, x)]
        raise NotImplementedError(op)  # unreachable: refused in __init__

    def _resize(self, n: onnx.NodeProto, a: dict, x: torch.Tensor) -> torch.Tensor:
        mode = a.get("mode", b"nearest").decode()
        ctm = a.get("coordinate_transformation_mode", b"half_pixel").decode()
        scales = self._const(n.input[2]) if len(n.input) > 2 else None
        sizes = self._const(n.input[3]) if len(n.input) > 3 else None
        if scales is None or scales.size == 0:
            if sizes is None:
                raise NotImplementedError(f"{n.name}: Resize needs constant scales or sizes")
            size = [int(s) for s in sizes[2:]]
            factor = None
        else:
            if list(scales[:2]) != [1.0, 1.0]:
                raise NotImplementedError(f"{n.name}: Resize over batch or channels")
            size, factor = None, [float(s) for s in scales[2:]]
        if mode == "linear" and ctm in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            return F.interpolate(
                x, size=size, scale_factor=factor, mode="bilinear", align_corners=ctm == "align_corners"
            )
        if mode == "nearest" and ctm == "asymmetric" and a.get("nearest_mode", b"floor") == b"floor":
            return F.interpolate(x, size=size, scale_factor=factor, mode="nearest")
        raise NotImplementedError(f"{n.name}: Resize mode {mode!r} with {ctm!r} coordinates")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        env = {self.input_name: x}
        for n in self.nodes:
            for name, value in zip(n.output, self._run(n, env), strict=False):
                env[name] = value
        return [env[t] for t in self.targets]


def with_outputs(path: Path | str, names: list[str]) -> onnx.ModelProto:
    """A copy of the model whose outputs are the named intermediate tensors (to compare against)."""
    model = onnx.load(str(path))
    del model.graph.output[:]
    for name in names:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return model
