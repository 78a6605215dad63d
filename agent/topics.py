"""Every MQTT topic of the contract (docs/asyncapi.yaml's channels), built in one place.

``prefix`` is the gateway's ``uplink.topic_prefix`` (default ``city``); ``device`` its id.
"""

from __future__ import annotations

from .events import HEALTH


def event(prefix: str, device: str, kind: str) -> str:
    """Where an event of ``kind`` goes: health telemetry has its own topic, the rest ``evt/{kind}``."""
    if kind == HEALTH:
        return telemetry(prefix, device)
    return f"{prefix}/{device}/evt/{kind}"


def telemetry(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/telemetry"


def state(prefix: str, device: str) -> str:
    """Retained birth message and last will."""
    return f"{prefix}/{device}/state"


def command(prefix: str, device: str, name: str) -> str:
    return f"{prefix}/{device}/cmd/{name}"


def commands(prefix: str, device: str) -> str:
    """The gateway's subscription for its commands."""
    return command(prefix, device, "+")


def reply(prefix: str, device: str, requester: str) -> str:
    """A response topic in the device's own reply space (where replies may go by default)."""
    return f"{prefix}/{device}/reply/{requester}"


def legacy_reply(prefix: str, device: str, name: str) -> str:
    """Where a reply goes when the request named no response topic (MQTT 3.1.1)."""
    return f"{command(prefix, device, name)}/reply"


def desired_config(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/config/desired"


def reported_config(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/config/reported"
