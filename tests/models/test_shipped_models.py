"""The committed models: manifests the agent accepts, declared output layouts, and real quality checks
on held-out rendered frames (seeds training never used)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agent.vision.manifest import load_manifest, sha256_file, verify_model_file
from models.pipeline.build import MODELS
from models.pipeline.data import HELDOUT_SEEDS
from models.pipeline.evaluate import decode, iou_matrix, session
from models.pipeline.letterbox import letterbox, to_source, to_tensor
from models.pipeline.objects import CLASSES
from models.pipeline.render import render_crowd, render_street

DETECTOR = MODELS / "street-issues"
COUNTER = MODELS / "crowd-counter"


@pytest.fixture(scope="module")
def detector():
    manifest = load_manifest(DETECTOR)
    return manifest, session(verify_model_file(DETECTOR, manifest))


@pytest.fixture(scope="module")
def counter():
    manifest = load_manifest(COUNTER)
    return manifest, session(verify_model_file(COUNTER, manifest))


@pytest.mark.parametrize("folder", [DETECTOR, COUNTER], ids=["street-issues", "crowd-counter"])
def test_manifest_validates_and_every_listed_file_matches_its_hash(folder) -> None:
    manifest = load_manifest(folder)
    assert verify_model_file(folder, manifest).is_file()
    assert manifest.file in manifest.files and len(manifest.files) >= 3  # FP32, INT8, golden image
    for name, digest in manifest.files.items():
        assert sha256_file(folder / name) == digest, name
    assert (folder / "MODEL_CARD.md").read_text().count("synthetic") >= 2
    assert manifest.golden is not None and (folder / manifest.golden.image).is_file()
    for name in manifest.files:
        if name.endswith(".onnx"):
            # crowd-counter carries NanoDet-g's backbone (nanodet-coco's FP32 is 15 MB)
            assert (folder / name).stat().st_size < 16_000_000, f"{name} is too large to commit"


def test_detector_output_has_the_yolov8_layout(detector) -> None:
    manifest, sess = detector
    assert manifest.adapter == "yolov8" and manifest.classes == list(CLASSES)
    inp = sess.get_inputs()[0]
    assert inp.shape == [1, 3, manifest.input.height, manifest.input.width] and inp.type == "tensor(float)"
    x = np.full((1, 3, manifest.input.height, manifest.input.width), 114 / 255, dtype=np.float32)
    (out,) = sess.run(None, {inp.name: x})
    n = sum((manifest.input.width // s) * (manifest.input.height // s) for s in (8, 16, 32))
    assert out.shape == (1, 4 + len(CLASSES), n) and out.dtype == np.float32
    assert out[0, 4:].min() >= 0.0 and out[0, 4:].max() <= 1.0  # scores are already sigmoid-ed
    assert (out[0, 2:4] >= 0).all()  # widths and heights
    assert out[0, 4:].max() < 0.5, "a blank grey frame should not produce confident detections"


def test_counter_output_is_a_density_map(counter) -> None:
    manifest, sess = counter
    assert manifest.adapter == "density" and manifest.task == "density"
    inp = sess.get_inputs()[0]
    x = np.zeros((1, 3, manifest.input.height, manifest.input.width), dtype=np.float32)  # a mid-grey frame
    (out,) = sess.run(None, {inp.name: x})
    assert out.shape == (1, 1, manifest.input.height // 8, manifest.input.width // 8)
    assert out.min() >= 0.0
    assert out.sum() < 3.0, "an empty frame should count nearly nobody"


def _clear_instances(limit: int = 6) -> dict[str, list]:
    """Per class, held-out frames (noon or dusk, no fog) with a large, unoccluded instance of it."""
    found: dict[str, list] = {c: [] for c in CLASSES}
    seed = HELDOUT_SEEDS
    while any(len(v) < limit for v in found.values()) and seed < HELDOUT_SEEDS + 400:
        scene = render_street(seed)
        seed += 1
        if scene.conditions.lighting == "night" or scene.conditions.weather == "fog":
            continue
        for lab in scene.labels:
            name = CLASSES[lab.cls]
            x1, y1, x2, y2 = lab.box
            if y2 - y1 >= 40 and x2 - x1 >= 16 and len(found[name]) < limit:
                found[name].append((scene.image, lab.box))
    return found


def test_detector_finds_a_clearly_visible_object_of_each_class(detector) -> None:
    manifest, sess = detector
    per_class = {CLASSES.index(k): v for k, v in manifest.thresholds.per_class.items()}
    misses = {}
    for name, cases in _clear_instances().items():
        assert cases, f"the held-out sample has no clear {name}"
        hits = 0
        for image, box in cases:
            rgb, lb = letterbox(image, manifest.input.width, manifest.input.height)
            raw = sess.run(None, {sess.get_inputs()[0].name: to_tensor(rgb)})[0]
            dets = [d for d in decode(raw, per_class, manifest.thresholds.confidence, manifest.thresholds.iou)
                    if CLASSES[d.cls] == name]  # fmt: skip
            if dets:
                boxes = to_source(lb, np.array([d.box for d in dets]))
                hits += iou_matrix(np.array([box]), boxes).max() >= 0.5
        if hits < 0.75 * len(cases):
            misses[name] = f"{hits}/{len(cases)}"
    assert not misses, f"clear objects missed (found/shown): {misses}"


def test_golden_image_reproduces_the_manifest(detector) -> None:
    manifest, sess = detector
    image = cv2.imread(str(DETECTOR / manifest.golden.image))
    rgb, lb = letterbox(image, manifest.input.width, manifest.input.height)
    raw = sess.run(None, {sess.get_inputs()[0].name: to_tensor(rgb)})[0]
    per_class = {CLASSES.index(k): v for k, v in manifest.thresholds.per_class.items()}
    dets = decode(raw, per_class, manifest.thresholds.confidence, manifest.thresholds.iou)
    h, w = image.shape[:2]
    assert len(manifest.golden.detections) >= 3
    for g in manifest.golden.detections:
        mine = [to_source(lb, np.array(d.box)) / [w, h, w, h] for d in dets if CLASSES[d.cls] == g.label]
        assert mine and iou_matrix(np.array([g.box]), np.array(mine)).max() >= g.min_iou, g.label


@pytest.fixture(scope="module")
def counter_engine():
    from agent.vision.engine import EngineOptions, load_engine

    engine = load_engine(COUNTER, EngineOptions(intra_op_threads=2, self_test=False))
    return engine, engine.preprocessor()


def test_counter_is_within_tolerance_on_the_unseen_rendered_style(counter_engine) -> None:
    """The renderer's scenes are a style the counter never trained on (goal: 25 % for 10-200 people).
    Crowds under 20 are left out: the agent counts those by detection."""
    engine, prep = counter_engine
    errors = []
    for k, people in enumerate((40, 80, 120, 180), start=1):
        scene = render_crowd(HELDOUT_SEEDS + 500 + k, count=people)
        count = engine.infer(scene.image, prep).count
        errors.append(abs(count - len(scene.points)) / len(scene.points))
    assert np.mean(errors) <= 0.25, f"relative count errors {np.round(errors, 2)}"
    assert max(errors) <= 0.4, f"relative count errors {np.round(errors, 2)}"


def test_counter_counts_people_on_real_footage_it_was_not_trained_on(counter_engine) -> None:
    """vtest's 40 test frames through the agent's engine: 1.2.0 read 10.8 people where 6.35 are (it
    took grass and paving for people); 1.3.0 read 5.0."""
    from models.pipeline.footage import load_footage

    engine, prep = counter_engine
    frames = load_footage("vtest").test
    counts = np.array([engine.infer(f.image, prep).count for f in frames])
    truth = np.array([sum(t.label == "person" for t in f.truth) for f in frames])
    assert np.abs(counts - truth).mean() <= 1.5 and abs((counts - truth).mean()) <= 1.5, (counts, truth)


def test_golden_crowd_count_reproduces(counter, counter_engine) -> None:
    manifest, _ = counter
    engine, prep = counter_engine
    count = engine.infer(cv2.imread(str(COUNTER / manifest.golden.image)), prep).count
    assert manifest.golden.count is not None
    assert abs(count - manifest.golden.count) <= manifest.golden.count_tolerance * manifest.golden.count
