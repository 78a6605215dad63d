"""The commands the device answers itself (ping, get-config, set-config, flush-outbox-stats) and the
config patching behind set-config and the desired config."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from agent import __version__
from agent.commands import CommandError, CommandRegistry
from agent.config import ConfigError, GatewayConfig, parse_config, resolve_paths
from agent.events import now_ms

from ..redact import redacted
from .outbox import Outbox

# Settings the running agent takes over at once (and cameras' zones, see apply_patch); any other
# change is written and needs a restart.
LIVE_SETTINGS = (
    "uplink.telemetry_interval_s",
    "uplink.replay_rate",
    "uplink.commands",
    "outbox.quota_mb",
    "privacy.",
    "logging.level",
)


def merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` merged in, maps recursively; a null in the patch removes the key."""
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def _by_id(items: Any) -> dict[str, Any] | None:
    """A list of maps that all have a distinct string id (cameras, zones), keyed by it; else None."""
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("id"), str) for i in items
    ):
        return None
    keyed = {i["id"]: i for i in items}
    return keyed if len(keyed) == len(items) else None


def changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths of what differs; lists of maps with ids by id: ``cameras[cam-1].zones[gate]``."""
    if isinstance(old, dict) and isinstance(new, dict):
        paths = []
        for key in sorted(set(old) | set(new)):
            paths += changed_paths(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return paths
    old_ids, new_ids = _by_id(old), _by_id(new)
    if old_ids is not None and new_ids is not None and old != new:
        paths = []
        for key in sorted(set(old_ids) | set(new_ids)):
            paths += changed_paths(old_ids.get(key), new_ids.get(key), f"{path}[{key}]")
        return paths
    return [] if old == new else [path]


def write_atomically(path: Path, text: str) -> None:
    """Write beside, fsync, rename over: a power cut leaves the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def apply_patch(
    patch: Any,
    *,
    config_path: Path | None,
    get_config: Callable[[], GatewayConfig],
    apply: Callable[[GatewayConfig], list[str] | None],
    source: str = "set-config",
) -> dict[str, Any]:
    """Merge ``patch`` into the config file, validate, persist atomically and apply what can be live.

    The one path for every remote change (the ``set-config`` command, the desired config); raises
    CommandError naming what is wrong, in which case nothing changed.
    """
    if not isinstance(patch, dict) or not patch:
        raise CommandError(
            "bad-args", f"{source} needs {{'set': {{section: {{key: value}}}}}}; null removes a key"
        )
    if config_path is None:
        raise CommandError("no-config-file", "this agent was started without a config file to write")
    try:
        current = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CommandError("no-config-file", f"cannot read {config_path}: {exc}") from None
    data = merged(current, patch)
    try:
        new = resolve_paths(parse_config(data, source), config_path.parent)
    except ConfigError as exc:
        problems = "; ".join(f"{p}: {m}" for p, m in exc.problems)
        raise CommandError(
            "invalid-config", f"the new config is not valid, nothing changed: {problems}"
        ) from None
    old = get_config()
    if new.device.id != old.device.id:
        raise CommandError(
            "invalid-config", "device.id cannot be changed remotely (topics and sequence depend on it)"
        )
    changed = changed_paths(old.model_dump(mode="json"), new.model_dump(mode="json"))
    write_atomically(config_path, tomli_w.dumps(data))
    # ``apply`` names what the running parts took over besides LIVE_SETTINGS (a camera's zones, when
    # its pipeline was swapped), as path prefixes
    taken = tuple(apply(new) or ())
    live = [p for p in changed if p.startswith(LIVE_SETTINGS + taken)]
    later = [p for p in changed if p not in live]
    return {"changed": changed, "applied": live, "restart_needed": later}


def register_device_commands(
    registry: CommandRegistry,
    *,
    get_config: Callable[[], GatewayConfig],
    config_path: Path | None,
    apply: Callable[[GatewayConfig], list[str] | None],
    outbox: Outbox,
    started_ms: int,
) -> None:
    async def ping(args: dict[str, Any]) -> dict[str, Any]:
        config = get_config()
        return {
            "pong": True,
            "device": config.device.id,
            "agent": __version__,
            "t": now_ms(),
            "uptime_s": round((now_ms() - started_ms) / 1000),
        }

    async def get_config_cmd(args: dict[str, Any]) -> dict[str, Any]:
        return {"config": redacted(get_config().model_dump(mode="json", exclude_none=True))}

    async def set_config(args: dict[str, Any]) -> dict[str, Any]:
        return apply_patch(args.get("set"), config_path=config_path, get_config=get_config, apply=apply)

    async def flush_outbox_stats(args: dict[str, Any]) -> dict[str, Any]:
        dropped = await outbox.reset_dropped()
        return {"dropped": dropped, "depth": outbox.stats.depth, "used_bytes": outbox.stats.used_bytes}

    registry.register("ping", ping, mutating=False, description="answers pong: is the agent alive")
    registry.register(
        "get-config", get_config_cmd, mutating=False, description="the running config, without secrets"
    )
    registry.register(
        "set-config", set_config, mutating=True, description="change settings; validated and persisted"
    )
    registry.register(
        "flush-outbox-stats",
        flush_outbox_stats,
        mutating=True,
        description="return and reset outbox drop counters",
    )
