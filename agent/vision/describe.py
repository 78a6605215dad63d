"""A manifest from what an ONNX file says about itself: Ultralytics metadata and output layout.

Integrators drop their own exports on a gateway; Ultralytics writes ``names``, ``imgsz``, ``stride``,
``task``, ``head`` and ``end2end`` into the file, which is enough to run it as Ultralytics' own
predict does. A model folder's manifest may leave out whatever the file says; a layout that cannot
be run is refused with its name, never guessed into garbage.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Ultralytics' predict defaults, which its exports were tuned and checked with.
ULTRALYTICS_THRESHOLDS = {"confidence": 0.25, "iou": 0.7, "max_detections": 300}
UNSUPPORTED_TASKS = {
    "segment": "a segmentation export (boxes with mask coefficients and mask prototypes)",
    "pose": "a pose export (boxes with keypoints)",
    "obb": "an oriented-box export (rotated boxes)",
    "classify": "a classification export (one label per image, no boxes)",
    "semantic": "a semantic segmentation export (a class per pixel, no boxes)",
    "depth": "a depth export (a distance per pixel, no boxes)",
}


class LayoutError(ValueError):
    """An ONNX file whose outputs no adapter reads, or that cannot be described; says which layout."""


@dataclass(frozen=True)
class OnnxFacts:
    """Inputs, outputs (name, shape, onnxruntime type) and metadata of an opened session."""

    inputs: list[tuple[str, list[Any], str]]
    outputs: list[tuple[str, list[Any], str]]
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, session: Any) -> OnnxFacts:
        try:
            meta = dict(session.get_modelmeta().custom_metadata_map)
        except Exception:  # a file without metadata, or a provider that does not expose it
            meta = {}
        return cls(
            [(a.name, list(a.shape), a.type) for a in session.get_inputs()],
            [(a.name, list(a.shape), a.type) for a in session.get_outputs()],
            meta,
        )

    def literal(self, key: str) -> Any:
        """A metadata value written as a Python literal (Ultralytics' dicts, lists and bools)."""
        text = self.metadata.get(key)
        if text is None:
            return None
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text

    @property
    def task(self) -> str | None:
        return self.metadata.get("task")

    @property
    def head(self) -> str:
        return self.metadata.get("head", "")

    def classes(self) -> list[str] | None:
        names = self.literal("names")
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names)]
        if isinstance(names, list):
            return [str(v) for v in names]
        return None

    def is_rtdetr(self) -> bool:
        description = self.metadata.get("description", "").lower().replace("-", "")
        return self.head == "RTDETRDecoder" or "rtdetr" in description

    def nms_in_graph(self) -> bool:
        args = self.literal("args")
        return self.literal("end2end") is True or (isinstance(args, dict) and args.get("nms") is True)


def _dims(shape: list[Any]) -> list[int | None]:
    return [s if isinstance(s, int) and s > 0 else None for s in shape]


def guess_adapter(facts: OnnxFacts, n_classes: int | None) -> str:
    """The adapter that reads these outputs; ``LayoutError`` naming the layout if none does."""
    shapes = [_dims(s) for _, s, _ in facts.outputs]
    _refuse_other_tasks(facts, shapes)
    if len(shapes) != 1:
        raise LayoutError(f"{len(shapes)} outputs {shapes}: no adapter reads this layout")
    shape = shapes[0]
    if len(shape) == 4 and shape[1] == 1:
        return "density"
    if len(shape) != 3:
        raise LayoutError(f"output shape {shape}: no adapter reads this layout")
    if facts.is_rtdetr():
        return "rtdetr"
    if facts.nms_in_graph():
        return "yolo_nms"
    return _yolo_layout(facts, shape, n_classes)


def _refuse_other_tasks(facts: OnnxFacts, shapes: list[list[int | None]]) -> None:
    """Segmentation, pose and classification exports, refused by name before their outputs are read."""
    if facts.task in UNSUPPORTED_TASKS:
        raise LayoutError(
            f"this is {UNSUPPORTED_TASKS[facts.task]} (Ultralytics task '{facts.task}'); only detection "
            "and density models run here: export a detection model (task=detect)"
        )
    if facts.metadata.get("kpt_shape"):
        raise LayoutError(f"this is {UNSUPPORTED_TASKS['pose']}; only detection and density models run here")
    if len(shapes) == 2 and len(shapes[1]) == 4 and shapes[1][1] == 32:
        raise LayoutError(f"this is {UNSUPPORTED_TASKS['segment']}; export a detection model instead")


def _yolo_layout(facts: OnnxFacts, shape: list[int | None], n_classes: int | None) -> str:
    """Which YOLO head a [batch, a, b] output is: rows of boxes (v5, NMS) or columns of anchors (v8)."""
    a, b = shape[1], shape[2]
    if facts.task == "detect" and (a is None or b is None):
        # Dynamic Ultralytics detection exports: [batch, 4 + classes, anchors] (the v8 head).
        return "yolov8"
    if a is None or b is None:
        raise LayoutError(
            f"output shape {shape} is dynamic and the file has no Ultralytics metadata to say its layout; "
            "write a manifest naming the adapter"
        )
    if n_classes:
        if a == 4 + n_classes:
            return "yolov8"
        if b == 5 + n_classes:
            return "yolov5"
    if b == 6 and a > 6:
        return "yolo_nms"  # rows in pixels; the adapter refuses normalized (RT-DETR) rows by name
    if n_classes and a == 4 + n_classes + 32:
        raise LayoutError(f"this is {UNSUPPORTED_TASKS['segment']}; export a detection model instead")
    if a < b:  # YOLOv8/11: few rows (4 + classes), thousands of anchor columns
        return "yolov8"
    return "yolov5"


