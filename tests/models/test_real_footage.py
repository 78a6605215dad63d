"""The shipped models on real footage: OpenCV's street-corner clip (Debian's opencv-doc, installed by
scripts/setup.sh) and our own labels of its frames (models/footage/vtest.labels.json).

Figures are measured on the labels' ``test`` frames at the thresholds the manifest ships, which
were tuned on the ``tune`` frames only. The goals are the ones the model card reports against.
"""

from __future__ import annotations

import asyncio
import tomllib

import cv2
import numpy as np
import pytest

from agent.config.camera import CameraConfig
from agent.events import ISSUE
from agent.vision.engine import ModelPool, load_engine
from agent.vision.part import run_offline
from agent.vision.pipeline import CameraPipeline
from models.pipeline.camera_conditions import CONDITIONS, degrade
from models.pipeline.footage import ROOT, load_footage, load_stills, opencv_data, score_label
from models.pipeline.footage_report import ISSUE_LABELS
from models.pipeline.transfer import video_frames

NANODET = ROOT / "models" / "nanodet-coco"
STREET_VISION = ROOT / "models" / "street-vision"  # nanodet-coco and street-issues-rw in one graph


@pytest.fixture(scope="module")
def footage():
    return load_footage("vtest")


@pytest.fixture(scope="module", params=[NANODET, STREET_VISION], ids=lambda p: p.name)
def found(request, footage):
    """Each shipped person detector's detections on the test frames, at its shipped thresholds."""
    engine = load_engine(request.param)  # golden self-test included
    prep = engine.preprocessor()
    return engine.manifest.labels, [engine.infer(f.image, prep) for f in footage.test]


def test_the_labels_split_tune_and_test_frames_apart(footage) -> None:
    tune = {f.index for f in footage.tune}
    test = {f.index for f in footage.test}
    assert len(tune) >= 20 and len(test) >= 20 and not tune & test


def test_people_are_found_with_precision_and_recall_on_real_frames(footage, found) -> None:
    labels, dets = found
    r = score_label("person", labels, footage.test, dets).at(0.0)  # detections are thresholded already
    assert r["precision"] >= 0.90, r
    assert r["recall"] >= 0.85, r


def test_people_are_counted_within_one_per_frame(footage, found) -> None:
    labels, dets = found
    r = score_label("person", labels, footage.test, dets).at(0.0)
    assert r["count_error"] <= 1.0, r


def test_parked_vehicles_are_found_in_nine_frames_of_ten(footage, found) -> None:
    labels, dets = found
    r = score_label("vehicle", labels, footage.test, dets).at(0.0)
    assert r["frames_found"] >= 0.9 and r["recall"] >= 0.9, r


@pytest.mark.parametrize("folder", [NANODET, STREET_VISION], ids=lambda p: p.name)
def test_people_and_vehicles_are_found_on_photos_from_other_cameras(folder) -> None:
    """OpenCV's street photos (models/footage/stills.labels.json), never tuned on: a floor against
    regressions on a second real source (5 people, 2 vehicles; measured 4/5 and 2/2, see the card)."""
    stills = load_stills()
    engine = load_engine(folder)
    prep = engine.preprocessor()
    found = [engine.infer(f.image, prep) for f in stills]
    person = score_label("person", engine.manifest.labels, stills, found).at(0.0)
    vehicle = score_label("vehicle", engine.manifest.labels, stills, found).at(0.0)
    assert person["truth"] == 5 and vehicle["truth"] == 2
    assert person["recall"] >= 0.6 and person["precision"] >= 0.6, person
    assert vehicle["recall"] == 1.0 and vehicle["precision"] == 1.0, vehicle


@pytest.mark.parametrize("folder", [NANODET, STREET_VISION], ids=lambda p: p.name)
def test_vehicle_is_car_bus_truck_and_motorcycle_in_one_label(folder) -> None:
    manifest = load_engine(folder).manifest
    assert {"person", "bicycle", "vehicle"} <= set(manifest.labels)
    assert sorted(manifest.merge["vehicle"]) == ["bus", "car", "motorcycle", "truck"]
    assert "bench" in manifest.labels and "car" not in manifest.labels  # other COCO classes stay


class _Sink:
    def __init__(self) -> None:
        self.events: list = []

    async def submit(self, event) -> None:
        self.events.append(event)


def _default_camera(zones: bool) -> CameraConfig:
    """The camera `edgectl config init` writes, watching the real clip (its zones, or the whole frame)."""
    example = tomllib.loads((ROOT / "agent" / "config" / "example.toml").read_text(encoding="utf-8"))
    camera = example["cameras"][0]
    camera["source"] = str(opencv_data("vtest.avi"))
    camera["models"] = [str(ROOT / m) for m in camera["models"]]
    if not zones:
        camera.pop("zones", None)  # every issue class watched everywhere: the strictest setting
    return CameraConfig.model_validate(camera)


@pytest.mark.parametrize("zones", [True, False], ids=["its-zones", "whole-frame"])
def test_the_default_camera_raises_no_street_issue_over_the_whole_clip(zones: bool) -> None:
    config = _default_camera(zones)
    assert any("street-vision" in str(m) for m in config.models)
    pool = ModelPool()
    pipeline = CameraPipeline(config, [pool.get(m) for m in config.models])
    sink = _Sink()
    frames = asyncio.run(run_offline(pipeline, sink))
    assert frames >= 150  # the 80 s clip at the camera's 2 fps
    issues = [(e.label, e.phase) for e in sink.events if e.kind == ISSUE]
    assert issues == []


