"""Commands other parts offer to the outside (over MQTT): a name, a handler, and whether it changes
the device. The uplink validates, authorizes and dispatches; parts only register."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

CommandHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class CommandError(Exception):
    """A command that cannot be carried out; ``code`` is a short stable word for machines."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    handler: CommandHandler
    mutating: bool  # changes the device: must be signed by a trusted key
    description: str = ""


class CommandRegistry:
    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def register(self, name: str, handler: CommandHandler, *, mutating: bool, description: str = "") -> None:
        if name in self._commands:
            raise ValueError(f"command {name!r} is registered twice")
        self._commands[name] = Command(name, handler, mutating, description)

    def get(self, name: str) -> Command:
        try:
            return self._commands[name]
        except KeyError:
            raise CommandError(
                "unknown-command", f"unknown command {name!r}; known: {', '.join(sorted(self._commands))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._commands)
