"""The bundled demo clip: committed, small, readable by OpenCV, and described by its timeline."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

CLIP = Path(__file__).resolve().parents[2] / "demo" / "clip"


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((CLIP / "street.json").read_text())


def test_clip_is_small_and_matches_its_timeline(meta) -> None:
    video = CLIP / meta["video"]
    assert video.stat().st_size <= 3_000_000
    cap = cv2.VideoCapture(str(video))
    try:
        assert cap.isOpened()
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        assert frames == meta["fps"] * meta["duration_s"]
        assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == meta["width"]
        assert int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == meta["height"]
        ok, first = cap.read()
        assert ok and first.shape == (meta["height"], meta["width"], 3)
    finally:
        cap.release()


def test_timeline_has_issues_that_appear_and_disappear(meta) -> None:
    labels = {i["label"] for i in meta["issues"]}
    assert {"garbage", "street_stall", "vehicle"} <= labels
    for issue in meta["issues"]:
        assert 0 < issue["appears_s"] < issue["disappears_s"] < meta["duration_s"]
        x1, y1, x2, y2 = issue["box"]
        assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
    crowd = meta["crowd"]
    assert crowd["gathers_s"] < crowd["disperses_s"] < crowd["gone_s"] <= meta["duration_s"]
    people = [s["people"] for s in meta["per_second"]]
    assert max(people) >= crowd["peak_people"] and min(people) < 5
