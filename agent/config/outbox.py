"""Where events wait until the broker has them."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import Section


class OutboxConfig(Section):
    path: Path = Field(default=Path("/var/lib/edge-agent/outbox.sqlite"))
    quota_mb: float = Field(default=512.0, gt=0, description="disk quota of the outbox file")
