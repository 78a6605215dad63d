"""The frame-rate rule of a model's probation (agent/vision/probation.py) on counter sequences as a
camera produces them: a slow model is caught after a sustained drop, and neither a busy moment, a
stream that stalls or sends fewer frames, nor a camera without a baseline rolls a good model back."""

from __future__ import annotations

from agent.vision.pipeline import CameraStats
from agent.vision.probation import FrameRateRule, FrameRateWatch, SlowCamera, rate_before

TICK = 0.5
RULE = FrameRateRule(ratio=0.5, floor=0.0, window_s=10.0)


def _feed(watch: FrameRateWatch, seconds: float, processed_fps, delivered_fps) -> list[float]:
    """Sample a camera for ``seconds``, each tick at the rates given (numbers or functions of time);
    returns when (seconds from the start) each verdict came."""
    t, processed, delivered, carry_p, carry_d = 0.0, 0, 0, 0.0, 0.0
    verdicts = []
    while t < seconds:
        t += TICK
        p = processed_fps(t) if callable(processed_fps) else processed_fps
        d = delivered_fps(t) if callable(delivered_fps) else delivered_fps
        carry_p += p * TICK
        carry_d += d * TICK
        processed, carry_p = processed + int(carry_p), carry_p - int(carry_p)
        delivered, carry_d = delivered + int(carry_d), carry_d - int(carry_d)
        if watch.sample(1000.0 + t, processed, delivered) is not None:
            verdicts.append(t)
    return verdicts


def test_a_sustained_drop_rolls_back_after_two_windows_with_its_figures() -> None:
    watch = FrameRateWatch(RULE, before=4.0)
    assert watch.threshold == 2.0
    verdicts = _feed(watch, 30.0, 1.0, 4.0)
    assert verdicts, "a model at a quarter of the old rate is caught"
    assert 19.0 <= verdicts[0] <= 21.5, "one window to count the rate, one more to be sure"
    slow = watch.sample(1031.0, 31, 124)
    assert isinstance(slow, SlowCamera)
    assert slow.fps < 1.5 and slow.delivered > 3.5 and slow.before == 4.0 and slow.threshold == 2.0
    assert slow.slow_s >= 10.0


def test_a_good_model_on_a_busy_machine_is_kept() -> None:
    # a model at 60 % of the old rate is slower, not broken
    assert _feed(FrameRateWatch(RULE, before=4.0), 60.0, 2.4, 4.0) == []
    # the machine stalls the pipeline completely for 6 s out of every 20: each window stays above half
    # or the drop does not last a whole window
    assert _feed(FrameRateWatch(RULE, 4.0), 120.0, lambda t: 0.0 if t % 20 < 6 else 4.0, 4.0) == []


def test_a_stream_that_stalls_or_slows_is_not_blamed_on_the_model() -> None:
    # the stream stops delivering for a minute: no frame processed, none delivered
    assert _feed(FrameRateWatch(RULE, 4.0), 90.0, lambda t: 0.0 if 10 < t < 70 else 4.0,
                 lambda t: 0.0 if 10 < t < 70 else 4.0) == []  # fmt: skip
    # the camera sends a quarter of its frames and the model keeps up with every one
    assert _feed(FrameRateWatch(RULE, 4.0), 60.0, 1.0, 1.0) == []


def test_a_floor_without_a_baseline_and_no_rule_at_all() -> None:
    floor = FrameRateRule(ratio=0.5, floor=3.0, window_s=10.0)
    watch = FrameRateWatch(floor, before=None)  # the old model had not run a whole window
    assert watch.threshold == 3.0
    assert _feed(watch, 30.0, 2.0, 4.0), "under the floor while frames are dropped"
    assert _feed(FrameRateWatch(floor, None), 30.0, 2.0, 2.0) == [], "a camera slower than the floor"
    assert _feed(FrameRateWatch(RULE, None), 60.0, 0.5, 4.0) == [], "no baseline, no floor: no verdict"
    assert not FrameRateRule(ratio=0.0, floor=0.0).active


def test_counters_that_start_again_start_the_count_again() -> None:
    watch = FrameRateWatch(RULE, before=4.0)
    assert _feed(watch, 15.0, 1.0, 4.0) == []  # slow for 5 s of a full window so far
    assert watch.sample(1015.5, 0, 0) is None, "a reopened source restarts its counters"
    assert watch.sample(1021.0, 6, 22) is None, "a new window is counted from the restart"


def test_the_previous_models_rate_needs_a_whole_window() -> None:
    stats = CameraStats(started=100.0)
    for i in range(40):
        stats.count(True, now=100.0 + i * 0.25)
    assert rate_before(stats, 10.0, now=105.0) is None, "5 s of history is no baseline"
    assert rate_before(stats, 5.0, now=110.0) == 4.0


def test_new_counters_named_by_the_caller_start_the_count_again() -> None:
    watch = FrameRateWatch(RULE, before=4.0)
    assert _feed(watch, 19.0, 1.0, 4.0) == []  # slow for 9 s of a counted window: a verdict is near
    watch.restart()  # a new pipeline (new zones) whose counters look like the old ones
    assert watch.sample(1019.5, 19, 78) is None
    assert watch.sample(1021.0, 21, 84) is None, "no verdict before a new window is counted"
    fresh = FrameRateWatch(RULE, before=4.0)
    _feed(fresh, 19.0, 1.0, 4.0)
    fresh.sample(1019.5, 19, 78)
    assert fresh.sample(1021.0, 21, 84) is not None, "the same counters without a restart: the verdict"


def test_a_rollback_undoes_only_the_last_update_of_a_camera() -> None:
    from agent.vision.updates import _back

    # detector updated earlier (kept), then the density model (rolled back), on probation
    mine = {"current": {"models/det": "/s/det-2", "models/crowd": "/s/crowd-2"},
            "previous": {"models/crowd": "models/crowd"}, "probation": {"left_s": 100.0}}  # fmt: skip
    _back(mine)
    assert mine == {"current": {"models/det": "/s/det-2", "models/crowd": "models/crowd"}, "previous": {}}
