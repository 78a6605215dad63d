"""Integrators' own exports: every layout decoded as its exporter's predict does, checked against a
reference decode written here from Ultralytics' algorithm, on real onnxruntime sessions."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic_models import constant_model, identity_model, write_manifest

from agent.config.camera import TrackerConfig, VisionConfig
from agent.vision.detections import Detections
from agent.vision.engine import EngineOptions, ModelRefused, load_engine, open_session
from agent.vision.manifest import InputSpec, sha256_file
from agent.vision.part import engine_options
from agent.vision.preprocess import Preprocessor
from agent.vision.tracker import Tracker

NAMES = ["person", "bicycle", "garbage"]
FRAME_W, FRAME_H = 200, 120  # letterboxed into 64x64: scale 0.32, 12.8 px of grey above and below


def ultralytics_meta(**extra: object) -> dict[str, str]:
    """Metadata as Ultralytics' exporter writes it: Python literals as strings."""
    meta = {
        "task": "detect",
        "head": "Detect",
        "stride": "32",
        "imgsz": "[64, 64]",
        "names": repr(dict(enumerate(NAMES))),
        "end2end": "False",
        "channels": "3",
        "args": "{'nms': None, 'dynamic': False}",
        "description": "Ultralytics YOLOv8n model",
    }
    meta.update({k: str(v) for k, v in extra.items()})
    return meta


def bare(tmp_path: Path, output: np.ndarray, name: str = "export.onnx", **kwargs: object) -> Path:
    path = tmp_path / name
    constant_model(path, output, **kwargs)  # type: ignore[arg-type]
    return path


def frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (FRAME_H, FRAME_W, 3), np.uint8)


# --- the reference: Ultralytics' predict, step by step, in plain numpy --------------------------


def ref_letterbox(shape: tuple[int, int], size: tuple[int, int], auto: bool = False, stride: int = 32):
    """Gain and padding of Ultralytics' LetterBox (centre, scaleup) for an (h, w) image."""
    h0, w0 = shape
    r = min(size[0] / h0, size[1] / w0)
    new_w, new_h = round(w0 * r), round(h0 * r)
    dw, dh = size[1] - new_w, size[0] - new_h
    if auto:
        dw, dh = dw % stride, dh % stride
    return r, (new_w, new_h), round(dw / 2 - 0.1), round(dh / 2 - 0.1), (new_w + dw, new_h + dh)


def ref_image(
    img: np.ndarray, size: tuple[int, int], auto: bool = False, stretch: bool = False
) -> np.ndarray:
    """Ultralytics' preprocessed image (HWC, BGR, uint8) before it becomes a tensor."""
    if stretch:
        return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    _, (new_w, new_h), left, top, (out_w, out_h) = ref_letterbox(img.shape[:2], size, auto)
    if (img.shape[1], img.shape[0]) != (new_w, new_h):
        img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return cv2.copyMakeBorder(
        img, top, out_h - new_h - top, left, out_w - new_w - left, cv2.BORDER_CONSTANT, value=(114, 114, 114)
    )


