"""The ONNX engine: one onnxruntime session per model folder, checked before any camera uses it.

Loading a model is: manifest valid → file sha256 matches → session opens → warm-up output fits the
adapter → golden image reproduced. Any failure raises ``ModelRefused`` with the reason; the cameras
using that model are disabled and the others keep running.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from ..events import ModelRef
from .adapters import AdapterError, get_adapter
from .describe import LayoutError, OnnxFacts, complete, describe, needs_description
from .detections import DensityMap, Detections, box_iou
from .manifest import (
    MANIFEST_NAME,
    ManifestError,
    ModelManifest,
    check_sha256,
    sha256_file,
    validate_manifest,
)
from .preprocess import Letterbox, Preprocessor

log = logging.getLogger(__name__)

# onnxruntime's names for the providers a technician may put in the config.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rknpu": "RknpuExecutionProvider",
}


class ModelRefused(RuntimeError):
    """A model that must not run: missing, corrupt, mismatched or misbehaving. Says why."""


@dataclass(frozen=True)
class EngineOptions:
    providers: tuple[str, ...] = ("cpu",)
    intra_op_threads: int = 0  # 0: onnxruntime decides (one per core)
    inter_op_threads: int = 1
    warmup_runs: int = 2
    self_test: bool = True
    # Worker threads that spin after a run answer the next one sooner (1-8 ms a frame on a busy
    # model) but burn the cores other cameras and capture threads need: on for one camera only.
    spinning: bool = False


def resolve_providers(wanted: Sequence[str]) -> list[str]:
    """Config names → onnxruntime provider names that are installed; CPU is always the last resort."""
    available = ort.get_available_providers()
    out = []
    for name in wanted:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full in available:
            out.append(full)
        else:
            log.warning("execution provider %s is not installed here; skipping it", name)
    if "CPUExecutionProvider" not in out:
        out.append("CPUExecutionProvider")
    return out


@dataclass
class EngineStats:
    runs: int = 0
    frames: int = 0
    total_ms: float = 0.0
    last_ms: float = 0.0

    def add(self, ms: float, frames: int) -> None:
        self.runs += 1
        self.frames += frames
        self.total_ms += ms
        self.last_ms = ms

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.runs if self.runs else 0.0


@dataclass
class ModelEngine:
    """One loaded model: its manifest, session and adapter. ``infer`` is safe to call from threads."""

    folder: Path
    manifest: ModelManifest
    session: ort.InferenceSession
    stats: EngineStats = field(default_factory=EngineStats)

    def __post_init__(self) -> None:
        self.adapter = get_adapter(self.manifest.adapter)
        self.ref = ModelRef.from_hex(self.manifest.id, self.manifest.version, self.manifest.sha256)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        batch = inp.shape[0] if inp.shape else 1
        # A fixed batch above 1 or a symbolic one lets cameras share one run; 1 means one frame a run.
        self.max_batch = batch if isinstance(batch, int) and batch > 0 else 8
        self.fixed_batch = isinstance(batch, int) and batch > 0
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._lock = threading.Lock()

    @property
    def is_density(self) -> bool:
        return self.manifest.task == "density"

    def preprocessor(self, batch: int = 1) -> Preprocessor:
        return Preprocessor(self.manifest.input, batch)

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run the session on a filled input tensor; returns the raw outputs."""
        started = time.perf_counter()
        outputs = self.session.run(self.output_names, {self.input_name: tensor})
        self.stats.add((time.perf_counter() - started) * 1000.0, tensor.shape[0])
        # FP16 exports: the adapters, NMS and thresholds work in float32.
        return [o.astype(np.float32) if o.dtype == np.float16 else o for o in outputs]

    def decode(
        self,
        outputs: Sequence[np.ndarray],
        box: Letterbox,
        slot: int = 0,
        manifest: ModelManifest | None = None,
    ) -> Detections | DensityMap:
        return self.adapter([o[slot : slot + 1] for o in outputs], box, manifest or self.manifest)

    def infer(
        self, frame: np.ndarray, prep: Preprocessor, manifest: ModelManifest | None = None
    ) -> Detections | DensityMap:
        """One frame through ``prep`` (the caller's buffers), the session and the adapter.

        ``manifest`` lets a camera use its own thresholds with the shared session.
        """
        return self.infer_prepared(prep, prep(frame), manifest)

    def infer_prepared(
        self, prep: Preprocessor, box: Letterbox, manifest: ModelManifest | None = None
    ) -> Detections | DensityMap:
        """Like ``infer`` on a frame ``prep`` already holds (models with the same input share it)."""
        return self.decode(self.run(self._batched(prep.tensor)), box, 0, manifest)

    def with_thresholds(self, per_class: dict[str, float]) -> ModelManifest:
        """The manifest with a camera's per-class confidence thresholds laid over it."""
        mine = {k: v for k, v in per_class.items() if k in self.manifest.labels}
        if not mine:
            return self.manifest
        merged = {**self.manifest.thresholds.per_class, **mine}
        thresholds = self.manifest.thresholds.model_copy(update={"per_class": merged})
        return self.manifest.model_copy(update={"thresholds": thresholds})

    def _batched(self, tensor: np.ndarray) -> np.ndarray:
        if self.fixed_batch and self.max_batch != tensor.shape[0]:
            padded = np.zeros((self.max_batch, *tensor.shape[1:]), tensor.dtype)
            padded[: tensor.shape[0]] = tensor
            return padded
        return tensor

    def class_id(self, label: str) -> int:
        return self.manifest.labels.index(label)


