"""How the agent logs."""

from __future__ import annotations

from typing import Literal

from .base import Section


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
