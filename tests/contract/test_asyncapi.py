"""docs/asyncapi.yaml is complete and strictly valid, and agrees with the decoder and the vectors."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import msgpack
import pytest
from contract import DOC, document, node, root_schema, unknown_keywords, validator

from agent import events as ev

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _vectors() -> list[tuple[str, str, bytes]]:
    """(vector name, message name, payload) of every golden vector."""
    out = []
    for path in sorted(VECTORS.glob("*.msgpack")):
        raw = msgpack.unpackb(path.read_bytes(), raw=False)
        message = "state" if ev.is_state(raw) else raw["k"]
        out.append((path.stem, message, path.read_bytes()))
    return out


def test_every_schema_uses_only_draft7_keywords() -> None:
    root = root_schema()
    jsonschema.Draft7Validator.check_schema(root)
    assert unknown_keywords(root) == []


def test_the_strict_walker_finds_what_draft7_does_not_define() -> None:
    """The check above can fail: a 2020-12 keyword or a typo is named with its path."""
    bad = {"type": "array", "prefixItems": [{"type": "string"}], "items": {"tpye": "integer"}}
    assert unknown_keywords(bad) == ["/prefixItems", "/items/tpye"]


def test_no_description_is_cut_into_stray_keys() -> None:
    """Plain YAML with a comma in a flow map would split a description into a second key."""
    stray = []

    def walk(value: object, path: str) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                if sub is None:
                    stray.append(f"{path}/{key}")
                walk(sub, f"{path}/{key}")
        elif isinstance(value, list):
            for i, sub in enumerate(value):
                walk(sub, f"{path}/{i}")

    walk(document(), "")
    assert stray == []


def test_the_document_matches_the_decoder() -> None:
    doc = document()
    assert doc["asyncapi"].startswith("3.")
    kinds = doc["channels"]["events"]["parameters"]["kind"]["enum"]
    assert set(kinds) == set(ev.KINDS) - {ev.HEALTH}, "health goes to /telemetry, not evt/{kind}"
    assert set(doc["components"]["schemas"]["header"]["properties"]["k"]["enum"]) == set(ev.KINDS)
    header = set(doc["components"]["schemas"]["header"]["required"])
    assert header == {ev._KEYS[name] for name in ev._REQUIRED} | {"v"}
    for kind in ev.KINDS:
        required = {"v", "d", "s", "id", "k", "t", "cs"}
        for part in doc["components"]["messages"][kind]["payload"]["allOf"]:
            required |= set(part.get("required", []))
        expected = {ev._KEYS[name] for name in (*ev._REQUIRED, *ev._KIND_REQUIRED[kind])} | {"v"}
        assert required == expected, kind
    alarm = doc["components"]["messages"]["alarm"]["payload"]["allOf"][1]["properties"]
    assert alarm["ph"]["enum"] == ["start", "end"], "alarms have no update phase"
    assert doc["servers"]["city"]["protocol"] == "secure-mqtt", "port 8883 is MQTT over TLS"
    assert doc["operations"]["sendState"]["bindings"]["mqtt"]["retain"] is True
    assert doc["operations"]["sendEvents"]["bindings"]["mqtt"]["qos"] == 1
    assert doc["operations"]["receiveCommand"]["reply"]["channel"]["$ref"] == "#/channels/replies"


@pytest.mark.parametrize(
    ("name", "message", "payload"), _vectors(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_vector_validates_against_its_message(name: str, message: str, payload: bytes) -> None:
    decoded = ev.json_view(msgpack.unpackb(payload, raw=False))
    errors = [e.message for e in validator(message).iter_errors(decoded)]
    assert errors == [], name
    assert decoded == json.loads((VECTORS / f"{name}.json").read_text())


def test_the_schemas_refuse_what_the_contract_forbids() -> None:
    """The validators can fail: an alarm with an update phase, an unknown code, a short id."""
    alarm = ev.json_view(msgpack.unpackb((VECTORS / "alarm_cover_start.msgpack").read_bytes(), raw=False))
    check = validator("alarm")
    assert check.is_valid(alarm)
    assert not check.is_valid({**alarm, "ph": "update"})
    assert not check.is_valid({**alarm, "c": "cover_tilt"})
    assert not check.is_valid({**alarm, "id": "00ff"})
    assert not validator("state").is_valid({"v": 1, "device": "pole", "online": True, "t": 1})


def test_node_decodes_the_vectors_and_ajv_strict_validates_them(tmp_path: Path) -> None:
    """A second language: @msgpack/msgpack decodes each vector to its .json; Ajv (strict mode, which
    refuses unknown keywords) compiles every payload schema and accepts each vector."""
    vectors = _vectors()
    bundle = {
        "root": root_schema(),
        "messages": list(document()["components"]["messages"]),
        "samples": [{"message": m, "payload_hex": p.hex()} for _, m, p in vectors],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    result = node("check", str(path))
    assert set(result["compiled"]) == set(bundle["messages"])
    for (name, _, _), got in zip(vectors, result["results"], strict=True):
        assert got["valid"], (name, got["errors"])
        assert got["decoded"] == json.loads((VECTORS / f"{name}.json").read_text()), name


def test_the_official_asyncapi_parser_accepts_the_document() -> None:
    result = node("parse", str(DOC))
    errors = [d for d in result["diagnostics"] if d["severity"] <= 1]  # 0 error, 1 warning
    assert result["parsed"] and errors == [], errors


def test_the_agents_topics_are_the_documented_channels() -> None:
    """agent/topics.py builds every topic; each is its channel's address with the parameters filled."""
    from agent import topics

    channels = {name: c["address"] for name, c in document()["channels"].items()}
    p, d = "{prefix}", "{device}"
    built = {
        "events": topics.event(p, d, "{kind}"),
        "telemetry": topics.telemetry(p, d),
        "state": topics.state(p, d),
        "commands": topics.command(p, d, "{name}"),
        "desiredConfig": topics.desired_config(p, d),
        "reportedConfig": topics.reported_config(p, d),
        "replies": topics.reply(p, d, "{requester}"),
        "legacyReplies": topics.legacy_reply(p, d, "{name}"),
    }
    assert built == channels
    assert topics.event("city", "pole", ev.HEALTH) == "city/pole/telemetry"
