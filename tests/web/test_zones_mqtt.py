"""Zones sent with the set-config command over a real Mosquitto run at once, as the page's saves do.

The real agent on the demo clip: a signed set-config that changes a camera's zones swaps its
pipeline (the new zone runs, open static issues stay open under the same ids) and says so in
``applied``; a change to the camera's other settings in the same command is written and reported
``restart_needed``, and the running camera keeps its old value until a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import tomllib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import msgpack
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from webbench import CAMERA, Gateway, running_gateway, wait_for

from agent.trust.commands import command_payload
from agent.trust.keys import new_key
from tools.demo import DEVICE, PREFIX

GATE = [[0.4, 0.3], [0.6, 0.3], [0.6, 0.9], [0.4, 0.9]]


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    private, public = new_key()
    uplink = {"commands": {"trusted_keys": [public]}}
    with running_gateway(tmp_path_factory.mktemp("web-mqtt"), board=False, uplink=uplink) as gateway:
        yield gateway, private


async def _set_config(gateway: Gateway, private: str, change: dict[str, Any]) -> dict[str, Any]:
    """One signed set-config over the broker, as an operator sends it; its reply."""
    broker = urlsplit(gateway.broker.url)  # mqtt://127.0.0.1:PORT
    assert broker.hostname and broker.port
    reply_topic = f"{PREFIX}/{DEVICE}/reply/ops"
    async with aiomqtt.Client(broker.hostname, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(reply_topic, qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = correlation = os.urandom(8)
        payload = command_payload(DEVICE, "set-config", {"set": change}, private)
        await client.publish(f"{PREFIX}/{DEVICE}/cmd/set-config", payload, qos=1, properties=props)
        async with asyncio.timeout(15):
            async for message in client.messages:
                if message.properties.CorrelationData == correlation:
                    assert isinstance(message.payload, bytes)
                    body = message.payload
                    return json.loads(body) if body[:1] == b"{" else msgpack.unpackb(body)
    raise AssertionError("no reply to set-config")


def _open_static(gateway: Gateway) -> set[bytes]:
    pipeline = gateway.ctx.vision.cameras[0].pipeline
    return {i.start_id for r in pipeline.rules.detectors for i in r.issues.open if i.rule.static}


def _cameras_with(gateway: Gateway, **changes: Any) -> list[dict[str, Any]]:
    """The config file's cameras, the first one changed: a patch replaces the list whole."""
    cameras = tomllib.loads(gateway.config_file.read_text())["cameras"]
    return [{**c, **changes} if c["id"] == CAMERA else c for c in cameras]


def test_zones_sent_over_mqtt_apply_at_once(signed: tuple[Gateway, str]) -> None:
    gateway, private = signed
    cam = gateway.ctx.vision.cameras[0]
    # the demo clip's garbage becomes a static issue within seconds: it must survive the swap
    kept = wait_for("an open static issue", lambda: _open_static(gateway), 60)
    old_pipeline, old_zones = cam.pipeline, [z.model_dump(exclude_none=True) for z in cam.config.zones]
    zones = [*old_zones, {"id": "gate", "polygon": GATE, "classes": ["person"]}]
    reply = asyncio.run(_set_config(gateway, private, {"cameras": _cameras_with(gateway, zones=zones)}))
    assert reply["ok"] is True, reply
    assert reply["result"]["applied"] == [f"cameras[{CAMERA}].zones[gate]"]
    assert reply["result"]["restart_needed"] == []
    assert cam.pipeline is not old_pipeline  # swapped before the reply
    assert [z.id for z in cam.pipeline.zones] == ["kerb-no-parking", "pavement", "gate"]
    assert kept <= _open_static(gateway), "open static issues are kept across the swap"
    assert [z["id"] for z in _cameras_with(gateway)[0]["zones"]] == ["kerb-no-parking", "pavement", "gate"]
    # frames keep flowing through the new pipeline
    frames = cam.pipeline.stats.frames
    wait_for("frames through the new pipeline", lambda: cam.pipeline.stats.frames > frames + 2)


def test_other_camera_settings_in_the_same_change_wait_for_a_restart(signed: tuple[Gateway, str]) -> None:
    gateway, private = signed
    cam = gateway.ctx.vision.cameras[0]
    fps = cam.config.fps
    zones = [z.model_dump(exclude_none=True) for z in cam.config.zones if z.id != "gate"]
    change = {"cameras": _cameras_with(gateway, zones=zones, fps=fps + 1)}
    reply = asyncio.run(_set_config(gateway, private, change))
    assert reply["ok"] is True, reply
    assert reply["result"]["applied"] == [f"cameras[{CAMERA}].zones[gate]"]
    assert reply["result"]["restart_needed"] == [f"cameras[{CAMERA}].fps"]
    assert [z.id for z in cam.pipeline.zones] == ["kerb-no-parking", "pavement"]
    assert cam.config.fps == fps and cam.pipeline.config.fps == fps  # until a restart
    assert tomllib.loads(gateway.config_file.read_text())["cameras"][0]["fps"] == fps + 1
    # an invalid zone is refused naming it, and nothing changes
    bad = _cameras_with(gateway, zones=[{"id": "z", "polygon": [[0.1, 0.1], [0.2, 0.2]]}])
    pipeline, saved = cam.pipeline, gateway.config_file.read_bytes()
    started = time.monotonic()
    refused = asyncio.run(_set_config(gateway, private, {"cameras": bad}))
    assert refused["ok"] is False and refused["error"] == "invalid-config", refused
    assert "3 corners" in refused["message"] and time.monotonic() - started < 15
    assert cam.pipeline is pipeline and gateway.config_file.read_bytes() == saved


def test_a_mask_sent_over_mqtt_applies_at_once(signed: tuple[Gateway, str]) -> None:
    """A mask over a sign the model misreads is drawn on the live frame like a zone, so it runs at once
    too; it is dropped from the running camera by the next change that leaves it out."""
    gateway, private = signed
    cam = gateway.ctx.vision.cameras[0]
    masks = [{"id": "shop-sign", "polygon": GATE, "classes": ["illegal_ad", "street_stall"]}]
    reply = asyncio.run(_set_config(gateway, private, {"cameras": _cameras_with(gateway, masks=masks)}))
    assert reply["ok"] is True, reply
    assert reply["result"]["applied"] == [f"cameras[{CAMERA}].masks[shop-sign]"]
    assert reply["result"]["restart_needed"] == []
    assert [(z.id, sorted(c)) for z, c in cam.pipeline.masks.areas] == [
        ("shop-sign", ["illegal_ad", "street_stall"])
    ]
    reply = asyncio.run(_set_config(gateway, private, {"cameras": _cameras_with(gateway, masks=[])}))
    assert reply["ok"] is True and cam.pipeline.masks.areas == [], reply
