"""The commissioning page (agent/web): off unless enabled, on loopback, behind a password."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from .base import Section


class WebConfig(Section):
    enabled: bool = Field(default=False, description="serve the commissioning page")
    host: str = Field(
        default="127.0.0.1",
        description="address to listen on; loopback: reach it over SSH (ssh -L 8080:127.0.0.1:8080 pole)",
    )
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port; 0: any free one (tests)")
    password_file: Path | None = Field(
        default=None, description="file holding the page's password (one line); required when enabled"
    )
    tls_cert: Path | None = Field(default=None, description="PEM certificate: serve HTTPS")
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert")
    session_minutes: float = Field(default=480, gt=0, le=7 * 24 * 60, description="a login lasts this long")
    live_fps: float = Field(default=4.0, gt=0, le=15, description="live view frames per second, at most")
    live_width: int = Field(default=960, ge=160, le=3840, description="live view frames are scaled to this")
    unblurred: bool = Field(
        default=False,
        description="show people unblurred in the live view and zone editor (logged as a warning); "
        "default: blurred, as in snapshots",
    )

    @model_validator(mode="after")
    def _needs(self) -> WebConfig:
        if self.enabled and self.password_file is None:
            raise ValueError(
                "web.enabled needs web.password_file: a file with the page's password, e.g. "
                "`openssl rand -base64 18 > /etc/edge-agent/web-password; chmod 600 ...`"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both web.tls_cert and web.tls_key for HTTPS, or neither")
        return self
