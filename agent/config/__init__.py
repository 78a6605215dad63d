"""The gateway's configuration: one TOML file, validated once at load by pydantic models."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from .base import Section
from .board import BoardConfig
from .camera import CameraConfig, VisionConfig, ZoneConfig
from .device import DeviceConfig
from .log import LoggingConfig
from .outbox import OutboxConfig
from .privacy import PrivacyConfig
from .uplink import CommandAuthConfig, UplinkConfig
from .web import WebConfig

__all__ = [
    "BoardConfig",
    "CameraConfig",
    "CommandAuthConfig",
    "ConfigError",
    "DeviceConfig",
    "GatewayConfig",
    "LoggingConfig",
    "OutboxConfig",
    "PrivacyConfig",
    "UplinkConfig",
    "VisionConfig",
    "WebConfig",
    "ZoneConfig",
    "load_config",
    "parse_config",
]


class GatewayConfig(Section):
    device: DeviceConfig
    uplink: UplinkConfig = Field(default_factory=UplinkConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    vision: VisionConfig = Field(default_factory=VisionConfig)
    cameras: list[CameraConfig] = Field(default_factory=list)
    boards: list[BoardConfig] = Field(default_factory=list)
    web: WebConfig = Field(default_factory=WebConfig)

    @model_validator(mode="after")
    def _unique_ids(self) -> GatewayConfig:
        for name, items in (("cameras", self.cameras), ("boards", self.boards)):
            ids = [item.id for item in items]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"{name} ids must be unique, repeated: {', '.join(dupes)}")
        return self


class ConfigError(ValueError):
    """A config file that cannot be used; ``problems`` lists (dotted path, what is expected)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {path}: {message}" for path, message in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    # The input value is left out on purpose: it may be a secret.
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; `edgectl config init` shows every key)"
        elif err["type"] == "missing":
            message = "required key is missing"
        message = message.removeprefix("Value error, ")
        problems.append((_dotted(err["loc"]), message))
    return problems


def parse_config(data: dict[str, Any], source: str = "config") -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None


def load_config(path: str | Path) -> GatewayConfig:
    """Load and validate a TOML config file; raises ConfigError naming every wrong key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [("(file)", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [("(file)", f"cannot be read: {exc}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [("(syntax)", f"not valid TOML: {exc}")]) from None
    return parse_config(data, str(path))