def open_session(path: Path, options: EngineOptions) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.intra_op_threads
    so.inter_op_num_threads = options.inter_op_threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    # Without spinning, onnxruntime's worker threads sleep right after each run instead of taking the
    # cores from the preprocessing, rules and capture threads that run between inferences.
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "1" if options.spinning else "0")
    return ort.InferenceSession(str(path), so, providers=resolve_providers(options.providers))


def locate_model(path: Path) -> tuple[Path, dict[str, Any] | None]:
    """The ONNX file and the manifest that describes it (None for a bare export)."""
    if path.is_file() and path.suffix.lower() == ".onnx":
        beside = path.parent / MANIFEST_NAME
        if beside.is_file():
            try:
                data = json.loads(beside.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ManifestError(f"{beside}: manifest cannot be read: {exc}") from None
            if isinstance(data, dict) and data.get("file") == path.name:
                return path, data
        return path, None
    where = path / MANIFEST_NAME if path.is_dir() else path
    if not where.is_file():
        raise ManifestError(f"{path}: no model manifest here (expected {MANIFEST_NAME}) nor an .onnx file")
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{where}: manifest cannot be read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("file"), str) or "sha256" not in data:
        raise ManifestError(
            f"{where}: invalid manifest: it must name its ONNX 'file' and that file's 'sha256' "
            "(everything else may come from the file's own metadata)"
        )
    return where.parent / data["file"], data


def manifest_for(
    onnx_path: Path, given: dict[str, Any] | None, session: ort.InferenceSession
) -> ModelManifest:
    """The manifest as given, completed from the file's metadata and layout where it is silent."""
    where = onnx_path.parent / MANIFEST_NAME if given is not None else onnx_path
    if given is not None and not needs_description(given):
        return validate_manifest(given, where)
    digest = sha256_file(onnx_path)
    given = given or {}
    given_input = given.get("input")
    spec: dict[str, Any] = given_input if isinstance(given_input, dict) else {}
    size = (spec["width"], spec["height"]) if "width" in spec and "height" in spec else None
    try:
        fields = describe(OnnxFacts.of(session), onnx_path, digest, given.get("adapter"), size)
    except LayoutError as exc:
        raise ManifestError(f"{onnx_path}: {exc}") from None
    return validate_manifest(complete(given, fields), where)


def load_engine(folder: str | Path, options: EngineOptions | None = None) -> ModelEngine:
    """Load and check a model folder or a bare ``.onnx`` export; ``ModelRefused`` names the problem."""
    options = options or EngineOptions()
    try:
        path, given = locate_model(Path(folder))
        if given is not None:
            check_sha256(path, str(given["sha256"]))
        elif not path.is_file():
            raise ManifestError(f"{path}: no such model file")
    except ManifestError as exc:
        raise ModelRefused(str(exc)) from None
    try:
        session = open_session(path, options)
    except Exception as exc:  # onnxruntime raises its own family for every kind of broken file
        raise ModelRefused(f"{path}: onnxruntime cannot load the model: {exc}") from None
    try:
        manifest = manifest_for(path, given, session)
    except ManifestError as exc:
        raise ModelRefused(str(exc)) from None
    try:
        engine = ModelEngine(path.parent, manifest, session)
    except AdapterError as exc:
        raise ModelRefused(f"{path}: {exc}") from None
    _check_input(engine, path)
    _warm_up(engine, path, options.warmup_runs)
    if options.self_test:
        self_test(engine)
    return engine


