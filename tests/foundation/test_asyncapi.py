"""The AsyncAPI document describes the same kinds and required keys as the decoder enforces."""

from __future__ import annotations

from pathlib import Path

import yaml

from agent import events as ev

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def _required(message: dict) -> set[str]:
    keys: set[str] = set()
    for part in message["payload"]["allOf"]:
        if "$ref" in part:
            keys |= {"v", "d", "s", "id", "k", "t", "cs"}
        keys |= set(part.get("required", []))
    return keys


def test_asyncapi_matches_the_decoder() -> None:
    doc = yaml.safe_load(DOC.read_text())
    assert doc["asyncapi"].startswith("3.")
    assert set(doc["channels"]["events"]["parameters"]["kind"]["enum"]) == set(ev.KINDS)
    header = set(doc["components"]["schemas"]["header"]["required"])
    assert header == {ev._KEYS[name] for name in ev._REQUIRED} | {"v"}
    for kind in ev.KINDS:
        expected = {ev._KEYS[name] for name in (*ev._REQUIRED, *ev._KIND_REQUIRED[kind])} | {"v"}
        assert _required(doc["components"]["messages"][kind]) == expected, kind
    assert doc["operations"]["receiveState"]["bindings"]["mqtt"]["retain"] is True
    assert doc["operations"]["receiveEvents"]["bindings"]["mqtt"]["qos"] == 1
