"""The model-card arithmetic on hand-made cases: matching, difficult boxes, AP, thresholds, size bands."""

from __future__ import annotations

import numpy as np
import pytest

from models.pipeline import evaluate as ev
from models.pipeline.data import DetectionSet


def _set(*boxes: list[tuple[float, ...]]) -> DetectionSet:
    images = np.zeros((len(boxes), 4, 4, 3), dtype=np.uint8)
    labels = [np.array(b, dtype=np.float32).reshape(-1, 5) for b in boxes]
    return DetectionSet(images, labels, ["noon"] * len(boxes), ["clear"] * len(boxes))


def _det(cls: int, score: float, box: tuple[float, float, float, float]) -> ev.Detection:
    return ev.Detection(cls, score, box)


def test_precision_recall_and_ap_count_matches_misses_and_false_alarms() -> None:
    data = _set([(0, 10, 10, 50, 50), (0, 100, 10, 140, 50)], [(1, 10, 10, 60, 60)])
    dets = [
        [_det(0, 0.9, (10, 10, 50, 50)), _det(0, 0.8, (200, 200, 240, 240))],  # one hit, one false alarm
        [_det(1, 0.7, (12, 12, 60, 60)), _det(1, 0.6, (12, 12, 60, 60))],  # a duplicate is a false alarm
    ]
    rep = ev.score(dets, data, 2, {0: 0.5, 1: 0.5}, min_px=8)
    assert rep.gt == {0: 2, 1: 1}
    assert rep.precision[0] == pytest.approx(0.5) and rep.recall[0] == pytest.approx(0.5)
    assert rep.precision[1] == pytest.approx(0.5) and rep.recall[1] == pytest.approx(1.0)
    assert rep.ap[0] == pytest.approx(0.5) and rep.ap[1] == pytest.approx(1.0)
    # a threshold above the false alarm's score leaves class 0 with a perfect precision
    assert ev.score(dets, data, 2, {0: 0.85, 1: 0.5}, min_px=8).precision[0] == pytest.approx(1.0)


def test_difficult_boxes_are_neither_misses_nor_false_alarms_and_scale_with_the_input() -> None:
    data = _set([(0, 10, 10, 20, 20), (0, 100, 100, 140, 140)])  # 10 px and 40 px objects
    dets = [[_det(0, 0.9, (10, 10, 20, 20))]]  # only the small one is found
    at_640 = ev.score(dets, data, 1, {0: 0.5}, min_px=ev.min_eval_px(640))  # 16 px limit: small is difficult
    assert at_640.gt[0] == 1 and at_640.recall[0] == 0.0 and np.isnan(at_640.precision[0])
    at_320 = ev.score(dets, data, 1, {0: 0.5}, min_px=ev.min_eval_px(320))  # 8 px: it counts
    assert at_320.gt[0] == 2 and at_320.recall[0] == pytest.approx(0.5) and at_320.precision[0] == 1.0


def test_thresholds_are_the_lowest_score_reaching_the_target_precision() -> None:
    gt = [(0, 10 + 60 * i, 10, 50 + 60 * i, 50) for i in range(4)]
    data = _set(gt)
    hits = [_det(0, s, (10 + 60 * i, 10, 50 + 60 * i, 50)) for i, s in enumerate((0.95, 0.85, 0.75, 0.65))]
    alarms = [_det(0, s, (300, 200 + 5 * i, 340, 240 + 5 * i)) for i, s in enumerate((0.8, 0.5))]
    # above 0.8: 2 hits of 2 (precision 1.0); from 0.8: one false alarm in; from 0.66: 4 hits and 1 alarm
    t = ev.tune_thresholds([hits + alarms], data, 1, 0.8, min_px=8)[0]
    assert t == pytest.approx(0.51)
    assert ev.tune_thresholds([hits + alarms], data, 1, 0.99, min_px=8)[0] == pytest.approx(0.81)