def _check_input(engine: ModelEngine, path: Path) -> None:
    inputs = engine.session.get_inputs()
    if len(inputs) != 1:
        raise ModelRefused(f"{path}: the model takes {len(inputs)} inputs; one image input is supported")
    spec = engine.manifest.input
    shape = inputs[0].shape
    ch = spec.channels
    want = (ch, spec.height, spec.width) if spec.layout == "NCHW" else (spec.height, spec.width, ch)
    if len(shape) != 4 or any(isinstance(s, int) and s != w for s, w in zip(shape[1:], want, strict=True)):
        raise ModelRefused(
            f"{path}: model input shape {shape} does not match the manifest's {spec.layout} "
            f"{spec.width}x{spec.height} {spec.color} input"
        )
    spatial = shape[1:3] if spec.layout == "NHWC" else shape[2:4]
    if spec.stride is not None and all(isinstance(s, int) for s in spatial):
        raise ModelRefused(
            f"{path}: the manifest's input.stride sizes the input to each frame's aspect, but this model's "
            f"input is fixed at {shape}; leave stride out"
        )
    expected = {"float32": "tensor(float)", "float16": "tensor(float16)", "uint8": "tensor(uint8)"}[
        spec.dtype
    ]
    if inputs[0].type != expected:
        raise ModelRefused(f"{path}: model input type {inputs[0].type} but the manifest says {spec.dtype}")


def _warm_up(engine: ModelEngine, path: Path, runs: int) -> None:
    """First runs allocate arenas and pick kernels; they also prove the outputs fit the adapter."""
    prep = engine.preprocessor()
    spec = engine.manifest.input
    frame = np.full((spec.height, spec.width, 3), spec.pad_value, np.uint8)
    for k in range(max(1, runs)):
        if k == 1 and spec.stride is not None:
            frame = frame[: max(spec.stride, spec.height // 2)]  # a wide frame: the other input shape
        try:
            engine.infer(frame, prep)
        except AdapterError as exc:
            raise ModelRefused(
                f"{path}: outputs do not fit adapter '{engine.manifest.adapter}': {exc}"
            ) from None
        except Exception as exc:
            raise ModelRefused(f"{path}: the model fails to run: {exc}") from None
    engine.stats = EngineStats()


def self_test(engine: ModelEngine) -> None:
    """Run the manifest's golden image; refuse the model unless it reproduces the expected result."""
    golden = engine.manifest.golden
    if golden is None:
        return
    where = engine.folder / golden.image
    image = cv2.imread(str(where), cv2.IMREAD_COLOR)
    if image is None:
        raise ModelRefused(f"{where}: golden image named by the manifest is missing or unreadable")
    try:
        result = engine.infer(image, engine.preprocessor())
    except AdapterError as exc:
        raise ModelRefused(f"{where}: golden self-test: {exc}") from None
    problems = golden_mismatches(engine.manifest, result)
    if problems:
        raise ModelRefused(
            f"{engine.folder}: golden self-test failed ({'; '.join(problems)}); the model does not "
            "behave as its manifest promises, so it is refused"
        )


def golden_mismatches(manifest: ModelManifest, result: Detections | DensityMap) -> list[str]:
    golden = manifest.golden
    assert golden is not None
    problems = []
    if isinstance(result, DensityMap):
        if golden.count is not None:
            tol = golden.count_tolerance * max(golden.count, 1.0)
            if abs(result.count - golden.count) > tol:
                problems.append(f"count {result.count:.1f}, expected {golden.count:.1f} ± {tol:.1f}")
        return problems
    for want in golden.detections:
        if want.label not in manifest.labels:
            problems.append(f"expected label {want.label!r} is not a class of the model")
            continue
        same = result[result.class_id == manifest.labels.index(want.label)]
        ious = box_iou(np.asarray([want.box], np.float32), same.xyxy)[0]
        best = float(ious.max()) if len(ious) else 0.0
        if best < want.min_iou:
            problems.append(
                f"{want.label} at {list(want.box)} not found (best IoU {best:.2f} < {want.min_iou})"
            )
    return problems


class ModelPool:
    """Engines by model folder, shared by the cameras; remembers why a folder was refused."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        self.engines: dict[Path, ModelEngine] = {}
        self.refused: dict[Path, str] = {}

    def get(self, folder: str | Path) -> ModelEngine:
        key = Path(folder).resolve()
        if key in self.engines:
            return self.engines[key]
        if key in self.refused:
            raise ModelRefused(self.refused[key])
        try:
            engine = load_engine(key, self.options)
        except ModelRefused as exc:
            self.refused[key] = str(exc)
            raise
        self.engines[key] = engine
        return engine