def test_street_vision_raises_at_most_one_false_issue_on_photos_from_other_cameras() -> None:
    """None of the 10 photos shows an issue. street-issues-rw 1.1.0 was chosen over 1.0.0 on them (4
    false issues), so this guards against a regression; it is not an unbiased estimate."""
    stills = load_stills()
    engine = load_engine(STREET_VISION)
    prep = engine.preprocessor()
    issues = {"garbage", "street_stall", "pothole", "debris_pile", "illegal_ad"}
    found = [engine.manifest.labels[int(c)] for f in stills for c in engine.infer(f.image, prep).class_id]
    assert sum(label in issues for label in found) <= 1, found


SIX_CONDITIONS = ["dusk", "night", "soft lens", "low resolution", "JPEG 20", "motion blur"]


@pytest.mark.parametrize("condition", SIX_CONDITIONS)
def test_people_are_still_found_and_issues_rarely_seen_under_camera_conditions(footage, condition) -> None:
    """The default camera's model on the real test frames degraded as cameras degrade them (less
    light, a soft lens, a low-resolution substream, hard JPEG, motion blur): people still found, and
    a street issue on a clip that shows none at most in a stray frame. Measured, not tuned: the
    card's conditions table (street-vision 1.1.0: 1 of 40 frames under motion blur, 0 under the
    others; 1.0.0 had 0). Whether a stray frame becomes an issue is the next test's."""
    engine = load_engine(STREET_VISION)
    prep = engine.preprocessor()
    labels = engine.manifest.labels
    frames = degrade(footage.test, CONDITIONS[condition], seed=7)
    dets = [engine.infer(f.image, prep) for f in frames]
    r = score_label("person", labels, frames, dets).at(0.0)
    # Measured 0.91-0.95 / 0.88-0.95 (the card); the floor leaves room for another CPU's INT8 kernels,
    # whose scores near a threshold differ a little, and still fails a detector that loses people.
    assert r["precision"] >= 0.80 and r["recall"] >= 0.80, r
    issue_ids = [labels.index(label) for label in ISSUE_LABELS]
    false = sum(int(sum((d.class_id == i).sum() for i in issue_ids)) for d in dets)
    assert false <= 2, f"{false} street-issue detections in {len(dets)} frames under {condition}"


@pytest.fixture(scope="module")
def clip_at_camera_rate() -> list:
    """vtest.avi as the default camera takes it: every 5th frame of the 10 fps clip (2 fps)."""
    return video_frames("vtest.avi", lambda i: i % 5 == 0)


@pytest.mark.parametrize("condition", SIX_CONDITIONS)
def test_the_default_camera_raises_no_street_issue_over_the_degraded_clip(
    clip_at_camera_rate, condition, tmp_path
) -> None:
    """The whole clip degraded by each condition, through the default camera watching the whole
    frame (the strictest setting): no issue event, since a stray frame never lasts an issue's dwell."""
    rng = np.random.default_rng(7)
    for k, frame in enumerate(clip_at_camera_rate):
        cv2.imwrite(str(tmp_path / f"{k:04d}.jpg"), CONDITIONS[condition](frame, rng))
    config = _default_camera(zones=False).model_copy(update={"source": str(tmp_path)})
    pool = ModelPool()
    sink = _Sink()
    frames = asyncio.run(run_offline(CameraPipeline(config, [pool.get(m) for m in config.models]), sink))
    assert frames == len(clip_at_camera_rate) >= 150
    assert [(e.label, e.phase) for e in sink.events if e.kind == ISSUE] == []


def test_a_mask_over_a_misread_tree_stops_the_false_pothole_it_raises(tmp_path) -> None:
    """A real weakness, and the technician's remedy: street-vision 1.1.0 reads the dark tree on the
    right of OpenCV's lake photo (hfs/data/001.jpg) as a `pothole` (the card's photos table; 1.0.0
    read the NOTICE board of text/scenetext06.jpg as a `street_stall` instead), so a camera looking at
    it raises a false issue once the dwell has passed; a mask drawn over the tree (for potholes only)
    stops it."""
    photo = opencv_data("vtest.avi").parent.parent / "hfs" / "data" / "001.jpg"
    for i in range(150):  # 75 s of a fixed camera at 2 fps
        (tmp_path / f"{i:04d}.jpg").write_bytes(photo.read_bytes())
    tree = {
        "id": "lakeside-tree",
        "polygon": [[0.75, 0.2], [1.0, 0.2], [1.0, 0.55], [0.75, 0.55]],
        "classes": ["pothole"],
    }
    raised = {}
    for name, masks in (("unmasked", []), ("masked", [tree])):
        config = CameraConfig(
            id="cam-1", source=str(tmp_path), fps=2.0, models=[str(STREET_VISION)], masks=masks
        )
        pool = ModelPool()
        sink = _Sink()
        frames = asyncio.run(run_offline(CameraPipeline(config, [pool.get(m) for m in config.models]), sink))
        assert frames == 150
        raised[name] = [(e.label, e.phase) for e in sink.events if e.kind == ISSUE]
    assert raised == {"unmasked": [("pothole", "start")], "masked": []}


def test_camera_conditions_refuses_a_folder_without_a_manifest_naming_it(tmp_path, capsys) -> None:
    from models.pipeline import camera_conditions

    for name in (str(tmp_path), "no-such-model"):
        with pytest.raises(SystemExit):
            camera_conditions.main([name, "--print"])
        assert "no manifest.json there (a model folder, or a name under models/)" in capsys.readouterr().err
