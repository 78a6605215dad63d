"""The one backoff of every loop that reconnects or restarts (broker, board, camera, parts).

Waits double from ``first`` up to ``most``, each scaled by a random factor so that a fleet of
gateways does not come back in step after a broker or network outage; an attempt that ran for
``healthy_after_s`` was a success, and the next failure starts again from ``first``.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays between the attempts of one loop; each loop keeps its own constants."""

    def __init__(
        self,
        first: float,
        most: float,
        jitter: tuple[float, float] = (0.5, 1.5),
        healthy_after_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        low, high = jitter
        if not first > 0 or not most > 0:
            raise ValueError(f"backoff delays must be positive, got first={first} most={most}")
        if not 0 <= low <= high:
            raise ValueError(f"backoff jitter must be 0 <= low <= high, got {jitter}")
        self.first, self.most, self.jitter = first, most, jitter
        self.healthy_after_s = healthy_after_s
        self.delay = first  # before jitter: what the next wait is about
        self._uniform = rng.uniform if rng is not None else random.uniform

    def next(self) -> float:
        """The wait before the next attempt (jittered); the one after it is twice as long, capped."""
        wait = min(self.delay, self.most) * self._uniform(*self.jitter)
        self.delay = min(self.delay * 2, self.most)
        return wait

    def ran(self, seconds: float) -> None:
        """The last attempt lasted ``seconds``: long enough to count as healthy, the backoff starts over."""
        if seconds > self.healthy_after_s:
            self.reset()

    def reset(self) -> None:
        self.delay = self.first
