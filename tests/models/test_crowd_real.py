"""crowd-counter's real-background build: composites, the split of real frames, and a smoke build."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agent.vision.manifest import load_manifest, verify_model_file
from models.pipeline import build, crowd_real
from models.pipeline.footage import load_footage


@pytest.fixture(scope="module")
def footage():
    return load_footage("vtest")


@pytest.fixture(scope="module")
def train_bgs(footage):
    return crowd_real.backgrounds(False, crowd_real.split_tune(footage)[0], smoke=True)


def test_tune_frames_split_in_two_halves_and_no_test_frame_is_trained_on(footage) -> None:
    train, rule = crowd_real.split_tune(footage)
    test = {f.index for f in footage.test}
    assert len(train) == len(rule) == 20
    assert not {f.index for f in train} & {f.index for f in rule}
    assert not ({f.index for f in train} | {f.index for f in rule}) & test
    bgs = crowd_real.backgrounds(False, train, smoke=True)
    trained_vtest = {
        int(b.name.split("-")[1]) for b in bgs if b.name.startswith("vtest-") and b.name != "vtest-median"
    }
    assert trained_vtest == {f.index for f in train}


def test_held_out_backgrounds_are_not_training_backgrounds(footage, train_bgs) -> None:
    held = crowd_real.backgrounds(True, crowd_real.split_tune(footage)[0], smoke=True)
    assert not set(crowd_real.TRAIN_PHOTOS) & set(crowd_real.HELD_PHOTOS)
    train_images = [b.image for b in train_bgs if b.name != "vtest-median"]
    for b in held:
        if b.name != "vtest-median":  # the empty street corner is painted on in both, by other seeds
            assert not any(t.shape == b.image.shape and np.array_equal(t, b.image) for t in train_images), (
                b.name
            )


def test_real_people_become_head_points_inside_their_boxes(footage) -> None:
    frame = next(f for f in footage.tune if sum(t.label == "person" for t in f.truth) >= 3)
    heads = crowd_real.person_heads(frame)
    h, w = frame.image.shape[:2]
    boxes = [t.box for t in frame.truth if t.label == "person"]
    assert len(heads) == len(boxes)
    for (x, y), (x1, y1, x2, y2) in zip(heads, boxes, strict=True):
        assert x1 * w <= x <= x2 * w
        assert y1 * h <= y <= y1 * h + 0.2 * (y2 - y1) * h  # the head, near the top of the box


def test_a_composite_counts_its_painted_people_and_the_real_ones(train_bgs) -> None:
    real = next(b for b in train_bgs if b.name.startswith("vtest-") and len(b.heads) >= 3)
    pool = [b.image for b in train_bgs]
    img, heads = crowd_real.composite(real, np.random.default_rng(1), pool, 0)
    assert img.shape == real.image.shape and img.dtype == np.uint8
    assert len(heads) <= len(real.heads) and len(heads) >= len(real.heads) - 2  # a zoom may crop a few
    img, heads = crowd_real.composite(real, np.random.default_rng(2), pool, 80)
    h, w = img.shape[:2]
    assert len(real.heads) + 40 <= len(heads) <= len(real.heads) + 80
    assert (
        (heads[:, 0] >= 0).all()
        and (heads[:, 0] < w).all()
        and (heads[:, 1] >= 0).all()
        and (heads[:, 1] < h).all()
    )
    empty = next(b for b in train_bgs if not b.name.startswith("vtest"))
    assert len(crowd_real.composite(empty, np.random.default_rng(3), pool, 0)[1]) == 0


def test_vtest_is_a_third_of_the_backgrounds_painted_on(train_bgs) -> None:
    w = crowd_real.background_weights(train_bgs)
    vtest = sum(wi for wi, b in zip(w, train_bgs, strict=True) if b.name.startswith("vtest"))
    assert abs(w.sum() - 1) < 1e-9 and abs(vtest - 0.35) < 1e-9


def test_agent_rule_counts_detections_below_sparse_below_and_never_fewer() -> None:
    density = np.array([3.0, 25.0, 25.0])
    detected = np.array([5.0, 10.0, 30.0])
    assert crowd_real.agent_rule(density, detected, 20).tolist() == [5.0, 25.0, 30.0]


def test_build_crowd_counter_runs_the_real_background_build(tmp_path) -> None:
    assert build.main(["crowd-counter", "--smoke", "--out", str(tmp_path)]) == 0
    manifest = load_manifest(tmp_path)
    verify_model_file(tmp_path, manifest)
    assert manifest.version == crowd_real.VERSION and manifest.task == "density"
    assert (manifest.input.width, manifest.input.height, manifest.input.color) == (
        416,
        416,
        "BGR",
    )  # NanoDet's input
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["real_footage"]["test_frames"] == 40 and m["rule_frames"]["detections"]["frames"] == 20
    assert set(m["rule_frames"]["agent_rule"]) == {"0", "5", "10", "20", "30"}
    for k in ("fp32", "int8"):
        assert m[k]["real_test"]["frames"] == 40 and m[k]["style"] and m[k]["composites"]
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "Unseen style" in card and "Real footage" in card and "What is still weak" in card
    assert build.main(["crowd-counter", "--smoke", "--remeasure", "--out", str(tmp_path)]) == 2


def test_what_a_camera_reports_on_the_unseen_style_is_measured_by_the_agents_rule() -> None:
    """crowd_agent runs the shipped pair through the agent's engines: the agent's count is never below
    the detections and equals the density count wherever that reaches sparse_below."""
    from models.pipeline import crowd_agent

    r = crowd_agent.measure(4)
    assert r["frames"] == 4 and r["sparse_below"] == 20.0 and r["detector"] == "street-vision"
    assert set(r["counts"]) == {"density", "detections", "agent"}
    for truth, density, detected, agent in r["per_frame"]:
        assert truth >= 0 and agent >= detected
        assert agent == (max(density, detected) if density >= 20 else detected)
    text = crowd_agent.section(r)
    assert text.startswith(crowd_agent.BEGIN) and text.rstrip().endswith(crowd_agent.END)
    assert "what the agent reports (sparse_below 20)" in text


def test_the_exported_counter_is_its_head_on_nanodet_cocos_own_features(tmp_path, footage) -> None:
    """The shipped graph must be nanodet-coco's backbone as it is, then the trained head: the head's
    output on the cached features equals the exported file's on the frame (and the letterbox's border
    is cut away as the agent's adapter does)."""
    import onnxruntime as ort
    import torch

    from models.pipeline import crowd_head
    from models.pipeline.import_detector import preprocess
    from models.pipeline.transfer import backbone_session, cache_features

    torch.manual_seed(3)
    head = crowd_head.DensityHead().eval()
    path = tmp_path / "c.onnx"
    crowd_head.export(head, path)
    image = footage.test[0].image
    feats = cache_features(backbone_session(), [image])
    with torch.no_grad():
        want = head(*(torch.from_numpy(f.astype(np.float32)) for f in feats)).numpy()[0, 0] / 100.0
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"images": preprocess(image)[None]})[0][0, 0]
    assert got.shape == (52, 52)
    assert np.abs(got - want).max() <= 2e-3 * max(1.0, float(np.abs(want).max()))  # float16 cache
    # vtest is 768x576: the letterbox leaves 52 rows of black above and below, 6.5 map cells each
    inner = crowd_head.onnx_counts(sess, [image])[0]
    assert inner == pytest.approx(float(np.clip(got[6:46], 0, None).sum()), rel=0.02)


