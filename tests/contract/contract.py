"""The contract as the tests read it: docs/asyncapi.yaml's schemas, strictly checked, and validators.

Schemas describe the JSON view of a decoded payload (bin as lowercase hex). The payload schemas of
every message are gathered, with the shared component schemas, under one draft-07 root document's
``definitions``, so Python's jsonschema and Node's Ajv validate against exactly the same thing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asyncapi.yaml"
NODE_DIR = Path(__file__).resolve().parent / "node"

# Draft-07 keywords: anything else in a schema is a typo or a keyword of another draft.
DRAFT7 = {
    "$id", "$schema", "$ref", "$comment", "title", "description", "default", "readOnly", "writeOnly",
    "examples", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "additionalItems", "items", "maxItems", "minItems",
    "uniqueItems", "contains", "maxProperties", "minProperties", "required", "additionalProperties",
    "definitions", "properties", "patternProperties", "dependencies", "propertyNames", "const",
    "enum", "type", "format", "contentMediaType", "contentEncoding", "if", "then", "else", "allOf",
    "anyOf", "oneOf", "not",
}  # fmt: skip
_ONE = ("additionalItems", "additionalProperties", "contains", "propertyNames", "if", "then", "else", "not")
_MANY = ("allOf", "anyOf", "oneOf")
_MAPS = ("properties", "patternProperties", "definitions")


def document() -> dict[str, Any]:
    return yaml.safe_load(DOC.read_text(encoding="utf-8"))


def unknown_keywords(schema: Any, path: str = "") -> list[str]:
    """Every key of every (sub)schema that is not a draft-07 keyword, with where it is."""
    if isinstance(schema, bool):
        return []
    if not isinstance(schema, dict):
        return [f"{path or '/'}: a schema must be a map, got {type(schema).__name__}"]
    found = [f"{path}/{key}" for key in schema if key not in DRAFT7]
    for key in _ONE:
        if key in schema:
            found += unknown_keywords(schema[key], f"{path}/{key}")
    for key in _MANY:
        for i, sub in enumerate(schema.get(key, [])):
            found += unknown_keywords(sub, f"{path}/{key}/{i}")
    for key in _MAPS:
        for name, sub in schema.get(key, {}).items():
            found += unknown_keywords(sub, f"{path}/{key}/{name}")
    items = schema.get("items")
    if isinstance(items, list):
        for i, sub in enumerate(items):
            found += unknown_keywords(sub, f"{path}/items/{i}")
    elif items is not None:
        found += unknown_keywords(items, f"{path}/items")
    return found


def _relinked(value: Any) -> Any:
    """Component references rewritten to the root document's definitions."""
    if isinstance(value, dict):
        out = {k: _relinked(v) for k, v in value.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            out["$ref"] = "#/definitions/" + ref.removeprefix("#/components/schemas/")
        return out
    if isinstance(value, list):
        return [_relinked(v) for v in value]
    return value


def root_schema(doc: dict[str, Any] | None = None) -> dict[str, Any]:
    """One draft-07 document: the component schemas and each message's payload as ``message-NAME``."""
    doc = doc or document()
    components = doc["components"]
    definitions = dict(components["schemas"])
    for name, message in components["messages"].items():
        definitions[f"message-{name}"] = message["payload"]
    return {"$schema": "http://json-schema.org/draft-07/schema#", "definitions": _relinked(definitions)}


def validator(message: str, root: dict[str, Any] | None = None) -> jsonschema.Draft7Validator:
    root = root or root_schema()
    return jsonschema.Draft7Validator({**root, "$ref": f"#/definitions/message-{message}"})


def node(*args: str, stdin: str | None = None) -> Any:
    """Run tests/contract/node/contract.mjs (Node.js with the packages setup installed)."""
    exe = shutil.which("node")
    assert exe is not None, "Node.js is needed for the contract tests: scripts/setup.sh --tests installs it"
    assert (NODE_DIR / "node_modules").is_dir(), (
        "run scripts/setup.sh --tests (npm ci in tests/contract/node)"
    )
    done = subprocess.run(
        [exe, str(NODE_DIR / "contract.mjs"), *args],
        cwd=NODE_DIR, input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
