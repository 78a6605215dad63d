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
from ..config.base import Section
from ..config.camera import LineConfig, MaskConfig, ZoneConfig
from ..vision.camera import Camera
from ..vision.part import Vision

log = logging.getLogger(__name__)

MAX_ZONES = 64
MAX_LINES = 64
MAX_MASKS = 64
MAX_CORNERS = 64


class ZoneError(ValueError):
    """Zones that cannot be saved; the message is for the technician, nothing was changed."""


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "zone"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _each(
    items: Any, key: str, what: str, plural: str, model: type[Section], limit: int
) -> list[dict[str, Any]]:
    """Zones, lines or masks as the page sent them under ``key``, each checked alone first so a
    message names it (``zone gate: ...``); repeated ids are the whole config's check, at saving."""
    if not isinstance(items, list):
        raise ZoneError(f"'{key}' must be a list of {plural}")
    if len(items) > limit:
        raise ZoneError(f"at most {limit} {plural} per camera")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ZoneError(f"{what} {i + 1} is not a map of settings")
        name = item.get("id") or f"number {i + 1}"
        polygon = item.get("polygon")
        if isinstance(polygon, list) and len(polygon) > MAX_CORNERS:
            raise ZoneError(f"{what} {name}: at most {MAX_CORNERS} corners")
        clean = {k: v for k, v in item.items() if v is not None}
        try:
            model.model_validate(clean)
        except ValidationError as exc:
            raise ZoneError(f"{what} {name}: {_problems(exc)}") from None
        out.append(clean)
    return out


def checked(zones: Any) -> list[dict[str, Any]]:
    """The zones as the page sent them; raises ZoneError naming the first bad one."""
    return _each(zones, "zones", "zone", "zones", ZoneConfig, MAX_ZONES)


def checked_lines(lines: Any) -> list[dict[str, Any]]:
    """The counting lines as the page sent them; raises ZoneError naming the first bad one."""
    return _each(lines, "lines", "line", "counting lines", LineConfig, MAX_LINES)


def checked_masks(masks: Any) -> list[dict[str, Any]]:
    """The masks as the page sent them; raises ZoneError naming the first bad one."""
    return _each(masks, "masks", "mask", "masks", MaskConfig, MAX_MASKS)


async def save_zones(
    ctx: Any, camera_id: str, zones: Any, lock: asyncio.Lock, lines: Any = None, masks: Any = None
) -> dict[str, Any]:
    """Write the camera's new zones (and counting lines and masks, each unless None: unchanged)
    through set-config, which runs them now; raises ZoneError.

    ``lock``: one save at a time, so each reads the file the previous one wrote.
    """
    vision: Vision | None = getattr(ctx, "vision", None)
    cam = next((c for c in vision.cameras if c.config.id == camera_id), None) if vision else None
    if vision is None or cam is None:
        raise ZoneError(f"no camera {camera_id!r} on this gateway")
    new = {"zones": checked(zones)}
    if lines is not None:
        new["lines"] = checked_lines(lines)
    if masks is not None:
        new["masks"] = checked_masks(masks)
    async with lock:
        return await _save(ctx, cam, new)


async def _save(ctx: Any, cam: Camera, new: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
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
    patch = [{**c, **new} if c.get("id") == camera_id else c for c in cameras]
    try:
        reply = await ctx.commands.get("set-config").handler({"set": {"cameras": patch}})
    except CommandError as exc:
        raise ZoneError(exc.message) from None
    # set-config ran them already (agent/vision/part.py, Vision.take_zones): the pipeline is swapped
    zones = [z.model_dump(mode="json", exclude_none=True) for z in cam.config.zones]
    lines = [ln.model_dump(mode="json", exclude_none=True) for ln in cam.config.lines]
    masks = [m.model_dump(mode="json", exclude_none=True) for m in cam.config.masks]
    log.info(
        "web: zones, lines and masks of camera %s saved and applied: %s",
        camera_id,
        [z["id"] for z in zones + lines + masks],
    )
    return {"saved": str(ctx.config_path), "zones": zones, "lines": lines, "masks": masks, **reply}