def test_head_points_move_into_the_centred_416_letterbox() -> None:
    from models.pipeline import crowd_head

    img = np.zeros((360, 640, 3), np.uint8)
    pts = crowd_head.to_input(img, np.array([[320.0, 180.0], [0.0, 0.0]]))
    assert pts[0] == pytest.approx([208.0, 208.0])
    assert pts[1] == pytest.approx([0.0, 208 - 117.0], abs=0.6)  # 640x360 -> 416x234, 91 px pad
    maps = crowd_head.targets([img], [np.array([[320.0, 180.0]] * 5)])
    assert maps.shape == (1, 52, 52) and maps.sum() == pytest.approx(500.0, rel=1e-4)  # 5 people x 100


def test_what_a_camera_reports_on_other_real_photos_stays_near_the_people_in_them() -> None:
    """OpenCV's labelled stills (other cameras than vtest's, never trained or tuned on): the agent's
    count is never below the detections, and over the ten photos it is at most one person off on
    average (1.3.0's density alone was 12 off: it read kerbs and barriers as crowds)."""
    from models.pipeline import crowd_agent

    s = crowd_agent.measure_stills()
    assert s["photos"] == 10
    assert all(r["agent"] >= r["detections"] for r in s["per_photo"])
    assert s["mae"]["agent"] <= 1.0, s
    assert s["mae"]["density"] <= 5.0, s
    assert "### Other real photos" in "\n".join(crowd_agent.stills_section(s))


def test_the_counter_keeps_counting_real_frames_under_camera_conditions() -> None:
    """vtest's test frames and the photos, degraded as cameras degrade them (dusk, night, a soft lens,
    low resolution, JPEG 20, motion blur, a tilt): the density count stays within about two people
    of the people there (2.0.0's worst: 1.76 on vtest at night, 5.36 on the photos at JPEG 20)."""
    from models.pipeline import camera_conditions
    from models.pipeline.build import MODELS

    r = camera_conditions.measure(MODELS / "crowd-counter")
    assert set(r["conditions"]) == set(camera_conditions.CONDITIONS)
    for name, row in r["conditions"].items():
        assert row["vtest"]["mae"] <= 2.5, (name, row)
        assert row["stills"]["mae"] <= 6.5, (name, row)
    text = camera_conditions.section(r)
    assert "| night |" in text and text.startswith(camera_conditions.BEGIN)
