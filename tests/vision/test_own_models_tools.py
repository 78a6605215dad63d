"""A bare .onnx export wherever a model folder is taken: edgectl model inspect|detect, vision preview,
edge-agent run and the camera pipeline; its weak detections reach tracking as its threshold says."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import moving_square_frames, write_video
from synthetic_models import constant_model, yolov8_rows

from agent.cli import main as edge_agent
from agent.config.camera import CameraConfig
from agent.vision.engine import load_engine
from agent.vision.pipeline import CameraPipeline
from agent.vision.sources import offline_frames
from tools.edgectl import main as edgectl
from tools.errors import MODEL

NAMES = ["person", "bicycle", "pothole"]
# Six well-apart objects in a 64x64 input; two score between the exporter's 0.25 and 0.5.
BOXES = [
    (2, 2, 10, 10),
    (14, 2, 22, 10),
    (26, 2, 34, 10),
    (2, 40, 10, 48),
    (14, 40, 22, 48),
    (26, 40, 34, 48),
]
SCORES = [[0.9, 0, 0], [0, 0.8, 0], [0, 0, 0.7], [0.3, 0, 0], [0, 0.45, 0], [0, 0, 0.1]]
META = {
    "task": "detect",
    "head": "Detect",
    "stride": "32",
    "imgsz": "[64, 64]",
    "names": repr(dict(enumerate(NAMES))),
    "end2end": "False",
    "args": "{'dynamic': True}",
}


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A dynamic-shape export as Ultralytics writes one: symbolic input and output, metadata."""
    path = tmp_path / "best.onnx"
    out = yolov8_rows(BOXES, SCORES)
    return constant_model(
        path, out, "width", "height", "batch", metadata=META, output_shape=["batch", "dim1", "anchors"]
    )


def test_inspect_describes_a_dynamic_export(export: Path, capsys) -> None:
    assert edgectl(["model", "inspect", str(export)]) == 0
    out = capsys.readouterr().out
    assert "looks like: yolov8" in out
    assert "64x64 NCHW RGB float32" in out and "letterbox pad 114 to a multiple of 32, resize linear" in out
    assert "NMS IoU 0.7, at most 300 a frame" in out and "classes   3: person, bicycle, pothole" in out


def test_the_suggested_manifest_loads_as_the_bare_file_does(export: Path, tmp_path: Path, capsys) -> None:
    assert edgectl(["model", "inspect", str(export), "--suggest-manifest"]) == 0
    captured = capsys.readouterr()
    suggested = json.loads(captured.out)
    assert "--suggest-camera" in captured.err
    folder = tmp_path / "pkg"
    folder.mkdir()
    shutil.copy(export, folder / export.name)
    (folder / "manifest.json").write_text(json.dumps(suggested))
    assert load_engine(folder).manifest == load_engine(export).manifest
    assert (suggested["adapter"], suggested["classes"], suggested["input"]["stride"]) == ("yolov8", NAMES, 32)


def test_the_suggested_camera_has_an_issue_rule_per_class(export: Path, capsys) -> None:
    assert edgectl(["model", "inspect", str(export), "--suggest-camera"]) == 0
    camera = CameraConfig.model_validate(tomllib.loads(capsys.readouterr().out)["cameras"][0])
    assert camera.models == [export]
    for label in NAMES:
        assert camera.issues[label].min_confidence == 0.25
    assert camera.issues["pothole"].static and not camera.issues["person"].static


def test_inspect_names_an_unsupported_layout(tmp_path: Path, capsys) -> None:
    path = constant_model(
        tmp_path / "pose.onnx", np.zeros((1, 56, 84), np.float32), metadata={"task": "pose"}
    )
    assert edgectl(["model", "inspect", str(path)]) == MODEL
    assert "problem" in capsys.readouterr().out
    assert edgectl(["model", "inspect", str(path), "--suggest-manifest"]) == MODEL
    assert "pose export" in capsys.readouterr().err


def test_detect_runs_a_bare_export(export: Path, tmp_path: Path, capsys) -> None:
    clip = write_video(tmp_path / "clip.avi", moving_square_frames(3), fps=10.0)
    assert edgectl(["model", "detect", "--model", str(export), "--source", str(clip), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3
    assert sorted(d["score"] for d in lines[0]["detections"]) == pytest.approx([0.3, 0.45, 0.7, 0.8, 0.9])


def test_weak_detections_reach_the_rules_and_preview(export: Path, tmp_path: Path, capsys) -> None:
    clip = write_video(tmp_path / "clip.avi", moving_square_frames(20), fps=10.0)
    camera = CameraConfig(id="cam", source=str(clip), models=[export])
    pipeline = CameraPipeline(camera, [load_engine(export)])
    results = [pipeline.process(f) for f in offline_frames(str(clip), camera.fps)]
    tracked, _ = results[-1].found[0]
    assert sorted(tracked.confidence.tolist()) == pytest.approx([0.3, 0.45, 0.7, 0.8, 0.9])
    out = tmp_path / "aim.png"
    args = ["vision", "preview", "--source", str(clip), "--model", str(export), "--out", str(out)]
    assert edgectl([*args, "--frames", "2"]) == 0
    assert "2 frame(s)" in capsys.readouterr().out


def test_edge_agent_runs_a_bare_export(export: Path, tmp_path: Path, capsys) -> None:
    clip = write_video(tmp_path / "clip.avi", moving_square_frames(20), fps=10.0)
    assert edge_agent(["run", "--source", str(clip), "--model", str(export), "--print"]) == 0
    assert "frames" in capsys.readouterr().err
