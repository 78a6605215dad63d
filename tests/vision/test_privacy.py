"""Fail-closed snapshots on real photos and frames, with the shipped detector and face model.

Real parts only: OpenCV's sample photos and footage (Debian's opencv-doc), the shipped nanodet-coco
and BlazeFace ONNX files on onnxruntime. A snapshot passes when the detectors that found people
and faces in the frame find none in what would leave the device.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import msgpack
import numpy as np
import pytest
from synthetic_models import yolov8_rows

from agent.config.camera import CameraConfig, SnapshotConfig
from agent.events import BOX_SCALE, ISSUE, START, decode, encode
from agent.vision.camera import Camera
from agent.vision.detections import Detections
from agent.vision.engine import ModelEngine, load_engine
from agent.vision.faces import FaceDetector, load_face_detector
from agent.vision.frames import Frame
from agent.vision.pipeline import CameraPipeline
from agent.vision.privacy import (
    FACE_BLOCKS,
    FULL_KEY,
    REGION_KEY,
    Found,
    SnapshotTaker,
    blur_regions,
    crop_of,
    encode_within,
    issue_region,
    render,
)
from models.pipeline.footage import OPENCV_DATA, load_footage

ROOT = Path(__file__).resolve().parents[2]
FULL = (0.0, 0.0, 1.0, 1.0)


@pytest.fixture(scope="module")
def nanodet() -> ModelEngine:
    return load_engine(ROOT / "models" / "nanodet-coco")


@pytest.fixture(scope="module")
def faces() -> FaceDetector:
    return load_face_detector(ROOT / "models" / "blazeface")


@pytest.fixture(scope="module")
def checker() -> FaceDetector:
    """A second face detector (BlazeFace's front-camera weights), never used for blurring."""
    return FaceDetector(ROOT / "models" / "blazeface" / "blazeface-front.onnx")


@pytest.fixture(scope="module")
def detect(nanodet: ModelEngine):
    prep = nanodet.preprocessor()

    def run(image: np.ndarray) -> Found:
        dets = nanodet.infer(image, prep)
        assert isinstance(dets, Detections)
        return [(dets, nanodet.manifest.labels)]

    return run


def photo(name: str) -> np.ndarray:
    image = cv2.imread(str(OPENCV_DATA / name))
    if image is None:
        pytest.fail(f"{OPENCV_DATA / name} is missing: install Debian's opencv-doc (scripts/setup.sh)")
    return image


def people(found: Found) -> list[np.ndarray]:
    return [d.xyxy[i] for d, c in found for i in range(len(d)) if c[int(d.class_id[i])] == "person"]


def jpeg_image(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def taker(faces: FaceDetector, detect, **config) -> SnapshotTaker:
    return SnapshotTaker("cam-1", SnapshotConfig(enabled=True, **config), faces, detect)


def test_messi_photo_leaves_with_no_person_and_no_face(
    faces: FaceDetector, checker: FaceDetector, detect
) -> None:
    image = photo("messi5.jpg")
    found = detect(image)
    assert people(found), "the detector must see the player in the input, or this test proves nothing"
    # An issue on the player's shirt (the region then holds his head) and one at the ball, full frame.
    for region, box in (("issue", (0.35, 0.35, 0.55, 0.55)), ("full", (0.61, 0.84, 0.71, 0.98))):
        snap = taker(faces, detect, region=region).take(image, box, found, 0.0, "messi")
        assert snap is not None
        shown = crop_of(image, snap.region)
        assert people(detect(shown)) and len(checker(shown, 0.5)), f"{region}: someone to blur"
        out = jpeg_image(snap.jpeg)
        assert people(detect(out)) == [], region
        assert len(faces(out, 0.4)) == 0, region  # the device's own detector and threshold
        assert len(checker(out, 0.5)) == 0, region  # the second one, which did no blurring


def test_the_old_blur_left_people_and_faces_the_detectors_still_find(faces: FaceDetector, detect) -> None:
    # The old behaviour (the whole frame, only the frame's detections blurred) on the same photo:
    # spectators the first pass missed are found in its output, which fail-closed snapshots prevent.
    image = photo("messi5.jpg")
    old = render(image, FULL, detect(image), SnapshotConfig(enabled=True), None, None)
    assert old is not None
    assert people(detect(old)) or len(faces(old, 0.4))


def test_footage_frames_with_people_leave_with_none_visible(faces: FaceDetector, detect) -> None:
    footage = load_footage("vtest")
    checked = 0
    for frame in footage.test[:12]:
        walkers = [t.box for t in frame.truth if t.label == "person" and not t.difficult]
        if not walkers:
            continue
        # An issue at a labelled person's feet: the snapshot shows that person at least.
        x1, y1, x2, y2 = walkers[0]
        box = (x1, y2 - 0.05, x2, min(1.0, y2 + 0.02))
        found = detect(frame.image)
        snap = taker(faces, detect).take(frame.image, box, found, float(frame.index), f"f{frame.index}")
        assert snap is not None
        out = jpeg_image(snap.jpeg)
        x1, y1, x2, y2 = snap.region
        crop = frame.image[int(y1 * 576) : int(y2 * 576), int(x1 * 768) : int(x2 * 768)]
        assert people(detect(crop)), f"frame {frame.index}: the cut had someone to blur"
        assert people(detect(out)) == [], f"frame {frame.index}"
        assert len(faces(out, 0.4)) == 0, f"frame {frame.index}"
        checked += 1
    assert checked >= 8


def test_the_issue_region_is_the_box_and_its_margin_inside_the_frame() -> None:
    config = SnapshotConfig(enabled=True, margin=0.5, min_region=0.2)
    assert issue_region((0.4, 0.4, 0.6, 0.6), config) == pytest.approx((0.3, 0.3, 0.7, 0.7))
    # A small box still shows min_region of the frame around it.
    assert issue_region((0.5, 0.5, 0.52, 0.52), config) == pytest.approx((0.41, 0.41, 0.61, 0.61))
    # At the edge the region keeps its size and moves inside the frame.
    assert issue_region((0.9, 0.0, 1.0, 0.1), config) == pytest.approx((0.8, 0.0, 1.0, 0.2))
    assert issue_region((0.0, 0.0, 1.0, 1.0), config) == FULL
    assert issue_region((0.4, 0.4, 0.6, 0.6), config.model_copy(update={"region": "full"})) == FULL


def test_a_snapshot_is_the_issue_region_cut_and_says_so(faces: FaceDetector, detect) -> None:
    image = photo("messi5.jpg")
    snap = taker(faces, detect).take(image, (0.4, 0.4, 0.6, 0.6), detect(image), 0.0)
    assert snap is not None and not snap.full
    out = jpeg_image(snap.jpeg)
    assert abs(out.shape[0] - 0.4 * 342) <= 2 and abs(out.shape[1] - 0.4 * 548) <= 2  # 548x342 photo
    assert snap.wire == {REGION_KEY: [3000, 3000, 7000, 7000]}


def test_a_full_frame_snapshot_is_logged_and_marked(faces: FaceDetector, detect, caplog) -> None:
    image = photo("messi5.jpg")
    with caplog.at_level(logging.WARNING, logger="agent.vision.privacy"):
        full = taker(faces, detect, region="full")
        snap = full.take(image, (0.4, 0.4, 0.6, 0.6), detect(image), 0.0, "e1")
    assert snap is not None and snap.full
    assert snap.wire == {REGION_KEY: [0, 0, BOX_SCALE, BOX_SCALE], FULL_KEY: True}
    assert jpeg_image(snap.jpeg).shape[:2] == image.shape[:2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("whole frame" in w for w in warnings) and any("full-frame snapshot e1" in w for w in warnings)


def test_snapshots_stay_within_their_size_limits() -> None:
    image = photo("baboon.jpg")  # 512x512, much fine detail: a large JPEG
    config = SnapshotConfig(enabled=True, max_width=300, max_height=200, jpeg_quality=95)
    data = encode_within(image, config)
    assert data is not None and jpeg_image(data).shape[:2] == (200, 200)
    big = encode_within(image, SnapshotConfig(enabled=True, jpeg_quality=95, max_bytes=1_000_000))
    assert big is not None and len(big) > 60_000
    small = encode_within(image, SnapshotConfig(enabled=True, jpeg_quality=95, max_bytes=20_000))
    assert small is not None and len(small) <= 20_000
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert (
        encode_within(noise, SnapshotConfig(enabled=True, max_width=64, max_height=64, max_bytes=1024))
        is None
    )


def test_a_snapshot_over_max_bytes_even_small_is_not_sent(faces: FaceDetector) -> None:
    noise = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    t = taker(faces, None, region="full", max_width=64, max_height=64, max_bytes=1024)
    assert t.take(noise, FULL, [], 0.0) is None
    assert t.counts.too_large == 1 and t.counts.taken == 0


def test_at_most_max_per_minute_snapshots_per_camera(faces: FaceDetector) -> None:
    image = photo("home.jpg")  # a street of houses: nobody to blur
    t = taker(faces, None, max_per_minute=2)
    box = (0.4, 0.4, 0.6, 0.6)
    got = [t.take(image, box, [], s) is not None for s in (0.0, 10.0, 20.0, 59.0, 60.0, 61.0)]
    assert got == [True, True, False, False, True, False]
    assert t.counts.taken == 3 and t.counts.rate_limited == 3


def test_kept_snapshots_are_private_files_and_old_ones_go(faces: FaceDetector, tmp_path: Path) -> None:
    image = photo("home.jpg")
    keep = tmp_path / "snapshots"
    t = taker(faces, None, keep_dir=keep, keep_days=1.0)
    old = keep / "cam-1" / "1-old.jpg"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x")
    two_days = time.time() - 2 * 86400
    os.utime(old, (two_days, two_days))
    snap = t.take(image, (0.4, 0.4, 0.6, 0.6), [], 0.0, "1700000000000-ab")
    assert snap is not None
    kept = keep / "cam-1" / "1700000000000-ab.jpg"
    assert kept.read_bytes() == snap.jpeg
    assert kept.stat().st_mode & 0o777 == 0o600
    assert not old.exists()


def test_blurred_faces_keep_no_more_than_a_few_blocks_of_detail() -> None:
    image = photo("messi5.jpg")
    box = np.asarray([[0.38, 0.25, 0.5, 0.42]], np.float32)  # the player's head
    out = blur_regions(image, box, FACE_BLOCKS)
    h, w = image.shape[:2]
    a, b, c, d = int(0.38 * w), int(0.25 * h), int(np.ceil(0.5 * w)), int(np.ceil(0.42 * h))
    before = cv2.Laplacian(cv2.cvtColor(image[b:d, a:c], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    after = cv2.Laplacian(cv2.cvtColor(out[b:d, a:c], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    assert after < before / 100
    # What is left is at most FACE_BLOCKS x FACE_BLOCKS averages, smoothed: it rebuilds from them.
    small = cv2.resize(out[b:d, a:c], (FACE_BLOCKS, FACE_BLOCKS), interpolation=cv2.INTER_AREA)
    again = blur_regions(
        cv2.resize(small, (c - a, d - b), interpolation=cv2.INTER_NEAREST), np.asarray([FULL]), FACE_BLOCKS
    )
    assert np.abs(again.astype(int) - out[b:d, a:c].astype(int)).mean() < 6


def _pipeline_with_garbage(tmp_path: Path, make_model, **snapshots) -> CameraPipeline:
    # Real footage, the real detector for people, and a model that sees garbage between the walkers.
    rows = yolov8_rows([(24, 24, 40, 40)], [[0.9]])
    garbage = make_model(rows, adapter="yolov8", classes=["garbage"])
    config = CameraConfig(
        id="cam-1",
        source="unused.avi",
        models=[ROOT / "models" / "nanodet-coco", garbage],
        issues={"garbage": {"k": 1, "n": 1, "min_dwell_s": 0.0}},
        motion={"enabled": False},
        snapshots={"enabled": True, "face_model": ROOT / "models" / "blazeface", **snapshots},
    )
    return CameraPipeline(config, [load_engine(m) for m in config.models])


def _first_start(pipeline: CameraPipeline):
    cap = cv2.VideoCapture(str(OPENCV_DATA / "vtest.avi"))
    try:
        for i in range(20):
            ok, image = cap.read()
            assert ok
            result = pipeline.process(Frame(image, i, i * 0.5, 1_700_000_000_000 + i * 500))
            starts = [e for e in result.events if e.kind == ISSUE and e.phase == START]
            if starts:
                return starts[0]
    finally:
        cap.release()
    pytest.fail("no garbage issue started")


def test_an_issue_start_carries_a_fail_closed_snapshot_on_the_wire(
    tmp_path: Path, make_model, detect, faces
) -> None:
    pipeline = _pipeline_with_garbage(tmp_path, make_model)
    event = _first_start(pipeline)
    assert event.image is not None and event.blurred is True
    wire = msgpack.unpackb(encode(event), raw=False)
    assert wire["blr"] is True and FULL_KEY not in wire
    assert wire[REGION_KEY] == [
        round(v * BOX_SCALE)
        for v in issue_region(tuple(b / BOX_SCALE for b in event.box), pipeline.config.snapshots)
    ]
    assert decode(encode(event.stamped("gw-1", 1))).extra[REGION_KEY] == wire[REGION_KEY]
    out = jpeg_image(event.image)
    assert people(detect(out)) == [] and len(faces(out, 0.4)) == 0


def test_full_frame_snapshots_are_marked_on_the_wire(tmp_path: Path, make_model) -> None:
    event = _first_start(_pipeline_with_garbage(tmp_path, make_model, region="full"))
    wire = msgpack.unpackb(encode(event), raw=False)
    assert wire[FULL_KEY] is True and wire[REGION_KEY] == [0, 0, BOX_SCALE, BOX_SCALE]
    assert jpeg_image(event.image).shape[:2] == (576, 768)


def test_without_the_face_model_no_image_leaves_but_events_do(tmp_path: Path, make_model, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="agent.vision.pipeline"):
        pipeline = _pipeline_with_garbage(tmp_path, make_model, face_model=tmp_path / "no-such-model")
    assert pipeline.snapshots is None
    assert any("snapshots are off" in r.getMessage() for r in caplog.records)
    event = _first_start(pipeline)
    assert event.image is None and event.blurred is None


def test_camera_health_counts_snapshots(tmp_path: Path, make_model) -> None:
    pipeline = _pipeline_with_garbage(tmp_path, make_model, max_per_minute=1)
    _first_start(pipeline)
    camera = Camera(pipeline.config, pipeline=pipeline)
    assert camera.health()["snapshots"] == {"taken": 1, "rate_limited": 0, "too_large": 0, "not_clean": 0}


def test_kept_snapshots_are_sealed_with_the_outbox_key_when_the_gateway_seals(
    faces: FaceDetector, tmp_path: Path
) -> None:
    from agent.uplink.atrest import AtRestError, Sealer

    sealer = Sealer.from_file(tmp_path / "outbox.key", "pole-s")
    keep = tmp_path / "snapshots"
    t = taker(faces, None, keep_dir=keep)
    t.seal = sealer.seal_file
    snap = t.take(photo("home.jpg"), (0.4, 0.4, 0.6, 0.6), [], 0.0, "1700000000000-cd")
    assert snap is not None
    kept = keep / "cam-1" / "1700000000000-cd.jpg.sealed"
    stored = kept.read_bytes()
    assert b"\xff\xd8\xff" not in stored[:64] and snap.jpeg[:200] not in stored
    assert sealer.open_file(kept.name, stored) == snap.jpeg
    with pytest.raises(AtRestError, match="renamed"):
        sealer.open_file("1700000000001-cd.jpg.sealed", stored)
    assert not list((keep / "cam-1").glob("*.jpg")), "no plain copy"

    # a technician opens it on the gateway with edgectl
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "tools.edgectl", "events", "snapshot", str(kept), "--key-file",
         str(tmp_path / "outbox.key"), "--device", "pole-s", "-o", str(tmp_path / "seen.jpg")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "seen.jpg").read_bytes() == snap.jpeg
    wrong = subprocess.run(
        [sys.executable, "-m", "tools.edgectl", "events", "snapshot", str(kept), "--key-file",
         str(tmp_path / "outbox.key"), "--device", "pole-t"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert wrong.returncode == 1 and "does not open" in wrong.stderr
