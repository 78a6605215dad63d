"""Saving a camera's zones from the page: through the ``set-config`` command itself (merged into
the config file, validated by the whole pydantic config, written atomically, and applied live by
swapping that camera's pipeline between two frames, as zones sent over MQTT are)."""

from __future__ import annotations

import asyncio
import logging
import tomllib
from typing import Any

from pydantic import ValidationError

from ..commands import CommandError
from ..config.camera import ZoneConfig
from ..vision.part import Camera, Vision

log = logging.getLogger(__name__)

MAX_ZONES = 64
MAX_CORNERS = 64


class ZoneError(ValueError):
    """Zones that cannot be saved; the message is for the technician, nothing was changed."""


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "zone"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def checked(zones: Any) -> list[dict[str, Any]]:
    """The zones as the page sent them, each checked alone first so a message names the zone."""
    if not isinstance(zones, list):
        raise ZoneError("'zones' must be a list of zones")
    if len(zones) > MAX_ZONES:
        raise ZoneError(f"at most {MAX_ZONES} zones per camera")
    out = []
    for i, zone in enumerate(zones):
        if not isinstance(zone, dict):
            raise ZoneError(f"zone {i + 1} is not a map of settings")
        name = zone.get("id") or f"number {i + 1}"
        polygon = zone.get("polygon")
        if isinstance(polygon, list) and len(polygon) > MAX_CORNERS:
            raise ZoneError(f"zone {name}: at most {MAX_CORNERS} corners")
        clean = {k: v for k, v in zone.items() if v is not None}
        try:
            ZoneConfig.model_validate(clean)
        except ValidationError as exc:
            raise ZoneError(f"zone {name}: {_problems(exc)}") from None
        out.append(clean)
    return out


async def save_zones(ctx: Any, camera_id: str, zones: Any, lock: asyncio.Lock) -> dict[str, Any]:
    """Write the camera's new zones through set-config and run them now; raises ZoneError.

    ``lock``: one save at a time, so each reads the file the previous one wrote.
    """
    vision: Vision | None = getattr(ctx, "vision", None)
    cam = next((c for c in vision.cameras if c.config.id == camera_id), None) if vision else None
    if vision is None or cam is None:
        raise ZoneError(f"no camera {camera_id!r} on this gateway")
    new_zones = checked(zones)
    async with lock:
        return await _save(ctx, cam, new_zones)


async def _save(ctx: Any, cam: Camera, new_zones: list[dict[str, Any]]) -> dict[str, Any]:
    camera_id = cam.config.id
    if ctx.config_path is None:
        raise ZoneError("this agent was started without a config file, so zones cannot be saved")
    try:
        current = tomllib.loads(ctx.config_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ZoneError(f"cannot read {ctx.config_path}: {exc}") from None
    cameras = current.get("cameras")
    if not isinstance(cameras, list) or not any(
        isinstance(c, dict) and c.get("id") == camera_id for c in cameras
    ):
        raise ZoneError(f"camera {camera_id} is not in {ctx.config_path}; add it there first")
    # merged() replaces lists whole: the patch carries every camera, this one with its new zones
    patch = [{**c, "zones": new_zones} if c.get("id") == camera_id else c for c in cameras]
    try:
        reply = await ctx.commands.get("set-config").handler({"set": {"cameras": patch}})
    except CommandError as exc:
        raise ZoneError(exc.message) from None
    # set-config ran them already (agent/vision/part.py, Vision.take_zones): the pipeline is swapped
    zones = [z.model_dump(mode="json", exclude_none=True) for z in cam.config.zones]
    log.info("web: zones of camera %s saved and applied: %s", camera_id, [z["id"] for z in zones])
    return {"saved": str(ctx.config_path), "zones": zones, **reply}
