"""street-vision: nanodet-coco and street-issues-rw grafted into one graph (models/pipeline/merge.py).

The shipped file must be the two models exactly (FP32 both halves; INT8 the COCO half, which keeps
nanodet-coco-int8's calibration), the graft must refuse a head trained on another backbone, and the
build must run end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from agent.vision.engine import EngineOptions, load_engine
from models.pipeline import merge

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    got = merge._frames(2)
    assert len(got) == 2, "vtest.avi could not be read (Debian's opencv-doc)"
    return got


def test_shipped_fp32_is_both_models_exactly(frames) -> None:
    same = merge.equivalence(
        merge.TARGET / "street-vision-fp32.onnx",
        merge.COCO_DIR / "nanodet-coco-fp32.onnx",
        merge.ISSUES_DIR / "street-issues-rw-fp32.onnx",
        frames,
    )
    assert same["coco"] <= 1e-5 and same["issues"] <= 1e-4, same


def test_shipped_int8_coco_half_is_nanodet_int8_bit_for_bit(frames) -> None:
    same = merge.equivalence(
        merge.TARGET / "street-vision-int8.onnx",
        merge.COCO_DIR / "nanodet-coco-int8.onnx",
        merge.ISSUES_DIR / "street-issues-rw-int8.onnx",
        frames,
    )
    assert same["coco"] == 0.0, same


def test_manifest_is_the_two_manifests_as_one() -> None:
    engine = load_engine(merge.TARGET)  # sha256 and the golden self-test, as the agent loads it
    coco = load_engine(merge.COCO_DIR, EngineOptions(self_test=False)).manifest
    issues = load_engine(merge.ISSUES_DIR, EngineOptions(self_test=False)).manifest
    assert engine.manifest.labels == coco.labels + issues.labels
    per_class = engine.manifest.thresholds.per_class
    # COCO thresholds are nanodet-coco's; the issue ones were tuned again on this graph (metrics.json)
    tuned = json.loads((merge.TARGET / "metrics.json").read_text())["issue_thresholds"]
    assert per_class == {**coco.thresholds.per_class, **tuned}
    assert set(tuned) == set(issues.labels)
    assert engine.manifest.input == coco.input == issues.input
    golden = {d.label for d in engine.manifest.golden.detections}
    assert golden & set(issues.labels) and golden & {"person", "vehicle"}  # both halves self-tested


def test_a_head_from_another_backbone_is_refused(tmp_path: Path, frames) -> None:
    model = onnx.load(str(merge.ISSUES_DIR / "street-issues-rw-fp32.onnx"))
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and n.name.startswith("/backbone/"))
    init = next(i for i in model.graph.initializer if i.name == conv.input[1])
    w = numpy_helper.to_array(init).copy()
    w *= 1.05  # a backbone fine-tuned away from NanoDet's
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    with pytest.raises(SystemExit, match="do not share a backbone"):
        merge.match_features(merge.COCO_DIR / "nanodet-coco-fp32.onnx", other, frames[:1])


def test_smoke_build_writes_a_folder_the_agent_loads(tmp_path: Path) -> None:
    out = tmp_path / "street-vision"
    run = subprocess.run(
        [sys.executable, "-m", "models.pipeline.merge", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["equivalence_max_abs"]["int8"]["coco"] == 0.0
    assert metrics["ms_per_frame_2_threads"]["speedup_int8"] > 0
    assert (out / "licenses" / "nanodet-Apache-2.0.txt").is_file()
    assert "Smoke build" in (out / "MODEL_CARD.md").read_text()
    load_engine(out)  # golden self-test included
