"""The gateway's configuration: one TOML file, validated once at load by pydantic models."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, Field, ValidationError, model_validator

from .base import Section
from .board import BoardConfig
from .camera import CameraConfig, VisionConfig, ZoneConfig
from .device import DeviceConfig
from .log import LoggingConfig
from .outbox import OutboxConfig
from .privacy import PrivacyConfig
from .updates import UpdatesConfig
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
    "UpdatesConfig",
    "UplinkConfig",
    "VisionConfig",
    "WebConfig",
    "ZoneConfig",
    "file_problems",
    "load_config",
    "parse_config",
    "resolve_paths",
]


class GatewayConfig(Section):
    device: DeviceConfig
    uplink: UplinkConfig = Field(default_factory=UplinkConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    updates: UpdatesConfig = Field(default_factory=UpdatesConfig)
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


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config section (model class) that holds the key at ``loc``, walking from the top."""
    model: type[BaseModel] = GatewayConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        for arg in (annotation, *get_args(annotation)):
            inner = get_args(arg) or (arg,)
            found = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
            if found is not None:
                model = found
                break
        else:
            return None
    return model


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    section = _section_at(loc)
    if section is None or not loc or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(section.model_fields), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    # The input value is left out on purpose: it may be a secret.
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key" + (
                _did_you_mean(tuple(err["loc"]))
                or " (check the spelling; `edgectl config init` shows every key)"
            )
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


def _local(source: str) -> bool:
    return "://" not in source and not source.startswith("usb:")


def _rebased(model: BaseModel, base: Path) -> BaseModel:
    """Relative paths the file sets, as paths from ``base``; defaults are left as they are."""
    updates: dict[str, Any] = {}
    for name in model.model_fields_set:
        value = getattr(model, name)
        if isinstance(value, Path) and not value.is_absolute():
            updates[name] = base / value
        elif isinstance(value, BaseModel):
            updates[name] = _rebased(value, base)
        elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            updates[name] = [_rebased(v, base) for v in value]
        elif isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
            updates[name] = [v if v.is_absolute() else base / v for v in value]
    if isinstance(model, CameraConfig) and _local(model.source) and not Path(model.source).is_absolute():
        updates["source"] = str(base / model.source)
    return model.model_copy(update=updates) if updates else model


def resolve_paths(config: GatewayConfig, base: Path) -> GatewayConfig:
    """Relative paths in a config file mean paths from the file's own folder, wherever a command
    runs (``edge-agent``, ``edgectl doctor``, ``set-config``)."""
    rebased = _rebased(config, base.resolve())
    assert isinstance(rebased, GatewayConfig)
    return rebased


def file_problems(config: GatewayConfig) -> list[tuple[str, str]]:
    """Files the config names that are not there: found now, not when the agent first needs them."""
    problems: list[tuple[str, str]] = []

    def need(where: str, path: Path | None, what: str) -> None:
        if path is not None and not path.exists():
            problems.append((where, f"{what} {path} does not exist"))

    up = config.uplink
    for name in ("password_file", "ca_file", "cert_file", "key_file"):
        need(f"uplink.{name}", getattr(up, name), "file")
    need("updates.fetch_ca_file", config.updates.fetch_ca_file, "file")
    for i, cam in enumerate(config.cameras):
        need(f"cameras[{i}].password_file", cam.password_file, "file")
        for j, model in enumerate(cam.models):
            need(f"cameras[{i}].models[{j}]", Path(model), "model")
        if _local(cam.source):
            need(f"cameras[{i}].source", Path(cam.source), "video file or folder")
    return problems


def load_config(path: str | Path) -> GatewayConfig:
    """Load and validate a TOML config file; raises ConfigError naming every wrong key.

    Relative paths in it are taken from the file's folder (``resolve_paths``).
    """
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
    return resolve_paths(parse_config(data, str(path)), path.parent)
