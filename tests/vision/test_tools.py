"""`edgectl model inspect|bench` and `edgectl vision preview` on real models and video files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import moving_square_frames, write_video
from synthetic_models import yolov8_rows

from agent.vision.draw import colour
from tools.edgectl import main as edgectl
from tools.errors import MODEL, USAGE

CLASSES = ["person", "street_stall", "garbage"]
STALL = yolov8_rows([(40, 30, 56, 60)], [[0.0, 0.9, 0.0]])


def test_inspect_a_model_folder(make_model, capsys) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    assert edgectl(["model", "inspect", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "(matches manifest)" in out and "adapter yolov8" in out and "looks like: yolov8" in out
    assert "output    output0: [1, 7, 1]" in out and "classes   3: person, street_stall, garbage" in out


def test_inspect_reports_a_replaced_file(make_model, capsys) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    other = make_model(np.zeros((1, 7, 2), np.float32), adapter="yolov8", classes=CLASSES)
    (folder / "model.onnx").write_bytes((other / "model.onnx").read_bytes())
    assert edgectl(["model", "inspect", str(folder), "--json"]) == MODEL
    assert json.loads(capsys.readouterr().out)["sha256_matches_manifest"] is False


@pytest.mark.parametrize(
    ("output", "adapter"),
    [
        (np.zeros((1, 84, 8400), np.float32), "yolov8"),
        (np.zeros((1, 25200, 85), np.float32), "yolov5"),
        (np.zeros((1, 1, 8, 8), np.float32), "density"),
    ],
)
def test_suggested_manifest_for_a_bare_export(make_model, capsys, output: np.ndarray, adapter: str) -> None:
    folder = make_model(output, adapter="yolov8", classes=["a"])  # the manifest is ignored for a bare file
    assert edgectl(["model", "inspect", str(folder / "model.onnx"), "--suggest-manifest"]) == 0
    suggested = json.loads(capsys.readouterr().out)
    assert suggested["adapter"] == adapter
    assert suggested["input"]["width"] == 64
    if adapter in ("yolov8", "yolov5"):
        assert len(suggested["classes"]) == 80


def test_nms_rows_without_class_names_ask_for_them(make_model, capsys) -> None:
    folder = make_model(np.zeros((1, 300, 6), np.float32), adapter="yolo_nms", classes=["a"])
    assert edgectl(["model", "inspect", str(folder / "model.onnx"), "--suggest-manifest"]) == MODEL
    assert "no 'names' metadata; write a manifest listing the classes" in capsys.readouterr().err


def test_bench_measures_a_model(make_model, capsys) -> None:
    folder = make_model(STALL, adapter="yolov8", classes=CLASSES)
    assert edgectl(["model", "bench", str(folder), "--frames", "5", "--threads", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 5 and result["total_ms"] > 0 and result["fps"] > 0


def test_bench_refuses_a_broken_model(make_model, capsys) -> None:
    folder = make_model(np.zeros((1, 9, 3), np.float32), adapter="yolov8", classes=CLASSES)
    assert edgectl(["model", "bench", str(folder)]) == MODEL
    assert "outputs do not fit adapter" in capsys.readouterr().err


@pytest.fixture
def scene(make_model, tmp_path: Path) -> tuple[Path, Path, Path]:
    model = make_model(STALL, adapter="yolov8", classes=CLASSES)
    clip = write_video(tmp_path / "clip.avi", moving_square_frames(60), fps=10.0)
    zones = tmp_path / "zones.toml"
    zones.write_text(
        "[[zones]]\nid = 'pavement'\npolygon = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]\n"
    )
    return model, clip, zones


def test_preview_writes_an_annotated_image(scene, tmp_path: Path, capsys) -> None:
    model, clip, zones = scene
    out = tmp_path / "aim.png"
    args = ["vision", "preview", "--source", str(clip), "--model", str(model), "--zones", str(zones)]
    assert edgectl([*args, "--out", str(out), "--frames", "4"]) == 0
    assert "4 frame(s)" in capsys.readouterr().out
    image = cv2.imread(str(out))
    assert image.shape == (120, 160, 3)
    # The stall (input box x 40..56 in a 64x64 letterbox of 160x120) has its left edge at x = 100:
    # drawn in the class's colour over plain grey street.
    assert image[90, 100].tolist() == list(colour(CLASSES.index("street_stall")))
    assert image[90, 60].tolist() != image[90, 100].tolist()


def test_preview_writes_a_video_with_every_frame(scene, tmp_path: Path) -> None:
    model, clip, zones = scene
    out = tmp_path / "aim.mp4"
    args = ["vision", "preview", "--source", str(clip), "--model", str(model), "--zones", str(zones)]
    assert edgectl([*args, "--out", str(out)]) == 0
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12  # 6 s sampled at 2 fps
    cap.release()
    # --seconds bounds a file by its media time: the first 2 s at 2 fps
    short = tmp_path / "short.mp4"
    assert edgectl([*args, "--out", str(short), "--seconds", "2"]) == 0
    cap = cv2.VideoCapture(str(short))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5  # t = 0, 0.5, 1.0, 1.5, 2.0
    cap.release()


def test_preview_explains_wrong_arguments(tmp_path: Path, capsys) -> None:
    assert edgectl(["vision", "preview", "--out", str(tmp_path / "x.gif"), "--source", "a"]) == USAGE
    assert "write .mp4, .avi, .png or .jpg" in capsys.readouterr().err
    assert edgectl(["vision", "preview", "--out", str(tmp_path / "x.png"), "--source", "a"]) == USAGE
    assert "give --config, or --source and at least one --model" in capsys.readouterr().err
