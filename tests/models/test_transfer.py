"""street-issues-rw: the ONNX-in-torch backbone, the detector's interfaces and a smoke build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models.pipeline import evaluate, transfer
from models.pipeline.onnx_torch import OnnxSubgraph, head_inputs, with_outputs
from models.pipeline.train import detector_loss

if not transfer.RAW.is_file():  # said loudly, not skipped: the build cannot run without it
    raise RuntimeError(
        f"{transfer.RAW} is missing: it is committed; restore it or run scripts/import-models.sh"
    )


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    frames = transfer.video_frames("vtest.avi", lambda i: i == 420, 1)
    assert frames, "vtest.avi could not be read"
    return frames[0]


def test_subgraph_matches_onnxruntime_on_a_real_frame(frame: np.ndarray) -> None:
    torch.set_num_threads(2)
    model = onnx.load(str(transfer.RAW))
    feats = head_inputs(model, transfer.SCORE_OUTPUTS)
    assert [f.split("/")[-1] for f in feats] == [
        "onnx_tf_prefix_Add_107:0",
        "onnx_tf_prefix_Add_128:0",
        "onnx_tf_prefix_Add_149:0",
    ]
    x = transfer.preprocess(frame)[None]
    sess = ort.InferenceSession(
        with_outputs(transfer.RAW, feats).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    want = sess.run(None, {"input_1:0": x})
    with torch.no_grad():
        got = OnnxSubgraph(transfer.RAW, feats)(torch.from_numpy(x))
    for w, g, size in zip(want, got, (52, 26, 13), strict=True):
        assert w.shape == (1, 128, size, size)
        assert float(np.abs(w - g.numpy()).max()) < 1e-4


def test_subgraph_refuses_ops_it_does_not_implement() -> None:
    with pytest.raises(NotImplementedError, match="Sigmoid"):
        OnnxSubgraph(transfer.RAW, ["Identity:0"])  # the head's Sigmoid/Reshape/Transpose


def test_input_is_nanodets_own_so_one_frame_serves_both(frame: np.ndarray) -> None:
    from models.pipeline.import_detector import preprocess as nanodet_preprocess

    assert np.abs(transfer.preprocess(frame) - nanodet_preprocess(frame)).max() < 1e-4


def test_detector_fits_the_training_code_and_exports_what_it_computes(
    tmp_path: Path, frame: np.ndarray
) -> None:
    torch.set_num_threads(2)
    model = transfer.TransferDetector()
    assert (model.width, model.height, model.num_classes) == (416, 416, 5)
    assert model.points.shape == (2, 3549) and model.strides.shape == (1, 3549)
    model.rgb01_input = True  # train.train_detector's batches: RGB 0..1
    x = torch.rand(2, 3, 416, 416)
    boxes = [np.array([[0, 100, 100, 180, 160]], np.float32), np.zeros((0, 5), np.float32)]
    model.train()
    loss, parts = detector_loss(model, x, boxes)
    loss.backward()
    assert np.isfinite(loss.item()) and parts["pos"] > 0
    assert all(p.grad is None for p in model.backbone.parameters())  # frozen
    assert any(p.grad is not None for p in model.head.parameters())
    model.eval()
    path = tmp_path / "m.onnx"
    transfer.export(model, path)
    tensor = transfer.preprocess(frame)[None]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": tensor})[0]
    model.rgb01_input, model.export_mode = False, True
    with torch.no_grad():
        want = model(torch.from_numpy(tensor)).numpy()
    assert got.shape == (1, 9, 3549)
    assert np.abs(got - want).max() < 1e-2 * max(1.0, float(np.abs(want).max()))


def test_smoke_build_writes_a_folder_the_agent_loads(tmp_path: Path) -> None:
    from agent.vision.engine import EngineOptions, load_engine

    metrics = transfer.build(tmp_path, transfer.SMOKE, log=lambda _m: None)
    engine = load_engine(tmp_path, EngineOptions(intra_op_threads=2))
    assert engine.manifest.labels == list(transfer.ISSUES)
    assert engine.manifest.input == transfer.INPUT
    assert set(engine.manifest.thresholds.per_class) == set(transfer.ISSUES)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["smoke"] is True and saved == json.loads(json.dumps(metrics))
    for key in ("held_out_composites", "unseen_style", "false_alarms_real", "ms_per_frame_2_threads"):
        assert key in saved
    assert (tmp_path / "MODEL_CARD.md").read_text().startswith("# street-issues-rw")


def test_head_pilot_trains_heads_of_other_shapes_side_by_side(tmp_path) -> None:
    """models.pipeline.head_pilot compare: each WIDTHxDEPTH head trains on one feature cache, exports,
    and is scored on held-out composites as the build scores its model; ``data`` trains the shipped
    shape on prefixes of one cache and scores the unseen style too."""
    from models.pipeline import head_pilot

    results = head_pilot.compare([(16, 1, False), (24, 2, True)], n_train=6, steps=2, out=tmp_path, n_held=4)
    assert set(results) == {"16x1", "24x2t"}
    for name, r in results.items():
        assert (tmp_path / f"head-{name}.onnx").is_file()
        assert set(r["test"]) == {*transfer.ISSUES, "all"}
    assert transfer.IssueHead(5, width=24, depth=2).stems[0][1].conv.in_channels == 24
    sizes = head_pilot.data_sizes([4, 6], steps=2, out=tmp_path, n_held=4, n_style=2)
    assert set(sizes) == {"4", "6"} and (tmp_path / "data-4.onnx").is_file()
    assert all(set(r["style"]) == {*transfer.ISSUES, "all"} for r in sizes.values())


def test_head_pilot_refuses_a_shape_it_cannot_read(capsys) -> None:
    from models.pipeline import head_pilot

    assert head_pilot.head_shapes("64x2, 96x3t") == [(64, 2, False), (96, 3, True)]
    with pytest.raises(SystemExit):
        head_pilot.main(["compare", "64x2,96"])
    assert "'96' is not WIDTHxDEPTH[t] (e.g. 96x3 or 96x3t)" in capsys.readouterr().err


def test_training_features_are_cached_as_they_are_painted() -> None:
    """train_features composites and caches in one pass, keeping only the first images: its features
    and boxes equal make_set's images cached afterwards, and a smaller set is its prefix."""
    bgs = transfer.backgrounds(False, smoke=True)
    sess = transfer.backbone_session()
    streamed = transfer.train_features(sess, 123, 3, bgs, 0.3, keep=1)
    listed = transfer.make_set(123, 3, bgs, 0.3)
    cached = transfer.cache_features(sess, listed.images)
    assert streamed.negatives == listed.negatives and len(streamed.sample) == 1
    assert np.array_equal(streamed.sample[0], listed.images[0])
    for a, b in zip(streamed.boxes, listed.boxes, strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(streamed.feats, cached, strict=True):
        assert a.shape[0] == 3 and np.array_equal(a, b)
    prefix = transfer.make_set(123, 2, bgs, 0.3)
    assert all(np.array_equal(a, b) for a, b in zip(prefix.images, listed.images[:2], strict=False))
    with pytest.raises(ValueError, match="expected 4 images to cache, got 3"):
        transfer.cache_features(sess, iter(listed.images), 4)


def test_both_operating_points_tune_on_validation_and_the_guard_bounds_the_guarded_one() -> None:
    """The shipped model on a few held-out composites: the guarded-F1 point keeps every class at or
    above its real-frame guard; the precision point (the default) has no guard."""
    held = transfer.backgrounds(True, smoke=True)
    val, test = transfer.make_set(transfer.VAL_SEED, 8, held), transfer.make_set(transfer.TEST_SEED, 4, held)
    sess = evaluate.session(transfer.TARGET / "street-issues-rw-int8.onnx", 2)
    plain = transfer.held_out_figures(sess, val, test, held)
    guarded = transfer.held_out_figures(sess, val, test, held, "guarded-f1")
    assert plain["operating_point"] == "precision" and "guard" not in plain
    assert set(guarded["guard"]) == set(guarded["thresholds"]) == set(transfer.ISSUES)
    for c, t in guarded["thresholds"].items():
        assert guarded["guard"][c] - 1e-9 <= t <= 0.9 + 1e-9
    with pytest.raises(SystemExit):
        transfer.main(["--operating-point", "best"])
