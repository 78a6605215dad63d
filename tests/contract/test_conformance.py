"""Conformance: everything a gateway on the demo setup publishes is what docs/asyncapi.yaml says.

The agent runs on the demo's cameras (the rendered street clip and the real street-corner clip) and
the simulated board playing the street scenario (every board alarm), against a real Mosquitto; a
consumer records every message on ``#`` with the MQTT 5 properties and the publisher's retain flag,
and sends commands, valid and invalid. Each message must be on a documented topic with the QoS,
retain flag and content type the document gives, and validate against its message's schema, in
Python and in Node.js.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import msgpack
import pytest
import tomli_w
from contract import document, node, root_schema, validator
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent import events as ev
from agent.runtime import AgentContext, run_agent
from agent.trust.commands import command_payload
from agent.trust.keys import new_key
from tools.demo import DEMO_CONFIG, DEVICE, PREFIX, demo_config, start_board
from tools.demo import Broker as DemoBroker

RUN_S = 58.0  # the street scenario's alarms start and end within it; the clip's crowd gathers at 28 s


@dataclass
class Seen:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    content_type: str | None
    format_indicator: int | None


@dataclass
class Sent:
    name: str
    reply_topic: str | None  # None: an MQTT 3.1.1-style request, replied to on cmd/{name}/reply
    expect: str  # "ok" or the error code


def _channels(doc: dict[str, Any]) -> list[tuple[str, re.Pattern[str], dict[str, Any]]]:
    """Each channel as a regex over topics, parameters with an enum restricted to it."""
    out = []
    for name, channel in doc["channels"].items():
        pattern = re.escape(channel["address"])
        for param, spec in channel.get("parameters", {}).items():
            choice = "|".join(map(re.escape, spec["enum"])) if "enum" in spec else "[^/]+"
            pattern = pattern.replace(re.escape("{" + param + "}"), f"(?P<{param}>{choice})")
        out.append((name, re.compile(pattern + "$"), channel))
    return out


def _operation(doc: dict[str, Any], channel: str) -> dict[str, Any]:
    (op,) = [
        o
        for o in doc["operations"].values()
        if o["channel"]["$ref"] == f"#/channels/{channel}" and o["action"] == "send"
    ]
    return op


def _message_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


async def _command(
    client: aiomqtt.Client, sent: list[Sent], name: str, payload: bytes, expect: str, legacy: bool = False
) -> None:
    props = Properties(PacketTypes.PUBLISH)
    reply_topic = None
    if not legacy:
        reply_topic = f"{PREFIX}/{DEVICE}/reply/qa-{uuid.uuid4().hex[:8]}"
        props.ResponseTopic = reply_topic
        props.CorrelationData = uuid.uuid4().bytes
    await client.publish(f"{PREFIX}/{DEVICE}/cmd/{name}", payload, qos=1, properties=props)
    sent.append(Sent(name, reply_topic, expect))


async def _session(tmp_path: Path) -> tuple[list[Seen], list[Sent]]:
    private, public = new_key()
    data = tomllib.loads(DEMO_CONFIG.read_text())
    data["uplink"] = {**data["uplink"], "telemetry_interval_s": 10, "commands": {"trusted_keys": [public]}}
    demo_file = tmp_path / "demo.toml"
    demo_file.write_text(tomli_w.dumps(data))

    broker = DemoBroker(tmp_path)
    broker.start()
    assert broker.name == "mosquitto" and broker.protocol == "5", broker.name
    host, port = broker.url.removeprefix("mqtt://").rsplit(":", 1)
    board = start_board(tmp_path)
    assert board is not None, "the firmware simulator is part of the repository"
    seen: list[Seen] = []
    sent: list[Sent] = []
    try:
        skipped: list[str] = []
        config = demo_config(tmp_path, broker, board.port, demo_file, skipped)
        assert not skipped, skipped
        # the config as run, so that set-config edits (and re-applies) what the agent runs with
        config_file = tmp_path / "gateway.toml"
        config_file.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
        version = aiomqtt.ProtocolVersion.V5
        async with aiomqtt.Client(host, int(port), protocol=version, identifier="qa-recorder") as client:
            # retainAsPublished: the flag the publisher set; noLocal: not our own commands
            await client.subscribe("#", options=SubscribeOptions(qos=1, retainAsPublished=True, noLocal=True))

            async def record() -> None:
                async for message in client.messages:
                    props = message.properties
                    seen.append(
                        Seen(
                            str(message.topic),
                            message.payload if isinstance(message.payload, bytes) else b"",
                            message.qos,
                            bool(message.retain),
                            getattr(props, "ContentType", None),
                            getattr(props, "PayloadFormatIndicator", None),
                        )
                    )

            recorder = asyncio.create_task(record())
            ctx = AgentContext(config=config, config_path=config_file)
            agent = asyncio.create_task(run_agent(ctx))
            while not any(s.topic.endswith("/state") for s in seen):
                await asyncio.sleep(0.1)
            sign = {"private_key": private}
            await _command(client, sent, "ping", command_payload(DEVICE, "ping"), "ok")
            await _command(client, sent, "get-config", json.dumps({"args": {}}).encode(), "ok")
            await _command(
                client, sent, "board-status", command_payload(DEVICE, "board-status"), "ok", legacy=True
            )
            await _command(
                client,
                sent,
                "set-config",
                command_payload(
                    DEVICE, "set-config", {"set": {"uplink": {"telemetry_interval_s": 10}}}, **sign
                ),
                "ok",
            )
            await _command(
                client,
                sent,
                "set-config",
                command_payload(DEVICE, "set-config", {"set": {"uplink": {"telemetry_interval_s": 10}}}),
                "unsigned",
            )
            await _command(
                client,
                sent,
                "board-lamp",
                command_payload(DEVICE, "board-lamp", {"level": 0.5}, **sign),
                "ok",
            )
            await _command(
                client,
                sent,
                "board-command",
                command_payload(DEVICE, "board-command", {"op": "melt"}, **sign),
                "bad-args",
            )
            await _command(
                client,
                sent,
                "flush-outbox-stats",
                command_payload(DEVICE, "flush-outbox-stats", **sign),
                "ok",
            )
            await _command(
                client, sent, "no-such-command", command_payload(DEVICE, "no-such-command"), "unknown-command"
            )
            await _command(client, sent, "ping", b"\xc1 not msgpack", "malformed")
            desired = command_payload(
                DEVICE, "desired-config", {"set": {"device": {"site": "demo square"}}, "ver": 1}, **sign
            )
            await client.publish(f"{PREFIX}/{DEVICE}/config/desired", desired, qos=1, retain=True)
            await asyncio.sleep(RUN_S)
            ctx.stopping.set()
            await asyncio.wait_for(agent, 60)
            await asyncio.sleep(1.0)  # the goodbye state and the last events
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
    finally:
        board.stop()
        broker.stop()
    return seen, sent


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Seen], list[Sent]]:
    return asyncio.run(_session(tmp_path_factory.mktemp("conformance")))


def test_every_message_is_documented_and_valid(recorded: tuple[list[Seen], list[Sent]]) -> None:
    seen, _ = recorded
    doc = document()
    root = root_schema(doc)
    channels = _channels(doc)
    problems: list[str] = []
    for s in seen:
        matches = [(name, m, ch) for name, pattern, ch in channels if (m := pattern.match(s.topic))]
        if len(matches) != 1:
            problems.append(f"{s.topic}: matches {len(matches)} documented channels")
            continue
        name, match, channel = matches[0]
        binding = _operation(doc, name)["bindings"]["mqtt"]
        if (s.qos, s.retain) != (binding["qos"], binding["retain"]):
            problems.append(
                f"{s.topic}: qos {s.qos} retain {s.retain}, documented {binding['qos']} {binding['retain']}"
            )
        is_json = s.payload[:1] == b"{"
        wanted = ("application/json", 1) if is_json else ("application/msgpack", 0)
        if (s.content_type, s.format_indicator) != wanted:
            problems.append(
                f"{s.topic}: content type {s.content_type} / {s.format_indicator}, wanted {wanted}"
            )
        decoded = ev.json_view(json.loads(s.payload) if is_json else msgpack.unpackb(s.payload, raw=False))
        messages = [_message_name(m["$ref"]) for m in channel["messages"].values()]
        if name == "events":
            messages = [match.group("kind")]
            ev.decode(s.payload)  # and our own decoder reads it
        errors = {m: [e.message for e in validator(m, root).iter_errors(decoded)] for m in messages}
        if not any(not e for e in errors.values()):
            problems.append(f"{s.topic}: {errors}")
    assert problems == [], "\n".join(problems[:20])


def test_the_session_shows_every_kind_alarm_and_state(recorded: tuple[list[Seen], list[Sent]]) -> None:
    seen, _ = recorded
    events = [ev.decode(s.payload) for s in seen if "/evt/" in s.topic or s.topic.endswith("/telemetry")]
    assert {e.kind for e in events} == set(ev.KINDS)
    alarms = {(e.label, e.phase) for e in events if e.kind == ev.ALARM}
    for code in ("tilt_deg_high", "level_cm_high", "db_high", "pm2_5_high", "crowding"):
        assert (code, ev.START) in alarms, (code, sorted(alarms))
    for code in ("tilt_deg_high", "db_high", "pm2_5_high"):
        assert (code, ev.END) in alarms, (code, sorted(alarms))
    for e in events:
        if e.kind == ev.ALARM and e.label != "crowding":
            quantity = e.label.removesuffix("_high")
            assert e.values is not None and set(e.values) == {quantity, quantity + "_threshold"}, e
            assert e.units is not None and e.units[quantity] == e.units[quantity + "_threshold"], e
        if e.kind == ev.CROWD:
            assert e.phase is None and e.label is None and e.ref is None, e
    states = [ev.decode_state(s.payload) for s in seen if s.topic.endswith("/state")]
    assert states[0]["online"] is True and states[0]["d"] == DEVICE and "agent" in states[0]
    assert states[-1]["online"] is False and states[-1]["clean"] is True


def test_every_command_gets_one_reply_and_the_documented_list_is_complete(
    recorded: tuple[list[Seen], list[Sent]],
) -> None:
    seen, sent = recorded
    replies: dict[str, list[dict[str, Any]]] = {}
    for s in seen:
        if "/reply" in s.topic:
            body = json.loads(s.payload) if s.payload[:1] == b"{" else msgpack.unpackb(s.payload, raw=False)
            replies.setdefault(s.topic, []).append(body)
    for request in sent:
        topic = request.reply_topic or f"{PREFIX}/{DEVICE}/cmd/{request.name}/reply"
        got = replies.get(topic, [])
        if request.reply_topic is None:
            got = got[:1]
        assert len(got) == 1, (request, got)
        outcome = "ok" if got[0]["ok"] else got[0]["error"]
        assert outcome == request.expect, (request, got[0])
    reports = [msgpack.unpackb(s.payload, raw=False) for s in seen if s.topic.endswith("/config/reported")]
    assert [(r["ok"], r["ver"], r["restart_needed"]) for r in reports] == [(True, 1, ["device.site"])]
    (unknown,) = [r for rs in replies.values() for r in rs if r.get("error") == "unknown-command"]
    known = set(unknown["message"].split("known: ", 1)[1].split(", "))
    assert known == set(document()["channels"]["commands"]["parameters"]["name"]["enum"])


def test_node_decodes_and_strictly_validates_everything_recorded(
    recorded: tuple[list[Seen], list[Sent]], tmp_path: Path
) -> None:
    seen, _ = recorded
    samples = []
    for s in seen:
        if s.payload[:1] == b"{":
            continue  # JSON replies: not msgpack
        if "/evt/" in s.topic:
            message = s.topic.rsplit("/", 1)[1]
        elif s.topic.endswith("/telemetry"):
            message = "health"
        elif s.topic.endswith("/state"):
            message = "state"
        elif s.topic.endswith("/config/reported"):
            message = "reported-config"
        else:
            message = "reply"
        samples.append({"message": message, "payload_hex": s.payload.hex()})
    bundle = {
        "root": root_schema(),
        "messages": list(document()["components"]["messages"]),
        "samples": samples,
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    result = node("check", str(path))
    bad = [
        (s["message"], r["errors"]) for s, r in zip(samples, result["results"], strict=True) if not r["valid"]
    ]
    assert bad == []
    assert len(samples) > 100