def _input_spec(facts: OnnxFacts, adapter: str, size: tuple[int, int] | None = None) -> dict[str, Any]:
    if len(facts.inputs) != 1:
        raise LayoutError(f"the model takes {len(facts.inputs)} inputs; one image input is supported")
    _, raw, kind = facts.inputs[0]
    shape = _dims(raw)
    if len(shape) != 4:
        raise LayoutError(f"input shape {raw} is not an image batch [N, C, H, W] or [N, H, W, C]")
    nhwc = shape[3] in (1, 3) and shape[1] not in (1, 3)
    channels = shape[3] if nhwc else shape[1]
    meta_channels = facts.literal("channels")
    if channels is None and isinstance(meta_channels, int):
        channels = meta_channels
    if channels not in (1, 3):
        raise LayoutError(
            f"input shape {raw}: {channels} channels; colour (3) and grayscale (1) are supported"
        )
    height, width = (shape[1], shape[2]) if nhwc else (shape[2], shape[3])
    imgsz = facts.literal("imgsz")
    if isinstance(imgsz, int):
        imgsz = [imgsz, imgsz]
    dynamic = height is None or width is None
    if dynamic and size is not None:
        width, height = size  # the manifest says the size the model was trained at
    elif dynamic:
        if not (isinstance(imgsz, list) and len(imgsz) == 2 and all(isinstance(v, int) for v in imgsz)):
            raise LayoutError(
                f"input shape {raw} is dynamic and the file has no 'imgsz' metadata; write a manifest with "
                "input.width and input.height (the size the model was trained at)"
            )
        height, width = imgsz
    dtype = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}.get(kind)
    if dtype is None:
        raise LayoutError(f"input type {kind}; float32, float16 and uint8 inputs are supported")
    spec: dict[str, Any] = {
        "width": width,
        "height": height,
        "layout": "NHWC" if nhwc else "NCHW",
        "color": "GRAY" if channels == 1 else "RGB",
        "dtype": dtype,
        "scale": 1.0 if dtype == "uint8" else 1 / 255,
        "pad_value": 114,
        "resize": "linear",  # Ultralytics' LetterBox resizes bilinearly
    }
    if adapter == "rtdetr":
        spec["fit"] = "stretch"
    elif dynamic:
        stride = facts.literal("stride")
        # Ultralytics' predict pads a dynamic model's input only to a multiple of the stride.
        if isinstance(stride, int) and stride > 0:
            spec["stride"] = stride
    return spec


def model_id(path: Path) -> str:
    ident = re.sub(r"[^a-z0-9_.-]+", "-", path.stem.lower()).strip("-._")
    return ident or "model"


def describe(
    facts: OnnxFacts,
    path: Path,
    digest: str,
    adapter: str | None = None,
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Manifest fields for an ONNX file from its metadata and layout (raises ``LayoutError``).

    ``adapter`` and ``size`` (width, height): what a manifest already says, which is not guessed.
    """
    classes = facts.classes()
    adapter = adapter or guess_adapter(facts, len(classes) if classes else None)
    fields: dict[str, Any] = {
        "id": model_id(path),
        "version": "0.0.0",
        "task": "density" if adapter == "density" else "detect",
        "adapter": adapter,
        "file": path.name,
        "sha256": digest,
        "input": _input_spec(facts, adapter, size),
        "thresholds": dict(ULTRALYTICS_THRESHOLDS),
    }
    if adapter != "density":
        fields["classes"] = classes or _count_classes(facts, adapter)
    return fields


def _count_classes(facts: OnnxFacts, adapter: str) -> list[str]:
    shape = _dims(facts.outputs[0][1])
    n = {"yolov8": (shape[1] or 4) - 4, "yolov5": (shape[2] or 5) - 5}.get(adapter)
    if not n or n < 1:
        raise LayoutError(
            f"output shape {facts.outputs[0][1]} does not say how many classes the model has and the file "
            "has no 'names' metadata; write a manifest listing the classes"
        )
    return [f"class{k}" for k in range(n)]


def complete(given: dict[str, Any], described: dict[str, Any]) -> dict[str, Any]:
    """A manifest's own fields over those the file describes; ``input`` and ``thresholds`` field by field."""
    out = {**described, **given}
    for key in ("input", "thresholds"):
        if isinstance(given.get(key), dict) and isinstance(described.get(key), dict):
            out[key] = {**described[key], **given[key]}
    return out


REQUIRED = ("id", "version", "task", "adapter", "file", "sha256", "input", "classes")


def needs_description(given: dict[str, Any]) -> bool:
    """Whether a manifest leaves out something only the model file can tell."""
    if given.get("task") == "density" and "classes" not in given:
        given = {**given, "classes": []}
    spec = given.get("input")
    sized = isinstance(spec, dict) and "width" in spec and "height" in spec
    return not sized or any(key not in given for key in REQUIRED)