def test_operating_point_takes_the_best_f1_above_the_precision_floor_and_the_real_frame_guard() -> None:
    gt = [(0, 10 + 60 * i, 10, 50 + 60 * i, 50) for i in range(4)]
    data = _set(gt)
    hits = [_det(0, s, (10 + 60 * i, 10, 50 + 60 * i, 50)) for i, s in enumerate((0.95, 0.85, 0.75, 0.65))]
    alarms = [_det(0, s, (300, 200 + 5 * i, 340, 240 + 5 * i)) for i, s in enumerate((0.8, 0.5))]
    dets = [hits + alarms]
    # from 0.51: 4 hits, 1 alarm (P 0.8, F1 0.889), the best F1 at precision 0.8
    assert ev.operating_point(dets, data, 1, ev.real_frame_guard([], 1), 0.8, min_px=8)[0] == pytest.approx(
        0.51
    )
    # a floor of 0.9 leaves only thresholds above the 0.8 alarm: 0.81 (2 of 4 at P 1.0, F1 0.667) is best
    assert ev.operating_point(dets, data, 1, ev.real_frame_guard([], 1), 0.9, min_px=8)[0] == pytest.approx(
        0.81
    )
    # a real frame where it fires at 0.7 rules out 0.51; above 0.7 only 0.81 on reaches precision 0.8
    real = [[_det(0, 0.7, (0, 0, 30, 30))], [_det(1, 0.99, (0, 0, 30, 30))]]
    assert ev.real_frame_guard(real, 2) == {0: pytest.approx(0.71), 1: pytest.approx(0.9)}
    guard = ev.real_frame_guard(real[:1], 1)
    assert ev.operating_point(dets, data, 1, guard, 0.8, min_px=8)[0] == pytest.approx(0.81)
    # with no floor reachable above the guard (a floor of 1.01), the best F1 above it: 0.71 (P/R 0.75)
    assert ev.operating_point(dets, data, 1, guard, 1.01, min_px=8)[0] == pytest.approx(0.71)


def test_recall_by_size_puts_each_object_in_its_band() -> None:
    data = _set([(0, 0, 0, 20, 10), (0, 100, 0, 130, 10), (0, 200, 0, 300, 50), (0, 0, 100, 10, 110)])
    dets = [[_det(0, 0.9, (0, 0, 20, 10)), _det(0, 0.9, (200, 0, 300, 50)), _det(0, 0.2, (100, 0, 130, 10))]]
    bands = ev.recall_by_size(dets, data, 1, {0: 0.5}, scale=1.0)[0]
    assert len(bands) == len(ev.SIZE_BINS)
    assert bands[0] == (1, 1)  # 20 px: found
    assert bands[1] == (0, 1)  # 30 px: only a detection under the threshold
    assert bands[-1] == (1, 1)  # 100 px
    assert sum(n for _, n in bands) == 3  # the 10 px object is under the scored size
    half = ev.recall_by_size(dets, data, 1, {0: 0.5}, scale=0.5)[0]  # a model at half the frame size
    assert half[0] == (0, 1) and half[2] == (1, 1) and half[3] == (0, 1) and half[5] == (1, 1)


def test_decode_keeps_the_best_of_overlapping_boxes_per_class() -> None:
    out = np.zeros((1, 6, 3), dtype=np.float32)
    out[0, :4, 0] = (30, 30, 20, 20)
    out[0, :4, 1] = (31, 30, 20, 20)  # nearly the same box, lower score: suppressed
    out[0, :4, 2] = (31, 30, 20, 20)
    out[0, 4, 0], out[0, 4, 1] = 0.9, 0.8
    out[0, 5, 2] = 0.7  # same place, other class: kept
    dets = ev.decode(out, {}, 0.5, 0.5)
    assert sorted((d.cls, round(d.score, 2)) for d in dets) == [(0, 0.9), (1, 0.7)]
