"""NanoDet's box decoding appended to its ONNX graph, so the runtime sees one YOLOv8-layout output.

NanoDet-g gives, per stride (8, 16, 32), class scores (sigmoid already applied) and for each box
side a distribution over ``reg_max + 1`` bins; a side's distance is ``stride * E[bin]`` under the
softmax, measured from the cell centre ``(cell + 0.5) * stride``. The appended nodes compute that
and emit ``[1, 4 + C, N]`` rows of cx, cy, w, h (input pixels) and class scores, which the agent's
``yolov8`` adapter reads like any Ultralytics export.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUTPUT = "output0"


def _centres(size: int, stride: int) -> np.ndarray:
    cells = size // stride
    rows, cols = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
    # row-major cell order, as the head flattens its feature map
    xy = np.stack([(cols.reshape(-1) + 0.5) * stride, (rows.reshape(-1) + 0.5) * stride], axis=1)
    return xy[None].astype(np.float32)


def append_decode(
    model: onnx.ModelProto,
    score_outputs: list[str],
    box_outputs: list[str],
    strides: list[int],
    input_size: int,
    reg_max: int,
) -> onnx.ModelProto:
    """A copy of ``model`` whose only output is the decoded ``[1, 4 + C, N]`` tensor."""
    graph = model.graph
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    bins = const("dec/bins", np.arange(reg_max + 1, dtype=np.float32).reshape(-1, 1))
    dists, centres = [], []
    for i, (reg, stride) in enumerate(zip(box_outputs, strides, strict=True)):
        n = (input_size // stride) ** 2
        shape4 = const(f"dec/shape4_{i}", np.asarray([1, n, 4, reg_max + 1], np.int64))
        shape3 = const(f"dec/shape3_{i}", np.asarray([1, n, 4], np.int64))
        s = const(f"dec/stride_{i}", np.asarray(stride, np.float32))
        p = f"dec/{i}"
        nodes += [
            helper.make_node("Reshape", [reg, shape4], [f"{p}/bins"]),
            helper.make_node("Softmax", [f"{p}/bins"], [f"{p}/prob"], axis=-1),
            helper.make_node("MatMul", [f"{p}/prob", bins], [f"{p}/expect"]),
            helper.make_node("Reshape", [f"{p}/expect", shape3], [f"{p}/ltrb_cells"]),
            helper.make_node("Mul", [f"{p}/ltrb_cells", s], [f"{p}/ltrb"]),
        ]
        dists.append(f"{p}/ltrb")
        centres.append(const(f"dec/centre_{i}", _centres(input_size, stride)))
    nodes += [
        helper.make_node("Concat", dists, ["dec/ltrb"], axis=1),
        helper.make_node("Concat", centres, ["dec/centre"], axis=1),
        helper.make_node("Concat", score_outputs, ["dec/scores"], axis=1),
    ]
    lo, mid, hi, axis = (
        const(f"dec/{k}", np.asarray(v, np.int64))
        for k, v in (("lo", [0]), ("mid", [2]), ("hi", [4]), ("axis", [2]))
    )
    half = const("dec/half", np.asarray(0.5, np.float32))
    nodes += [
        helper.make_node("Slice", ["dec/ltrb", lo, mid, axis], ["dec/lt"]),
        helper.make_node("Slice", ["dec/ltrb", mid, hi, axis], ["dec/rb"]),
        # centre of the box: cell centre + (right - left, bottom - top) / 2; size: left + right, ...
        helper.make_node("Sub", ["dec/rb", "dec/lt"], ["dec/shift2"]),
        helper.make_node("Mul", ["dec/shift2", half], ["dec/shift"]),
        helper.make_node("Add", ["dec/centre", "dec/shift"], ["dec/cxcy"]),
        helper.make_node("Add", ["dec/lt", "dec/rb"], ["dec/wh"]),
        helper.make_node("Concat", ["dec/cxcy", "dec/wh", "dec/scores"], ["dec/rows"], axis=2),
        helper.make_node("Transpose", ["dec/rows"], [OUTPUT], perm=[0, 2, 1]),
    ]
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(inits)
    n_classes = _last_dim(graph, score_outputs[0])
    n_boxes = sum((input_size // s) ** 2 for s in strides)
    del out.graph.output[:]
    out.graph.output.append(
        helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, 4 + n_classes, n_boxes])
    )
    onnx.checker.check_model(out)
    return out


def _last_dim(graph: onnx.GraphProto, name: str) -> int:
    for o in graph.output:
        if o.name == name:
            return o.type.tensor_type.shape.dim[-1].dim_value
    raise ValueError(f"{name} is not an output of the graph")
