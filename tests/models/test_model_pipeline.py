"""The build pipeline end to end on a few images and steps (a smoke run, not a quality check), and its
handling of real-image directories, good and bad."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest

pytest.importorskip("torch", reason="the training pipeline needs the train extra (pip install -e .[train])")

from agent.vision.manifest import load_manifest, verify_model_file
from models.pipeline import build
from models.pipeline.data import DataError, load_crowd_dir, render_detection_set, write_detection_dir
from models.pipeline.objects import CLASSES


@pytest.mark.parametrize("name", ["street-issues", "crowd-counter"])
def test_smoke_build_writes_a_loadable_model_folder(tmp_path, name) -> None:
    assert build.main([name, "--smoke", "--out", str(tmp_path)]) == 0
    manifest = load_manifest(tmp_path)
    path = verify_model_file(tmp_path, manifest)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"manifest.json", "MODEL_CARD.md", "metrics.json", "golden.jpg"} <= files
    assert {f"{name}-fp32.onnx", f"{name}-int8.onnx"} <= files
    int8 = ort.InferenceSession(str(tmp_path / f"{name}-int8.onnx"), providers=["CPUExecutionProvider"])
    assert any(n.op_type == "QuantizeLinear" for n in _nodes(tmp_path / f"{name}-int8.onnx"))
    assert int8.get_inputs()[0].type == "tensor(float)" and int8.get_outputs()[0].type == "tensor(float)"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["ms_per_frame"]["fp32"] > 0 and metrics["ms_per_frame"]["int8"] > 0
    assert path.stat().st_size > 10_000


def test_a_weight_averaged_build_measures_the_last_weights_beside_the_average(tmp_path, monkeypatch) -> None:
    spec = build.SPECS["street-issues"]
    monkeypatch.setitem(build.SPECS, "street-issues", replace(spec, ema_decay=0.99))
    assert build.main(["street-issues", "--smoke", "--bf16", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    compared = metrics["training"]["weight_average"]["heldout_map50_fp32"]
    assert set(compared) == {"last_weights", "averaged"}
    assert all(0.0 <= v <= 1.0 for v in compared.values())
    assert not (tmp_path / "last-weights-fp32.onnx").exists()  # measured, then removed: never shipped
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "running average (decay 0.99)" in card and "bfloat16 autocast" in card
    assert metrics["training"]["bf16"] is True
    verify_model_file(tmp_path, load_manifest(tmp_path))


def test_remeasure_rewrites_the_figures_and_keeps_the_training_record(tmp_path) -> None:
    assert build.main(["street-issues", "--smoke", "--out", str(tmp_path)]) == 0
    before = json.loads((tmp_path / "metrics.json").read_text())
    del before["int8_heldout"]["recall_by_size"]
    (tmp_path / "metrics.json").write_text(json.dumps(before))
    (tmp_path / "MODEL_CARD.md").write_text("stale")
    assert build.main(["street-issues", "--smoke", "--remeasure", "--out", str(tmp_path)]) == 0
    after = json.loads((tmp_path / "metrics.json").read_text())
    assert after["training"] == before["training"] and after["total_s"] == before["total_s"]
    sizes = after["int8_heldout"]["recall_by_size"]
    assert set(sizes) == set(CLASSES) and all(len(bands) == 6 for bands in sizes.values())
    assert all(0 <= hit <= n for bands in sizes.values() for hit, n in bands)
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "### By object size" in card and "16-24 px" in card
    verify_model_file(tmp_path, load_manifest(tmp_path))


def test_remeasure_refuses_a_model_of_another_input_size(tmp_path) -> None:
    assert build.main(["street-issues", "--smoke", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    metrics["input"] = [320, 192]
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(SystemExit, match="320, 192"):
        build.main(["street-issues", "--smoke", "--remeasure", "--out", str(tmp_path)])


def _nodes(path):
    import onnx

    return onnx.load(str(path)).graph.node


def test_training_accepts_a_directory_of_yolo_labelled_images(tmp_path) -> None:
    data = render_detection_set(123, 6, 320, 192)
    write_detection_dir(data, tmp_path / "real")
    assert len(list((tmp_path / "real" / "labels").glob("*.txt"))) == 6
    out = tmp_path / "model"
    assert build.main(["street-issues", "--smoke", "--data", str(tmp_path / "real"), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert str(tmp_path / "real") in metrics["training"]["data"]


def test_a_bad_label_line_is_rejected_naming_file_and_line(tmp_path, capsys) -> None:
    data = render_detection_set(7, 2, 320, 192)
    write_detection_dir(data, tmp_path)
    bad = sorted((tmp_path / "labels").glob("*.txt"))[0]
    bad.write_text("0 0.5 0.5 0.1\n")
    assert (
        build.main(["street-issues", "--smoke", "--data", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    )
    err = capsys.readouterr().err
    assert bad.name in err and ":1:" in err and "class cx cy w h" in err
    bad.write_text(f"{len(CLASSES)} 0.5 0.5 0.1 0.1\n")
    assert (
        build.main(["street-issues", "--smoke", "--data", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    )
    assert "outside" in capsys.readouterr().err


def test_crowd_directory_needs_points_for_every_image(tmp_path) -> None:
    import cv2

    (tmp_path / "images").mkdir()
    (tmp_path / "points").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), np.zeros((90, 160, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "b.jpg"), np.zeros((90, 160, 3), np.uint8))
    (tmp_path / "points" / "a.txt").write_text("10 20\n30 40\n")
    with pytest.raises(DataError, match=r"b\.txt: missing"):
        load_crowd_dir(tmp_path, 320, 192)
    (tmp_path / "points" / "b.txt").write_text("")
    data = load_crowd_dir(tmp_path, 320, 192)
    assert [len(p) for p in data.points] == [2, 0]
    assert np.allclose(data.points[0][0], [20, 46])  # scaled x2 into the letterbox, 6 px top border