def ref_nms(xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS per class, strongest first; suppresses IoU above ``iou``."""
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        ok = True
        for j in keep:
            if classes[j] != classes[i]:
                continue
            x1, y1 = np.maximum(xyxy[i, :2], xyxy[j, :2])
            x2, y2 = np.minimum(xyxy[i, 2:], xyxy[j, 2:])
            inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
            union = np.prod(xyxy[i, 2:] - xyxy[i, :2]) + np.prod(xyxy[j, 2:] - xyxy[j, :2]) - inter
            if inter / union > iou:
                ok = False
                break
        if ok:
            keep.append(int(i))
    return np.asarray(keep, np.int64)


def xywh2xyxy(b: np.ndarray) -> np.ndarray:
    return np.concatenate((b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2), axis=1)


def ref_to_image(xyxy: np.ndarray, img_shape: tuple[int, int], size=(64, 64)) -> np.ndarray:
    """Ultralytics' scale_boxes: input pixels → original pixels, clipped; then normalized here.

    It divides by the gain of each axis's rounded resized size, as LetterBox rounds each side."""
    _, (new_w, new_h), left, top, _ = ref_letterbox(img_shape, size)
    gain = np.asarray([new_w / img_shape[1], new_h / img_shape[0]] * 2)
    out = (xyxy - [left, top, left, top]) / gain
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, img_shape[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, img_shape[0])
    return out / [img_shape[1], img_shape[0], img_shape[1], img_shape[0]]


def ref_yolov8(out: np.ndarray, conf=0.25, iou=0.7, max_det=300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = out[0].T  # (N, 4 + C)
    cls_scores = rows[:, 4:]
    best, cls = cls_scores.max(1), cls_scores.argmax(1)
    keep = best > conf
    xyxy, best, cls = xywh2xyxy(rows[keep, :4]), best[keep], cls[keep]
    idx = ref_nms(xyxy, best, cls, iou)[:max_det]
    return ref_to_image(xyxy[idx], (FRAME_H, FRAME_W)), best[idx], cls[idx]


def assert_same(dets: Detections, ref: tuple[np.ndarray, np.ndarray, np.ndarray], atol: float = 1e-5) -> None:
    boxes, scores, classes = ref
    order = np.argsort(-scores, kind="stable")
    assert len(dets) == len(scores) > 0
    np.testing.assert_allclose(dets.confidence, scores[order], rtol=1e-6, atol=atol)
    assert dets.class_id.tolist() == classes[order].tolist()
    np.testing.assert_allclose(dets.xyxy, boxes[order], atol=max(atol, 1e-5))


def random_v8(n: int = 400, seed: int = 1, size: int = 64) -> np.ndarray:
    """Clustered boxes (so NMS has work) with random class scores, as a v8 head gives them."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(8, size - 8, (12, 2))
    cxcy = centres[rng.integers(0, 12, n)] + rng.normal(0, 1.5, (n, 2))
    wh = rng.uniform(4, 20, (n, 2))
    scores = rng.uniform(0, 1, (n, len(NAMES))) ** 3
    return np.concatenate((cxcy, wh, scores), 1).T[None].astype(np.float32)


# --- layouts ----------------------------------------------------------------------------------


def test_yolov8_export_matches_the_reference_decode(tmp_path: Path) -> None:
    out = random_v8()
    engine = load_engine(bare(tmp_path, out, metadata=ultralytics_meta()))
    assert (engine.manifest.adapter, engine.manifest.classes) == ("yolov8", NAMES)
    assert_same(engine.infer(frame(), engine.preprocessor()), ref_yolov8(out))


def test_the_cap_keeps_the_strongest_as_ultralytics_max_det_does(tmp_path: Path) -> None:
    out = random_v8(3000, seed=4)
    path = bare(tmp_path, out, metadata=ultralytics_meta())
    folder = tmp_path / "capped"
    folder.mkdir()
    (folder / path.name).write_bytes(path.read_bytes())
    write_manifest(
        folder,
        path.name,
        adapter="yolov8",
        classes=NAMES,
        input={"width": 64, "height": 64},
        thresholds={"confidence": 0.05, "iou": 0.9, "max_detections": 40},
    )
    engine = load_engine(folder)
    dets = engine.infer(frame(), engine.preprocessor())
    assert len(dets) == 40
    assert_same(dets, ref_yolov8(out, conf=0.05, iou=0.9, max_det=40))


def test_yolov5_objectness_export_matches_the_reference(tmp_path: Path) -> None:
    v8 = random_v8(300, seed=2)[0].T
    obj = np.random.default_rng(3).uniform(0, 1, (len(v8), 1))
    rows = np.concatenate((v8[:, :4], obj, v8[:, 4:]), 1)[None].astype(np.float32)
    engine = load_engine(bare(tmp_path, rows, metadata={"names": repr(dict(enumerate(NAMES)))}))
    assert engine.manifest.adapter == "yolov5"
    final = rows[0, :, 5:] * rows[0, :, 4:5]  # YOLOv5: class score x objectness
    ref_input = np.concatenate((rows[0, :, :4], final), 1).T[None]
    assert_same(engine.infer(frame(), engine.preprocessor()), ref_yolov8(ref_input))


def test_nms_in_graph_export_rows_are_kept_as_given(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 40, (300, 2))
    rows = np.concatenate(
        (
            xy,
            xy + rng.uniform(2, 20, (300, 2)),
            rng.uniform(0, 1, (300, 1)) ** 2,
            rng.integers(0, 3, (300, 1)),
        ),
        1,
    )
    rows = rows[np.argsort(-rows[:, 4])][None].astype(np.float32)
    engine = load_engine(bare(tmp_path, rows, metadata=ultralytics_meta(end2end=True)))
    assert engine.manifest.adapter == "yolo_nms"
    keep = rows[0, :, 4] > 0.25  # Ultralytics end2end: pred[pred[:, 4] > conf][:max_det], no NMS
    ref = (
        ref_to_image(rows[0, keep, :4], (FRAME_H, FRAME_W)),
        rows[0, keep, 4],
        rows[0, keep, 5].astype(int),
    )
    assert_same(engine.infer(frame(), engine.preprocessor()), ref)


def test_rtdetr_export_is_stretched_and_its_normalized_boxes_decoded(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    cxcy, wh = rng.uniform(0.1, 0.9, (300, 2)), rng.uniform(0.02, 0.3, (300, 2))
    rows = np.concatenate((cxcy, wh, rng.uniform(0, 1, (300, 1)) ** 2, rng.integers(0, 3, (300, 1))), 1)
    rows = rows[None].astype(np.float32)
    meta = ultralytics_meta(head="RTDETRDecoder", description="Ultralytics rtdetr-l model")
    engine = load_engine(bare(tmp_path, rows, metadata=meta))
    assert (engine.manifest.adapter, engine.manifest.input.fit) == ("rtdetr", "stretch")
    prep = engine.preprocessor()
    image = frame()
    dets = engine.infer(image, prep)
    # The input is the frame stretched to 64x64, exactly as RT-DETR's predictor resizes it.
    want = ref_image(image, (64, 64), stretch=True)[:, :, ::-1].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(prep.tensor[0], want, atol=1e-6)
    keep = rows[0, :, 4] > 0.25
    xyxy = xywh2xyxy(rows[0, keep, :4]).clip(0, 1)  # normalized to the input is normalized to the frame
    assert_same(dets, (xyxy, rows[0, keep, 4], rows[0, keep, 5].astype(int)))


def test_rtdetr_rows_decoded_as_pixels_are_refused_naming_rtdetr(tmp_path: Path) -> None:
    rows = np.asarray([[[0.5, 0.5, 0.2, 0.2, 0.9, 1]] * 10], np.float32)
    path = bare(tmp_path, rows, metadata={"names": repr(dict(enumerate(NAMES)))})  # no head: guessed nms rows
    with pytest.raises(ModelRefused, match=r"normalized .* adapter 'rtdetr'"):
        load_engine(path)


# --- dynamic shapes, FP16, grayscale ------------------------------------------------------------


def test_dynamic_export_takes_imgsz_and_pads_to_the_stride(tmp_path: Path) -> None:
    out = random_v8()
    path = bare(
        tmp_path,
        out,
        width="width",
        height="height",
        batch="batch",
        metadata=ultralytics_meta(imgsz="[64, 64]", args="{'dynamic': True}"),
        output_shape=["batch", "dim1", "anchors"],
    )
    engine = load_engine(path)
    spec = engine.manifest.input
    assert (spec.width, spec.height, spec.stride) == (64, 64, 32)
    prep = engine.preprocessor()
    dets = engine.infer(frame(), prep)
    # 200x120 at 0.32 is 64x38; Ultralytics' minimal letterbox pads 38 to 64 (the next multiple of 32).
    *_, (w, h) = ref_letterbox((FRAME_H, FRAME_W), (64, 64), auto=True)
    assert prep.tensor.shape == (1, 3, h, w) == (1, 3, 64, 64)
    wide = np.zeros((100, 400, 3), np.uint8)  # 64x16, padded to 64x32: the buffers follow the frame
    engine.infer(wide, prep)
    assert prep.tensor.shape[2:] == ref_letterbox((100, 400), (64, 64), auto=True)[4][::-1] == (32, 64)
    assert len(dets) > 0


def test_minimal_letterbox_tensor_is_ultralytics_own(tmp_path: Path) -> None:
    session = open_session(identity_model(tmp_path / "id.onnx", "w", "h"), EngineOptions())
    spec = InputSpec(width=96, height=96, stride=32)
    prep = Preprocessor(spec)
    image = np.random.default_rng(7).integers(0, 255, (333, 500, 3), np.uint8)
    prep(image)
    (got,) = session.run(None, {"images": prep.tensor})
    want = ref_image(image, (96, 96), auto=True)[:, :, ::-1].transpose(2, 0, 1) / 255.0
    assert got.shape[1:] == want.shape
    np.testing.assert_allclose(got[0], want, atol=1e-6)


def test_fp16_export_runs_with_float16_input_and_output(tmp_path: Path) -> None:
    out = random_v8().astype(np.float16)
    engine = load_engine(bare(tmp_path, out, dtype="float16", metadata=ultralytics_meta()))
    assert engine.manifest.input.dtype == "float16"
    prep = engine.preprocessor()
    dets = engine.infer(frame(), prep)
    assert prep.tensor.dtype == np.float16
    assert_same(dets, ref_yolov8(out.astype(np.float32)), atol=1e-3)


def test_fp16_and_grayscale_input_tensors(tmp_path: Path) -> None:
    image = frame(8)
    session = open_session(identity_model(tmp_path / "h.onnx", 64, 64, "float16"), EngineOptions())
    prep = Preprocessor(InputSpec(width=64, height=64, dtype="float16"))
    prep(image)
    (got,) = session.run(None, {"images": prep.tensor})
    want = ref_image(image, (64, 64))[:, :, ::-1].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(got[0].astype(np.float32), want, atol=1e-3)
    session = open_session(identity_model(tmp_path / "g.onnx", 64, 64, channels=1), EngineOptions())
    prep = Preprocessor(InputSpec(width=64, height=64, color="GRAY"))
    prep(image)
    (got,) = session.run(None, {"images": prep.tensor})
    gray = ref_image(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None].repeat(3, 2), (64, 64))[:, :, 0]
    np.testing.assert_allclose(got[0, 0], gray / 255.0, atol=1e-6)


def test_grayscale_export_is_described_and_runs(tmp_path: Path) -> None:
    out = random_v8()
    engine = load_engine(bare(tmp_path, out, channels=1, metadata=ultralytics_meta(channels=1)))
    assert engine.manifest.input.color == "GRAY"
    assert_same(engine.infer(frame(), engine.preprocessor()), ref_yolov8(out))


# --- refusals that name the layout --------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "meta", "problem"),
    [
        (56, {"task": "pose", "kpt_shape": "[17, 3]", "names": "{0: 'person'}"}, "pose export"),
        (84, {"task": "obb"}, "oriented-box export"),
        (84, {"task": "classify"}, "classification export"),
        (116, {"task": "segment"}, "segmentation export"),
    ],
)
def test_other_tasks_are_refused_by_name(tmp_path: Path, rows: int, meta: dict, problem: str) -> None:
    path = bare(tmp_path, np.zeros((1, rows, 84), np.float32), metadata=meta)
    with pytest.raises(ModelRefused, match=problem):
        load_engine(path)


def test_pose_output_under_a_detection_manifest_is_named(make_model) -> None:
    folder = make_model(np.zeros((1, 56, 84), np.float32), adapter="yolov8", classes=["person"])
    with pytest.raises(ModelRefused, match=r"17 keypoints .* pose export"):
        load_engine(folder)


def test_segmentation_outputs_without_metadata_are_named(tmp_path: Path) -> None:
    import synthetic_models as synthetic
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Identity", ["images"], ["output1"]),
        helper.make_node("Identity", ["images"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "seg",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 32, 16, 16])],
        [
            helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 32, 16, 16]),
            helper.make_tensor_value_info("output1", TensorProto.FLOAT, [1, 32, 16, 16]),
        ],
    )
    path = synthetic._save(graph, tmp_path / "seg.onnx")
    with pytest.raises(ModelRefused, match="segmentation export"):
        load_engine(path)


# --- manifests that leave out what the file says ------------------------------------------------


def test_a_folder_manifest_may_leave_out_what_the_metadata_says(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    path = bare(folder, random_v8(), name="best.onnx", metadata=ultralytics_meta())
    manifest = {
        "file": "best.onnx",
        "sha256": sha256_file(path),
        "id": "city-bins",
        "version": "2.1",
        "input": {"resize": "area"},
        "thresholds": {"confidence": 0.4},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    m = load_engine(folder).manifest
    assert (m.id, m.version, m.classes, m.adapter) == ("city-bins", "2.1", NAMES, "yolov8")
    assert (m.input.width, m.input.resize, m.thresholds.confidence, m.thresholds.iou) == (
        64,
        "area",
        0.4,
        0.7,
    )


def test_a_folder_manifest_still_needs_the_file_hash(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    bare(folder, random_v8(), name="best.onnx", metadata=ultralytics_meta())
    (folder / "manifest.json").write_text(json.dumps({"file": "best.onnx"}))
    with pytest.raises(ModelRefused, match="'sha256'"):
        load_engine(folder)


def test_a_dynamic_export_without_imgsz_says_what_to_write(tmp_path: Path) -> None:
    path = bare(tmp_path, random_v8(), width="w", height="h", metadata={"task": "detect"})
    with pytest.raises(ModelRefused, match=r"no 'imgsz' metadata; write a manifest with input\.width"):
        load_engine(path)


# --- tracking and thread spinning ---------------------------------------------------------------


def test_tracks_start_at_the_models_threshold_unless_the_config_sets_one() -> None:
    dets = Detections.of([(0.1, 0.1, 0.3, 0.3), (0.5, 0.5, 0.7, 0.7)], [0.3, 0.45], [0, 0])
    assert len(Tracker().update(dets, 0.0)) == 2
    assert len(Tracker(TrackerConfig(high_confidence=0.4)).update(dets, 0.0)) == 1


def test_tracks_match_only_their_own_class() -> None:
    # A cyclist: person and bicycle boxes almost the same, matched all classes at once.
    tracker = Tracker()
    first = tracker.update(
        Detections.of([(0.1, 0.1, 0.3, 0.5), (0.1, 0.2, 0.3, 0.5)], [0.9, 0.8], [0, 1]), 0.0
    )
    person, bike = first.tracker_id.tolist()
    # next frame: the bicycle listed first and its box closer to where the person was
    then = tracker.update(
        Detections.of([(0.11, 0.1, 0.31, 0.5), (0.12, 0.12, 0.32, 0.5)], [0.8, 0.9], [1, 0]), 0.1
    )
    assert then.tracker_id.tolist() == [bike, person]
    moved = tracker.update(Detections.of([(0.12, 0.1, 0.32, 0.5)], [0.9], [2]), 0.2)  # a third class there
    assert moved.tracker_id.tolist() == [max(person, bike) + 1]


def test_empty_frames_still_forget_lost_tracks() -> None:
    tracker = Tracker(TrackerConfig(lost_s=5.0))
    car = Detections.of([(0.1, 0.1, 0.3, 0.3)], [0.9], [0])
    first = int(tracker.update(car, 0.0).tracker_id[0])
    assert len(tracker.update(Detections.empty(), 3.0)) == 0 and list(tracker.tracks) == [first]
    assert int(tracker.update(car, 4.0).tracker_id[0]) == first  # back within lost_s: the same track
    tracker.update(Detections.empty(), 9.5)
    assert tracker.tracks == {}  # unseen for 5.5 s of empty frames: forgotten
    assert int(tracker.update(car, 10.0).tracker_id[0]) != first


def test_spinning_follows_the_number_of_cameras_unless_configured() -> None:
    assert engine_options(VisionConfig(), cameras=1).spinning
    assert not engine_options(VisionConfig(), cameras=4).spinning
    assert engine_options(VisionConfig(spinning="on"), cameras=4).spinning
    assert not engine_options(VisionConfig(spinning="off"), cameras=1).spinning


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_border_stays_right_as_frame_sizes_change(dtype: str) -> None:
    # Only the image's part of the input is converted per frame: the border must follow the size.
    prep = Preprocessor(InputSpec(width=96, height=96, stride=32, dtype=dtype))
    rng = np.random.default_rng(9)
    for h, w in [(180, 320), (300, 200), (180, 320), (96, 96), (50, 400)]:
        image = rng.integers(0, 255, (h, w, 3), np.uint8)
        prep(image)
        want = ref_image(image, (96, 96), auto=True)[:, :, ::-1].transpose(2, 0, 1) / 255.0
        assert prep.tensor.shape[1:] == want.shape
        np.testing.assert_allclose(
            prep.tensor[0].astype(np.float32), want, atol=1e-3 if dtype == "float16" else 1e-6
        )


def test_a_manifest_gives_what_the_file_cannot_say(tmp_path: Path) -> None:
    # A dynamic export without metadata: the manifest names the size and the adapter, the rest is read.
    folder = tmp_path / "mine"
    path = bare(folder, random_v8(), name="m.onnx", width="w", height="h")
    given = {
        "file": "m.onnx",
        "sha256": sha256_file(path),
        "adapter": "yolov8",
        "input": {"width": 64, "height": 64},
    }
    (folder / "manifest.json").write_text(json.dumps(given))
    m = load_engine(folder).manifest
    assert (m.input.width, m.input.height, m.adapter, len(m.classes)) == (64, 64, "yolov8", 3)


def test_a_channels_last_export_is_described_and_decodes_the_same(tmp_path: Path) -> None:
    out = random_v8()
    engine = load_engine(bare(tmp_path, out, nhwc=True, metadata=ultralytics_meta()))
    assert engine.manifest.input.layout == "NHWC"
    prep = engine.preprocessor()
    dets = engine.infer(frame(), prep)
    assert prep.tensor.shape == (1, 64, 64, 3)
    assert_same(dets, ref_yolov8(out))
