"""The model manifest: what a model folder promises about its ONNX file.

Every model folder holds ``manifest.json``; the engine and ``edgectl model`` read it through this
model, so a folder that does not describe its model completely is refused before it is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ..trust.packages import sha256_file as sha256_file  # one file hash for manifests and packages

MANIFEST_NAME = "manifest.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color: Literal["RGB", "BGR", "GRAY"] = "RGB"
    dtype: Literal["float32", "float16", "uint8"] = "float32"
    scale: float = Field(default=1.0 / 255.0, gt=0, description="pixel * scale, then (x - mean) / std")
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pad_value: int = Field(default=114, ge=0, le=255, description="letterbox border grey level")
    # How frames are scaled into the input: as the model was trained (Ultralytics and NanoDet resize
    # bilinearly; a different filter moves boxes by pixels and scores by several hundredths).
    resize: Literal["linear", "area"] = "linear"
    # RT-DETR is trained on frames stretched to the input, YOLO on letterboxed ones.
    fit: Literal["letterbox", "stretch"] = "letterbox"
    stride: int | None = Field(
        default=None,
        gt=0,
        description="dynamic-shape models: pad only up to a multiple of this (Ultralytics' minimal "
        "letterbox), so the input follows the frame's aspect; width and height are then the largest size",
    )

    @model_validator(mode="after")
    def _fit_and_stride(self) -> InputSpec:
        if self.fit == "stretch" and self.stride is not None:
            raise ValueError("a stretched input has the model's size; stride applies to letterboxing only")
        return self

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3


class Thresholds(_Strict):
    confidence: float = Field(default=0.25, ge=0, le=1)
    # Ultralytics' predict defaults: what most integrators' own exports were tuned and checked with.
    iou: float = Field(default=0.7, ge=0, le=1, description="NMS overlap")
    max_detections: int = Field(default=300, ge=1, description="most detections kept per frame")
    per_class: dict[str, float] = Field(default_factory=dict, description="confidence per class")


class GoldenDetection(_Strict):
    label: str
    box: tuple[float, float, float, float] = Field(description="normalized x1, y1, x2, y2")
    min_iou: float = Field(default=0.5, ge=0, le=1)


class Golden(_Strict):
    """An image the model must reproduce at start through the exact preprocessing and adapter."""

    image: str
    detections: list[GoldenDetection] = Field(default_factory=list)
    count: float | None = Field(default=None, ge=0, description="expected count (density models)")
    count_tolerance: float = Field(default=0.15, ge=0, description="relative tolerance on the count")


class ModelManifest(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    version: str
    task: Literal["detect", "density"]
    adapter: str = Field(description="registered adapter name, e.g. yolov8, yolov5, yolo_nms, density")
    file: str = Field(description="ONNX file name inside the model folder")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: InputSpec
    classes: list[str] = Field(default_factory=list, description="the model's output classes, in order")
    merge: dict[str, list[str]] = Field(
        default_factory=dict,
        description="our label -> the model classes it stands for (e.g. vehicle: car, bus, truck)",
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)
    golden: Golden | None = None
    # other files of the package (FP32 variant, card), keyed by name, for `edgectl model verify`
    files: dict[str, str] = Field(default_factory=dict, description="file name -> sha256")

    _labels: list[str] = PrivateAttr(default_factory=list)
    _label_of: list[int] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _classes_for_detectors(self) -> ModelManifest:
        if self.task == "detect" and not self.classes:
            raise ValueError("a detection model must list its classes")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be unique")
        merged_into: dict[str, str] = {}
        for label, sources in self.merge.items():
            for name in sources:
                if name not in self.classes:
                    raise ValueError(f"merge.{label} names {name!r}, which is not one of the classes")
                if name in merged_into:
                    raise ValueError(
                        f"class {name!r} is merged into both {merged_into[name]!r} and {label!r}"
                    )
                merged_into[name] = label
        labels: list[str] = []
        for name in self.classes:
            label = merged_into.get(name, name)
            if label not in labels:
                labels.append(label)
        self._labels = labels
        self._label_of = [labels.index(merged_into.get(name, name)) for name in self.classes]
        unknown = sorted(set(self.thresholds.per_class) - set(labels))
        if unknown:
            raise ValueError(f"thresholds.per_class names labels the model does not have: {unknown}")
        return self

    @property
    def labels(self) -> list[str]:
        """What detections are called: the classes, with merged ones under their common label."""
        return self._labels

    @property
    def label_of_class(self) -> list[int]:
        """For each model class id, the index of its label in ``labels``."""
        return self._label_of


class ManifestError(ValueError):
    """A model folder or manifest that cannot be used; the message says what is wrong."""


def load_manifest(folder: str | Path) -> ModelManifest:
    folder = Path(folder)
    path = folder / MANIFEST_NAME if folder.is_dir() else folder
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no model manifest here (expected {MANIFEST_NAME})") from None
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: manifest cannot be read: {exc}") from None
    return validate_manifest(data, path)


def validate_manifest(data: object, where: str | Path) -> ModelManifest:
    """``data`` as a manifest; ``ManifestError`` naming each invalid field and ``where`` it came from."""
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise ManifestError(f"{where}: invalid manifest: {problems}") from None


def check_sha256(path: Path, expected: str) -> Path:
    """``path``, after checking that it exists and has the sha256 a manifest promises."""
    if not path.is_file():
        raise ManifestError(f"{path}: model file named by the manifest is missing")
    actual = sha256_file(path)
    if actual != expected:
        raise ManifestError(
            f"{path}: sha256 {actual[:16]}… does not match the manifest's {str(expected)[:16]}…; "
            "the file is corrupt or was replaced"
        )
    return path


def verify_model_file(folder: str | Path, manifest: ModelManifest) -> Path:
    """The model file's path, after checking that it exists and matches the manifest's sha256."""
    return check_sha256(Path(folder) / manifest.file, manifest.sha256)
