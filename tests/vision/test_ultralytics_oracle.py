"""Real Ultralytics 8.4.190 exports, run bare as a user drops them in, against Ultralytics' own predict.

The exports and predictions come from tests/vision/oracle/make_fixture.py (which needs Ultralytics;
these tests do not): static, rectangular, dynamic-shape, NMS-in-graph, end-to-end and RT-DETR files
of tiny detectors trained on rendered shapes, on two photos that are downscaled into the input.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.vision.engine import EngineOptions, load_engine

FIXTURE = Path(__file__).parent / "oracle" / "fixture"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
VARIANTS = EXPECTED["variants"]
BOX_PX = 0.5  # the bar: boxes within half a pixel of the exporter's


def test_the_fixture_is_ultralytics_own_and_has_boxes_to_compare() -> None:
    assert EXPECTED["made_with"]["ultralytics"] == "8.4.190"
    for name, variant in VARIANTS.items():
        found = sum(len(p["conf"]) for p in variant["predict"].values())
        assert found >= 3, f"{name}: too few detections to compare"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_bare_export_decodes_as_ultralytics_predict_does(name: str) -> None:
    engine = load_engine(FIXTURE / f"{name}.onnx", EngineOptions(warmup_runs=1))
    assert engine.manifest.classes == EXPECTED["made_with"]["names"]
    for key, want in VARIANTS[name]["predict"].items():
        image_name, conf = key.split("@")
        image = cv2.imread(str(FIXTURE / image_name), cv2.IMREAD_COLOR)
        t = engine.manifest.thresholds.model_copy(update={"confidence": float(conf)})
        manifest = engine.manifest.model_copy(update={"thresholds": t})
        dets = engine.infer(image, engine.preprocessor(), manifest)
        h, w = image.shape[:2]
        got = dets.xyxy * np.asarray([w, h, w, h], np.float32)
        ref = np.asarray(want["xyxy"], np.float32).reshape(-1, 4)
        ref[:, [0, 2]] = ref[:, [0, 2]].clip(0, w)  # RT-DETR's predict leaves boxes unclipped
        ref[:, [1, 3]] = ref[:, [1, 3]].clip(0, h)
        ref_conf = np.asarray(want["conf"], np.float32)
        order = np.argsort(-ref_conf, kind="stable")
        where = f"{name} on {key}"
        assert len(dets) == len(ref_conf), f"{where}: {len(dets)} detections, Ultralytics {len(ref_conf)}"
        np.testing.assert_allclose(dets.confidence, ref_conf[order], atol=2e-5, err_msg=where)
        assert dets.class_id.tolist() == np.asarray(want["cls"])[order].tolist(), where
        np.testing.assert_allclose(got, ref[order], atol=BOX_PX, err_msg=where)
