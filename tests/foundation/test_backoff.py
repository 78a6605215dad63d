"""The one backoff of the reconnecting loops: doubling, cap, jitter bounds, reset after a healthy run."""

from __future__ import annotations

import random

import pytest

from agent.backoff import Backoff


def test_waits_double_up_to_the_cap_without_jitter() -> None:
    backoff = Backoff(first=0.5, most=10.0, jitter=(1.0, 1.0))
    assert [backoff.next() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_every_wait_stays_within_its_jitter_band() -> None:
    backoff = Backoff(first=1.0, most=60.0, jitter=(0.5, 1.5), rng=random.Random(7))
    for base in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0):
        assert backoff.delay == base
        wait = backoff.next()
        assert 0.5 * base <= wait <= 1.5 * base


def test_jitter_spreads_a_fleet() -> None:
    """Gateways that lost the same broker must not all come back at the same instant."""
    firsts = {Backoff(first=1.0, most=60.0, rng=random.Random(seed)).next() for seed in range(20)}
    assert len(firsts) == 20


def test_a_healthy_run_starts_over_and_a_short_one_does_not() -> None:
    backoff = Backoff(first=0.5, most=10.0, jitter=(1.0, 1.0), healthy_after_s=30.0)
    for _ in range(4):
        backoff.next()
    assert backoff.delay == 8.0
    backoff.ran(29.0)
    assert backoff.delay == 8.0
    backoff.ran(31.0)
    assert backoff.next() == 0.5
    backoff.ran(float("-inf"))  # never connected at all
    assert backoff.delay == 1.0


def test_a_first_wait_above_the_cap_is_capped() -> None:
    backoff = Backoff(first=5.0, most=2.0, jitter=(1.0, 1.0))
    assert [backoff.next(), backoff.next()] == [2.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first": 0.0, "most": 1.0}, "must be positive"),
        ({"first": 1.0, "most": -1.0}, "must be positive"),
        ({"first": 1.0, "most": 2.0, "jitter": (1.5, 0.5)}, "0 <= low <= high"),
        ({"first": 1.0, "most": 2.0, "jitter": (-0.1, 1.0)}, "0 <= low <= high"),
    ],
)
def test_bad_constants_are_refused_by_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)
