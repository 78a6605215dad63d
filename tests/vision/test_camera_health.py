"""A camera's fps in health is a recent window, so an outage shows while it lasts."""

from __future__ import annotations

from agent.vision.pipeline import FPS_WINDOW_S, CameraStats


def test_fps_is_over_the_recent_window_and_drops_to_zero_in_an_outage() -> None:
    stats = CameraStats(started=0.0)
    for i in range(600):  # 10 minutes at 1 fps, every other frame inferred
        stats.count(inferred=i % 2 == 0, now=float(i))
    running = stats.as_dict(now=600.0)
    assert running["fps"] == 1.0 and running["infer_fps"] == 0.5
    down = stats.as_dict(now=600.0 + 2 * FPS_WINDOW_S)  # the camera stopped a minute ago
    assert down["fps"] == 0.0 and down["infer_fps"] == 0.0
    assert down["fps_lifetime"] > 0.8, "the lifetime average hid the outage: it is kept apart"
    assert down["frames"] == 600
