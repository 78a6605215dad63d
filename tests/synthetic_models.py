"""Small synthetic ONNX models in each adapter's layout, for the tests (test support, not shipped).

They let the whole pipeline run before the shipped models exist: a constant-output model gives a
known answer for every frame; a small random convolutional network costs real compute. Needs the
``onnx`` package (a dev dependency), imported only here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from agent.vision.manifest import MANIFEST_NAME, sha256_file

OPSET = 17


def _save(graph: Any, path: Path, metadata: dict[str, str] | None = None) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="street-edge"
    )
    model.ir_version = 8  # readable by every onnxruntime since 1.14
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def constant_model(
    path: Path,
    output: np.ndarray,
    width: int | str = 64,
    height: int | str = 64,
    batch: int | str = 1,
    dtype: str = "float32",
    channels: int = 3,
    metadata: dict[str, str] | None = None,
    output_shape: list[int | str] | None = None,
    nhwc: bool = False,
) -> Path:
    """A model that ignores its image and always outputs ``output`` (shape includes the batch of 1).

    The image still flows through a ReduceMean so that onnxruntime keeps the input. ``dtype``
    (float32, float16) is that of input and output, as in FP16 exports; a str width or height makes
    that dimension dynamic; ``metadata`` goes into the file as an exporter writes it; ``nhwc`` puts
    the channels last, as TensorFlow-born exports have them.
    """
    from onnx import TensorProto, helper, numpy_helper

    kind = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}[dtype]
    value = numpy_helper.from_array(output.astype(dtype), "value")
    zero = numpy_helper.from_array(np.zeros((), dtype), "zero")
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["value", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        [
            helper.make_tensor_value_info(
                "images", kind, [batch, height, width, channels] if nhwc else [batch, channels, height, width]
            )
        ],
        [helper.make_tensor_value_info("output0", kind, output_shape or list(output.shape))],
        initializer=[value, zero],
    )
    return _save(graph, path, metadata)


def identity_model(
    path: Path, width: int | str, height: int | str, dtype: str = "float32", channels: int = 3
) -> Path:
    """A model that outputs its input: shows the exact tensor the preprocessing fed it."""
    from onnx import TensorProto, helper

    kind = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "uint8": TensorProto.UINT8}[dtype]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output0"])],
        "identity",
        [helper.make_tensor_value_info("images", kind, [1, channels, height, width])],
        [helper.make_tensor_value_info("output0", kind, [1, channels, height, width])],
    )
    return _save(graph, path)


def conv_yolov8_model(path: Path, n_classes: int, size: int = 640, width: int = 32, seed: int = 0) -> Path:
    """A small random CNN with a YOLOv8 head layout ``[1, 4 + C, (size/8)²]``: real work per frame.

    Class logits are biased low so only a few cells pass a 0.25 threshold, as in a real street scene.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    channels = [3, width // 2, width, width * 2]
    x = "images"
    for k in range(3):
        w = rng.normal(0, (2.0 / (9 * channels[k])) ** 0.5, (channels[k + 1], channels[k], 3, 3))
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"w{k}"))
        nodes.append(helper.make_node("Conv", [x, f"w{k}"], [f"c{k}"], strides=[2, 2], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{k}"], [f"r{k}"]))
        x = f"r{k}"
    out_ch = 4 + n_classes
    head = rng.normal(0, 0.05, (out_ch, channels[3], 1, 1)).astype(np.float32)
    bias = np.zeros(out_ch, np.float32)
    bias[4:] = -4.5
    inits += [numpy_helper.from_array(head, "wh"), numpy_helper.from_array(bias, "bh")]
    cells = (size // 8) ** 2
    scale = np.ones((1, out_ch, 1), np.float32)
    scale[0, :4, 0] = size  # boxes in input pixels
    inits += [
        numpy_helper.from_array(np.asarray([1, out_ch, cells], np.int64), "shape"),
        numpy_helper.from_array(scale, "scale"),
    ]
    nodes += [
        helper.make_node("Conv", [x, "wh", "bh"], ["h"]),
        helper.make_node("Reshape", ["h", "shape"], ["flat"]),
        helper.make_node("Sigmoid", ["flat"], ["sig"]),
        helper.make_node("Mul", ["sig", "scale"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_yolov8",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, out_ch, cells])],
        initializer=inits,
    )
    return _save(graph, path)


def conv_density_model(path: Path, size: int = 640, width: int = 16, seed: int = 1) -> Path:
    """A small random CNN with a density-map output ``[1, 1, size/8, size/8]`` (non-negative)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    channels = [3, width, width, width]
    x = "images"
    for k in range(3):
        w = rng.normal(0, (2.0 / (9 * channels[k])) ** 0.5, (channels[k + 1], channels[k], 3, 3))
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"w{k}"))
        nodes.append(helper.make_node("Conv", [x, f"w{k}"], [f"c{k}"], strides=[2, 2], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{k}"], [f"r{k}"]))
        x = f"r{k}"
    head = rng.normal(0, 0.01, (1, width, 1, 1)).astype(np.float32)
    inits.append(numpy_helper.from_array(head, "wh"))
    nodes += [helper.make_node("Conv", [x, "wh"], ["h"]), helper.make_node("Relu", ["h"], ["output0"])]
    cells = size // 8
    graph = helper.make_graph(
        nodes,
        "conv_density",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 1, cells, cells])],
        initializer=inits,
    )
    return _save(graph, path)


def write_manifest(folder: Path, model_file: str, **fields: Any) -> Path:
    """manifest.json for ``folder/model_file`` with its real sha256; ``fields`` fill the rest."""
    manifest = {
        "id": "synthetic",
        "version": "0.0.1",
        "task": "detect",
        "adapter": "yolov8",
        "file": model_file,
        "sha256": sha256_file(folder / model_file),
        "input": {"width": 64, "height": 64},
        **fields,
    }
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path


def yolov8_rows(boxes_px: list[tuple[float, float, float, float]], scores: list[list[float]]) -> np.ndarray:
    """A YOLOv8 output ``[1, 4 + C, N]`` from x1, y1, x2, y2 input-pixel boxes and per-class scores."""
    b = np.asarray(boxes_px, np.float32).reshape(-1, 4)
    xywh = np.stack(
        ((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), 1
    )
    return np.concatenate((xywh, np.asarray(scores, np.float32)), axis=1).T[None].astype(np.float32)
