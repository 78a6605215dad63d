"""Where events wait until the broker has them."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import Section


class OutboxConfig(Section):
    path: Path = Field(default=Path("/var/lib/edge-agent/outbox.sqlite"))
    quota_mb: float = Field(default=512.0, gt=0, description="disk quota of the outbox file")
    encrypt: bool = Field(
        default=True,
        description="seal each event in the outbox with AES-256-GCM (agent/uplink/atrest.py)",
    )
    key_file: Path | None = Field(
        default=None,
        description="the outbox's 32-byte key (mode 600), made on first start; default: outbox.key "
        "beside the outbox. Keep it off the card that holds the outbox where the gateway allows",
    )
