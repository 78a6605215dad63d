"""Training pieces on their own: the weight average's arithmetic and a bfloat16 detector that learns."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the training pipeline needs the train extra (pip install -e .[train])"
)

from models.pipeline.data import render_detection_set  # noqa: E402
from models.pipeline.nets import Detector  # noqa: E402
from models.pipeline.objects import CLASSES  # noqa: E402
from models.pipeline.train import TrainConfig, WeightAverage, detector_loss, train_detector  # noqa: E402


def _tiny() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))


def test_weight_average_follows_the_ramped_decay_and_copies_counters() -> None:
    torch.manual_seed(0)
    live = _tiny()
    avg = WeightAverage(live, decay=0.9, ramp_steps=2.0)
    start = live[0].weight.detach().clone()
    expected = start.clone()
    for step in range(1, 4):
        with torch.no_grad():
            live[0].weight.add_(1.0)
        live.train()(torch.randn(4, 1, 3, 3))  # moves the batch-norm statistics and its counter
        avg.update(live)
        d = 0.9 * (1 - math.exp(-step / 2.0))
        expected = d * expected + (1 - d) * live[0].weight.detach()
    assert torch.allclose(avg.model[0].weight, expected, atol=1e-6)
    assert not torch.allclose(avg.model[0].weight, live[0].weight)  # an average, not a copy
    assert int(avg.model[1].num_batches_tracked) == int(live[1].num_batches_tracked) == 3
    assert not any(p.requires_grad for p in avg.model.parameters())


def test_first_update_takes_the_live_weights_whole() -> None:
    """At update 1 the ramp gives a small decay, so the random initial weights are mostly forgotten."""
    live = _tiny()
    avg = WeightAverage(live, decay=0.9999, ramp_steps=2000.0)
    with torch.no_grad():
        live[0].weight.fill_(5.0)
    avg.update(live)
    assert torch.allclose(avg.model[0].weight, torch.full_like(avg.model[0].weight, 5.0), atol=0.01)


def test_bfloat16_training_learns_like_float32_and_hands_back_float32_nchw_models() -> None:
    """Same seed, same two frames, 40 steps each way. Losses are taken in training mode (batch
    statistics): 40 steps are too few for the running batch-norm statistics to settle."""
    data = render_detection_set(0, 2, 320, 192)
    x = torch.from_numpy(data.images.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    final = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = Detector(len(CLASSES), 320, 192).train()
        with torch.no_grad():
            before = detector_loss(model, x, data.boxes)[0].item()
        cfg = TrainConfig(steps=40, batch=2, lr=2e-3, log_every=1000, ema_decay=0.99, bf16=bf16)
        trained, averaged = train_detector(model, data, cfg, log=lambda _m: None)
        assert averaged is not None
        for m in (trained, averaged):
            assert all(p.dtype == torch.float32 for p in m.parameters())
            assert all(p.is_contiguous() for p in m.parameters())  # channels-last undone before export
        with torch.no_grad():
            after = detector_loss(trained.train(), x, data.boxes)[0]
        assert after.dtype == torch.float32
        final[bf16] = after.item()
        assert final[bf16] < 0.3 * before
    assert final[True] < 1.5 * final[False]
