"""The MQTT uplink: broker, TLS, credentials and topics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from .base import Section


class CommandAuthConfig(Section):
    """Who may change the device: ed25519 public keys (base64, raw 32 bytes) of operators."""

    trusted_keys: list[str] = Field(default_factory=list)
    max_skew_s: float = Field(default=120.0, gt=0, description="how old a signed command may be")
    # A sender names where the reply goes (MQTT 5 response topic); without limits anyone could make
    # the gateway publish on any topic, its own event topics included.
    reply_topics: list[str] = Field(
        default_factory=lambda: ["{prefix}/{device}/reply/#", "{prefix}/{device}/cmd/+/reply"],
        description="MQTT topic filters a reply may go to; {prefix} and {device} are filled in",
    )

    @field_validator("reply_topics")
    @classmethod
    def _filters(cls, filters: list[str]) -> list[str]:
        for f in filters:
            if not f or any(
                ("#" in level and level != "#") or ("+" in level and level != "+") for level in f.split("/")
            ):
                raise ValueError(f"{f!r} is not an MQTT topic filter")
            if "#" in f and not f.endswith("#"):
                raise ValueError(f"{f!r}: '#' may only be the last level")
        return filters


class UplinkConfig(Section):
    url: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt://, mqtts://, ws:// or wss://")
    protocol: Literal["5", "3.1.1"] = "5"
    topic_prefix: str = Field(default="city", pattern=r"^[^#+\s]+$")
    client_id: str | None = None
    username: str | None = None
    # The password comes from a file or an environment variable, never from this file in clear.
    password_file: Path | None = None
    password_env: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_verify: bool = Field(default=True, description="never switch off outside a lab")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(
        default=3600,
        ge=0,
        description="how long the broker keeps commands for a disconnected gateway; 0: clean session",
    )
    inflight: int = Field(default=64, ge=1, le=65535, description="QoS 1 messages awaiting PUBACK")
    replay_rate: float = Field(default=2000.0, gt=0, description="backlog events per second")
    telemetry_interval_s: float = Field(default=60.0, gt=0)
    reconnect_min_s: float = Field(default=0.5, gt=0, description="first wait before reconnecting")
    reconnect_max_s: float = Field(default=60.0, gt=0, description="longest wait between reconnects")
    commands: CommandAuthConfig = Field(default_factory=CommandAuthConfig)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "ws", "wss"):
            raise ValueError("must start with mqtt://, mqtts://, ws:// or wss://")
        if not parts.hostname:
            raise ValueError("must name a broker host, e.g. mqtts://broker.example.city:8883")
        if parts.password is not None or parts.username is not None:
            # The message must not echo the URL: it would print the password it refuses.
            raise ValueError(
                "must not hold a user or password (the part before @): set uplink.username and "
                "uplink.password_file or uplink.password_env instead"
            )
        return url

    @model_validator(mode="after")
    def _one_password_source(self) -> UplinkConfig:
        if self.password_file and self.password_env:
            raise ValueError("set password_file or password_env, not both")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mutual TLS needs both cert_file and key_file")
        return self

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme in ("mqtts", "wss")

    def password(self) -> SecretStr | None:
        """Read the password from its file or environment variable, at connect time."""
        if self.password_file is not None:
            return SecretStr(self.password_file.read_text().strip())
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ValueError(f"environment variable {self.password_env} (uplink.password_env) is not set")
            return SecretStr(value)
        return None
