"""Who and where the gateway is."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import Section

# Device ids become MQTT topic levels: no wildcards, separators or spaces.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class DeviceConfig(Section):
    id: str = Field(pattern=DEVICE_ID_PATTERN, description="unique device id, used in MQTT topics")
    site: str = Field(default="", description="human-readable place, e.g. a crossing")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    key_file: Path | None = Field(
        default=None,
        description="the device's own ed25519 key, which signs its event chain and birth message; made "
        "on first start (mode 600); default: device.key beside the outbox",
    )
