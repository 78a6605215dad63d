"""`edgectl model detect`: what a model sees, image by image and frame by frame, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import write_video
from synthetic_models import yolov8_rows

from models.pipeline.footage import ROOT, opencv_data
from tools.edgectl import main as edgectl
from tools.errors import MODEL, USAGE

CLASSES = ["person", "street_stall", "garbage"]
# a stall at input x 40..56, y 30..60 of a 64x64 input, and a weak person under the 0.25 default
STALL = yolov8_rows([(40, 30, 56, 60), (4, 4, 12, 20)], [[0.0, 0.9, 0.0], [0.2, 0.0, 0.0]])


def _lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_json_lines_for_a_folder_in_name_order_with_boxes_normalized_to_the_image(
    make_model, tmp_path, capsys
) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    images = tmp_path / "images"
    images.mkdir()
    for name in ("b.png", "a.jpg"):
        cv2.imwrite(str(images / name), np.zeros((64, 128, 3), np.uint8))  # 128x64 in 64x64: scale 0.5
    (images / "notes.txt").write_text("not an image")
    assert edgectl(["model", "detect", "--model", str(folder), "--source", str(images), "--json"]) == 0
    lines = _lines(capsys)
    assert [x["source"] for x in lines] == ["a.jpg", "b.png"]
    (det,) = lines[0]["detections"]
    assert det["label"] == "street_stall" and det["score"] == pytest.approx(0.9)
    np.testing.assert_allclose(det["box"], [80 / 128, 28 / 64, 112 / 128, 1.0], atol=1e-3)


def test_conf_sets_one_threshold_for_all_classes(make_model, tmp_path, capsys) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    args = ["model", "detect", "--model", str(folder), "--source", str(image), "--json"]
    assert edgectl([*args, "--conf", "0.1"]) == 0
    assert sorted(d["label"] for d in _lines(capsys)[0]["detections"]) == ["person", "street_stall"]
    assert edgectl([*args, "--conf", "0.95"]) == 0
    assert _lines(capsys)[0]["detections"] == []


def test_video_frames_are_named_by_index(make_model, tmp_path, capsys) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    video = write_video(tmp_path / "clip.avi", [np.full((48, 64, 3), i * 20, np.uint8) for i in range(5)])
    assert (
        edgectl(["model", "detect", "--model", str(folder), "--source", str(video), "--json", "--every", "2"])
        == 0
    )
    assert [x["source"] for x in _lines(capsys)] == ["clip.avi#0", "clip.avi#2", "clip.avi#4"]


def test_a_density_model_prints_its_count(make_model, tmp_path, capsys) -> None:
    dmap = np.full((1, 1, 16, 16), 0.05, np.float32)  # 12.8 people over the whole input
    folder = make_model(dmap, adapter="density", task="density", classes=["person"])
    image = tmp_path / "square.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    assert edgectl(["model", "detect", "--model", str(folder), "--source", str(image), "--json"]) == 0
    assert _lines(capsys) == [{"source": "square.png", "count": pytest.approx(12.8, abs=0.01)}]


def test_the_shipped_detector_sees_the_people_and_vans_of_the_real_clip(capsys) -> None:
    clip = opencv_data("vtest.avi")
    model = ROOT / "models" / "nanodet-coco"
    assert (
        edgectl(["model", "detect", "--model", str(model), "--source", str(clip), "--every", "200", "--json"])
        == 0
    )
    lines = _lines(capsys)
    assert [x["source"] for x in lines] == ["vtest.avi#0", "vtest.avi#200", "vtest.avi#400", "vtest.avi#600"]
    for line in lines:
        labels = [d["label"] for d in line["detections"]]
        assert labels.count("vehicle") >= 1 and labels.count("person") >= 2, line
        assert all(0.0 <= v <= 1.0 for d in line["detections"] for v in d["box"])


def test_the_fp32_file_of_a_model_folder_runs_too(capsys) -> None:
    model = ROOT / "models" / "nanodet-coco" / "nanodet-coco-fp32.onnx"
    clip = opencv_data("vtest.avi")
    assert edgectl(["model", "detect", "--model", str(model), "--source", str(clip), "--every", "400"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("vtest.avi#0: ") and "vehicle" in out[0]


@pytest.mark.parametrize(
    ("source", "code", "message"),
    [
        ("missing.jpg", USAGE, "no such file or folder"),
        ("empty", USAGE, "no images or videos"),
        ("broken.jpg", USAGE, "not a readable image"),
    ],
)
def test_bad_sources_are_named(make_model, tmp_path, capsys, source, code, message) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    assert edgectl(["model", "detect", "--model", str(folder), "--source", str(tmp_path / source)]) == code
    assert message in capsys.readouterr().err


def test_a_broken_onnx_file_is_refused_with_the_reason(tmp_path: Path, capsys) -> None:
    onnx_file = tmp_path / "mine.onnx"
    onnx_file.write_bytes(b"\x08\x07")
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    assert edgectl(["model", "detect", "--model", str(onnx_file), "--source", str(image)]) == MODEL
    assert "onnxruntime cannot load the model" in capsys.readouterr().err
