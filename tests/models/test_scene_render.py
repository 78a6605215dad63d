"""The scene renderer: deterministic from a seed, labels that match what is drawn."""

from __future__ import annotations

import numpy as np

from models.pipeline.data import density_map
from models.pipeline.objects import CLASSES
from models.pipeline.render import render_crowd, render_street


def test_same_seed_gives_the_same_frame_and_labels() -> None:
    a, b = render_street(1234), render_street(1234)
    assert np.array_equal(a.image, b.image)
    assert a.labels == b.labels
    assert a.conditions == b.conditions
    c1, c2 = render_crowd(77), render_crowd(77)
    assert np.array_equal(c1.image, c2.image)
    assert np.array_equal(c1.points, c2.points)


def test_different_seeds_give_different_frames() -> None:
    assert not np.array_equal(render_street(1).image, render_street(2).image)


def test_labels_lie_inside_the_frame_and_cover_every_class() -> None:
    seen = set()
    for seed in range(40):
        scene = render_street(seed)
        h, w = scene.image.shape[:2]
        assert scene.image.dtype == np.uint8 and scene.image.shape == (360, 640, 3)
        for lab in scene.labels:
            x1, y1, x2, y2 = lab.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            seen.add(CLASSES[lab.cls])
    assert seen == set(CLASSES)


def test_labelled_objects_differ_from_the_empty_street() -> None:
    """A label must sit where something was painted, not on bare background."""
    scene = render_street(5)
    assert scene.labels
    for lab in scene.labels:
        x1, y1, x2, y2 = (int(v) for v in lab.box)
        patch = scene.image[y1 : y2 + 1, x1 : x2 + 1].astype(np.float32)
        assert patch.std() > 4.0, f"{CLASSES[lab.cls]} box looks empty"


def test_crowd_points_and_density_map_sum_to_the_count() -> None:
    scene = render_crowd(3, count=120)
    assert 60 <= len(scene.points) <= 120  # people placed with their heads outside the frame do not count
    assert (scene.points >= 0).all() and (scene.points[:, 0] < 640).all() and (scene.points[:, 1] < 360).all()
    dens = density_map(scene.points * 0.5, 320, 192)
    assert dens.shape == (48, 80)
    assert abs(dens.sum() - len(scene.points)) < 1e-3
    assert len(render_crowd(4, count=0).points) == 0
