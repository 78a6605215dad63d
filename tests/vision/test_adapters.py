"""Every adapter layout against real onnxruntime sessions on constant-output ONNX graphs."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_models import yolov8_rows

from agent.vision.adapters import AdapterError, get_adapter
from agent.vision.detections import DensityMap, Detections
from agent.vision.engine import ModelRefused, load_engine

CLASSES = ["person", "street_stall", "garbage"]
# A 128x64 frame in a 64x64 input: scale 0.5, 16 rows of padding above and below.
FRAME = np.zeros((64, 128, 3), np.uint8)


def infer(folder, frame=FRAME):
    engine = load_engine(folder)
    return engine.infer(frame, engine.preprocessor())


def test_yolov8_maps_boxes_back_through_the_letterbox(make_model) -> None:
    out = yolov8_rows([(16, 16, 32, 48), (40, 20, 60, 30)], [[0.1, 0.9, 0.0], [0.0, 0.0, 0.6]])
    dets = infer(make_model(out, adapter="yolov8", classes=CLASSES))
    assert isinstance(dets, Detections) and len(dets) == 2
    assert dets.class_id.tolist() == [1, 2]
    np.testing.assert_allclose(dets.confidence, [0.9, 0.6], rtol=1e-6)
    # input x 16..32 → frame 32..64 of 128; input y 16..48 → frame 0..64 of 64
    np.testing.assert_allclose(dets.xyxy[0], [0.25, 0.0, 0.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(dets.xyxy[1], [80 / 128, 8 / 64, 120 / 128, 28 / 64], atol=1e-6)


def test_nms_is_per_class(make_model) -> None:
    same_place = [(10, 20, 30, 40), (11, 21, 31, 41), (10, 20, 30, 40)]
    scores = [[0.0, 0.9, 0.0], [0.0, 0.8, 0.0], [0.7, 0.0, 0.0]]  # two stalls overlap, one person on top
    dets = infer(make_model(yolov8_rows(same_place, scores), adapter="yolov8", classes=CLASSES))
    assert sorted(dets.class_id.tolist()) == [0, 1]
    assert dets.confidence[dets.class_id == 1].tolist() == pytest.approx([0.9])


def crowd_rows() -> np.ndarray:
    """900 small non-overlapping people, scores falling 0.9 → 0.3, and one weak garbage bag (0.4)."""
    boxes = [(x * 2, 8 + y * 2, x * 2 + 1.5, 8 + y * 2 + 1.5) for x in range(30) for y in range(30)]
    scores = [[0.9 - 0.6 * k / 900, 0.0, 0.0] for k in range(len(boxes))]
    boxes.append((0, 0, 10, 10))
    scores.append([0.0, 0.0, 0.4])
    return yolov8_rows(boxes, scores)


def test_thresholds_per_class_and_a_cap_the_manifest_can_lift(make_model) -> None:
    thresholds = {"confidence": 0.25, "per_class": {"garbage": 0.45}, "max_detections": 1000}
    folder = make_model(crowd_rows(), adapter="yolov8", classes=CLASSES, thresholds=thresholds)
    dets = infer(folder, np.zeros((64, 64, 3), np.uint8))
    assert len(dets) == 900
    assert set(dets.class_id.tolist()) == {0}


def test_at_most_300_detections_by_default_the_strongest(make_model) -> None:
    folder = make_model(crowd_rows(), adapter="yolov8", classes=CLASSES)
    engine = load_engine(folder)
    assert engine.manifest.thresholds.max_detections == 300
    assert engine.manifest.thresholds.iou == 0.7  # Ultralytics' predict default
    dets = engine.infer(np.zeros((64, 64, 3), np.uint8), engine.preprocessor())
    assert len(dets) == 300
    assert dets.confidence.min() >= 0.9 - 0.6 * 299 / 900 - 1e-6


def test_yolov5_multiplies_objectness(make_model) -> None:
    rows = np.asarray(
        [
            [24, 32, 16, 32, 0.9, 0.1, 0.9, 0.0],  # stall: 0.81
            [50, 32, 8, 8, 0.2, 0.0, 0.0, 1.0],  # garbage: 0.2 < 0.25
        ],
        np.float32,
    )[None]
    dets = infer(make_model(rows, adapter="yolov5", classes=CLASSES))
    assert dets.class_id.tolist() == [1]
    assert dets.confidence[0] == pytest.approx(0.81, rel=1e-5)
    np.testing.assert_allclose(dets.xyxy[0], [0.25, 0.0, 0.5, 1.0], atol=1e-6)


def test_yolo_nms_rows_are_taken_as_given(make_model) -> None:
    rows = np.asarray(
        [[16, 16, 32, 48, 0.8, 2], [17, 17, 33, 49, 0.7, 2], [0, 0, 0, 0, 0.0, 0]],  # last: export padding
        np.float32,
    )[None]
    dets = infer(make_model(rows, adapter="yolo_nms", classes=CLASSES))
    assert dets.class_id.tolist() == [2, 2]  # the export already did NMS; both are kept
    np.testing.assert_allclose(dets.xyxy[0], [0.25, 0.0, 0.5, 1.0], atol=1e-6)


def test_density_map_is_cropped_to_the_image(make_model) -> None:
    dmap = np.zeros((1, 1, 8, 8), np.float32)
    dmap[0, 0, 2:6, :] = 0.5  # 16 people inside the image
    dmap[0, 0, 0, :] = 1.0  # regression noise in the letterbox border is not people
    dmap[0, 0, 3, 0] = -0.25  # one cell of noise: clipped to 0, it must not cancel people elsewhere
    folder = make_model(dmap, adapter="density", task="density")
    result = infer(folder)
    assert isinstance(result, DensityMap)
    assert result.density.shape == (4, 8)
    assert result.count == pytest.approx(15.5)


@pytest.mark.parametrize(
    ("adapter", "output"),
    [
        ("yolov8", np.zeros((1, 8, 10), np.float32)),  # 4 + 4 rows, manifest has 3 classes
        ("yolov5", np.zeros((1, 10, 7), np.float32)),
        ("yolo_nms", np.zeros((1, 10, 7), np.float32)),
        ("density", np.zeros((1, 2, 8, 8), np.float32)),
    ],
)
def test_wrong_output_layout_is_refused_at_load(make_model, adapter: str, output: np.ndarray) -> None:
    task = "density" if adapter == "density" else "detect"
    folder = make_model(output, adapter=adapter, classes=CLASSES, task=task)
    with pytest.raises(ModelRefused, match=f"adapter '{adapter}'"):
        load_engine(folder)


def test_unknown_adapter_names_the_known_ones() -> None:
    with pytest.raises(AdapterError, match="known: density, rtdetr, yolo_nms, yolov5, yolov8"):
        get_adapter("yolov99")


def test_class_id_beyond_the_manifest_is_an_error(make_model) -> None:
    rows = np.asarray([[1, 1, 5, 5, 0.9, 7]], np.float32)[None]
    with pytest.raises(ModelRefused, match="class id 7"):
        load_engine(make_model(rows, adapter="yolo_nms", classes=CLASSES))


def test_merged_classes_are_one_label_with_one_nms(make_model) -> None:
    # A van scored as car by one cell and as truck by the next: one vehicle after NMS, not two.
    classes = ["person", "car", "truck", "bench"]
    boxes = [(10, 20, 40, 40), (11, 20, 41, 41), (50, 10, 60, 30)]
    scores = [[0.0, 0.8, 0.0, 0.0], [0.0, 0.0, 0.7, 0.0], [0.0, 0.0, 0.0, 0.9]]
    folder = make_model(
        yolov8_rows(boxes, scores),
        adapter="yolov8",
        classes=classes,
        merge={"vehicle": ["car", "truck"]},
        thresholds={"confidence": 0.5, "per_class": {"vehicle": 0.6}},
    )
    engine = load_engine(folder)
    assert engine.manifest.labels == ["person", "vehicle", "bench"]
    dets = engine.infer(FRAME, engine.preprocessor())
    names = sorted(engine.manifest.labels[c] for c in dets.class_id)
    assert names == ["bench", "vehicle"]
    assert dets.confidence[dets.class_id == 1].tolist() == pytest.approx([0.8])


@pytest.mark.parametrize(
    ("merge", "problem"),
    [
        ({"vehicle": ["car", "lorry"]}, "'lorry', which is not one of the classes"),
        ({"vehicle": ["car"], "auto": ["car"]}, "merged into both"),
    ],
)
def test_a_bad_merge_is_refused_by_name(make_model, merge, problem) -> None:
    folder = make_model(
        yolov8_rows([(1, 1, 5, 5)], [[0.9, 0.0]]), adapter="yolov8", classes=["person", "car"], merge=merge
    )
    with pytest.raises(ModelRefused, match=problem):
        load_engine(folder)
