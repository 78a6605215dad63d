"""Models are checked before any camera uses them: hash, loadability, outputs, golden image."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from synthetic_models import yolov8_rows

from agent.vision.engine import EngineOptions, ModelPool, ModelRefused, load_engine
from agent.vision.manifest import MANIFEST_NAME, sha256_file

CLASSES = ["person", "street_stall", "garbage"]
STALL = yolov8_rows([(16, 16, 32, 48)], [[0.0, 0.9, 0.0]])  # frame box 0.25..0.5 x 0..1 on a 2:1 image


def add_golden(folder, golden: dict) -> None:
    cv2.imwrite(str(folder / "golden.png"), np.zeros((64, 128, 3), np.uint8))
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["golden"] = {"image": "golden.png", **golden}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_golden_image_reproduced_loads(make_model) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    add_golden(folder, {"detections": [{"label": "street_stall", "box": [0.26, 0.0, 0.5, 0.98]}]})
    engine = load_engine(folder)
    assert engine.ref.id == "synthetic" and len(engine.ref.sha256) == 8


@pytest.mark.parametrize(
    ("golden", "reason"),
    [
        ({"detections": [{"label": "garbage", "box": [0.25, 0.0, 0.5, 1.0]}]}, "garbage at"),
        ({"detections": [{"label": "street_stall", "box": [0.6, 0.0, 0.9, 1.0]}]}, "best IoU 0.00"),
        ({"detections": [{"label": "stall", "box": [0.25, 0.0, 0.5, 1.0]}]}, "not a class of the model"),
    ],
)
def test_golden_mismatch_is_refused(make_model, golden: dict, reason: str) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    add_golden(folder, golden)
    with pytest.raises(ModelRefused, match=f"golden self-test failed.*{reason}"):
        load_engine(folder)


def test_density_golden_count_within_tolerance(make_model) -> None:
    dmap = np.full((1, 1, 8, 8), 0.5, np.float32)  # 16 people inside the 4 image rows
    ok = make_model(dmap, adapter="density", task="density")
    add_golden(ok, {"count": 17.0, "count_tolerance": 0.1})
    assert load_engine(ok).is_density
    bad = make_model(dmap, adapter="density", task="density")
    add_golden(bad, {"count": 30.0, "count_tolerance": 0.1})
    with pytest.raises(ModelRefused, match=r"count 16.0, expected 30.0"):
        load_engine(bad)


def test_missing_golden_image_is_refused(make_model) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    add_golden(folder, {"detections": []})
    (folder / "golden.png").unlink()
    with pytest.raises(ModelRefused, match=r"golden image .* missing"):
        load_engine(folder)


def test_replaced_model_file_fails_the_hash_check(make_model) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[: len(data) // 2])  # truncated by a failed copy
    with pytest.raises(ModelRefused, match="does not match the manifest"):
        load_engine(folder)


def test_corrupt_file_with_a_matching_hash_cannot_load(make_model) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    model = folder / "model.onnx"
    model.write_bytes(model.read_bytes()[:100])
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["sha256"] = sha256_file(model)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ModelRefused, match="onnxruntime cannot load"):
        load_engine(folder)


def test_input_size_must_match_the_manifest(make_model) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["input"] = {"width": 640, "height": 640}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ModelRefused, match="does not match the manifest's NCHW 640x640"):
        load_engine(folder)


def test_pool_shares_engines_and_remembers_refusals(make_model, tmp_path) -> None:
    pool = ModelPool(EngineOptions(intra_op_threads=1))
    good = make_model(STALL, adapter="yolov8", classes=CLASSES)
    assert pool.get(good) is pool.get(good)
    with pytest.raises(ModelRefused, match="no model manifest"):
        pool.get(tmp_path / "nowhere")
    assert "no model manifest" in pool.refused[(tmp_path / "nowhere").resolve()]


def test_camera_thresholds_over_the_manifest(make_model) -> None:
    engine = load_engine(make_model(STALL, adapter="yolov8", classes=CLASSES))
    strict = engine.with_thresholds({"street_stall": 0.95, "bicycle": 0.1})
    frame = np.zeros((64, 128, 3), np.uint8)
    assert len(engine.infer(frame, engine.preprocessor())) == 1
    assert len(engine.infer(frame, engine.preprocessor(), strict)) == 0
