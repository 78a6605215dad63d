"""Device health: each part registers a provider of its figures; the uplink publishes them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .redact import redacted

log = logging.getLogger(__name__)

HealthProvider = Callable[[], dict[str, Any]]


class Health:
    def __init__(self) -> None:
        self._providers: dict[str, HealthProvider] = {}

    def register(self, section: str, provider: HealthProvider) -> None:
        """Register the figures of one part under ``section`` (e.g. ``outbox``, ``cam.north``)."""
        self._providers[section] = provider

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for section, provider in list(self._providers.items()):
            try:
                out[section] = provider()
            except Exception as exc:  # one broken provider must not cost the rest of the report
                log.warning("health provider %s failed: %s", section, exc)
                out[section] = {"error": str(exc)}
        # errors quote URLs (a camera that failed to open): never with their passwords
        return redacted(out)
