"""Event wire format v1: the one currency after the rules, and the contract with city platforms.

An event is a msgpack map with short keys (see docs/events.md). Only fields that are set are sent,
so an ``update`` carries what changed and nothing else. Unknown keys survive a decode/encode round
trip in ``Event.extra`` so that older consumers pass newer fields through untouched.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

SCHEMA_VERSION = 1

# Kinds of event. A kind is also the last level of the topic: {prefix}/{device}/evt/{kind}.
ISSUE = "issue"  # a street issue seen by a camera (garbage, stall, pothole, parking, ...)
CROWD = "crowd"  # a crowd count in a zone
CROSSING = "crossing"  # objects that crossed a counting line, per direction, over an interval
READING = "reading"  # a periodic sensor reading from a board
ALARM = "alarm"  # a sensor or device alarm (cover lifted, water rising, outbox reset, ...)
HEALTH = "health"  # device health telemetry
KINDS = (ISSUE, CROWD, CROSSING, READING, ALARM, HEALTH)

# Lifecycle phases of issues and alarms.
START = "start"
UPDATE = "update"
END = "end"
PHASES = (START, UPDATE, END)

# Eviction order when the outbox is full: the lowest priority goes first.
PRIORITY: dict[str, int] = {HEALTH: 0, CROWD: 0, CROSSING: 0, READING: 1, ISSUE: 2, ALARM: 3}

# Alarm codes, the ``c`` of an alarm (docs/events.md lists them). A board's threshold alarm is named
# after the quantity that crossed its threshold, as the board's driver names it: ``<quantity>_high``
# (``tilt_deg_high``, ``level_cm_high``, ``db_high``, ``pm2_5_high``). ``val`` then holds the quantity
# and, under ``<quantity>_threshold``, the threshold crossed; ``u`` gives both their unit.
HIGH_SUFFIX = "_high"
THRESHOLD_SUFFIX = "_threshold"
SENSOR_FAULT = "sensor_fault"  # a board's sensor failed to read several times in a row
CROWDING = "crowding"  # people over a zone's count or density limit
OUTBOX_RESET = "outbox_reset"  # the outbox file was unreadable and was moved aside (start only)
DISK_FULL = "disk_full"  # the outbox's disk is full: events are dropped and counted (start only)
MODEL_ROLLBACK = (
    "model_rollback"  # an updated model made its camera fail: the previous one is back (start only)
)
ALARM_CODES = (SENSOR_FAULT, CROWDING, OUTBOX_RESET, DISK_FULL, MODEL_ROLLBACK)  # besides <quantity>_high


def threshold_alarm_code(quantity: str) -> str:
    """The alarm code of a board quantity over its threshold."""
    return quantity + HIGH_SUFFIX


# Severities of alarms, in the order of the common syslog-like scale integrators already use.
SEVERITIES = ("info", "warning", "critical")

BOX_SCALE = 10_000  # normalized box coordinates are sent as integers in [0, BOX_SCALE]
CONF_SCALE = 1_000  # confidences are sent as integers in [0, CONF_SCALE]
MODEL_HASH_BYTES = 8  # the first 8 bytes of the model file's sha256 identify the model build


class EventFormatError(ValueError):
    """A payload that is not a valid v1 event; the message names the offending field."""


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Which model decided: id, version and the leading bytes of its file's sha256."""

    id: str
    version: str
    sha256: bytes

    @classmethod
    def from_hex(cls, model_id: str, version: str, sha256_hex: str) -> ModelRef:
        return cls(model_id, version, bytes.fromhex(sha256_hex)[:MODEL_HASH_BYTES])


@dataclass(frozen=True, slots=True)
class Event:
    """One event. Optional fields are ``None`` when absent from the wire."""

    kind: str
    captured_ms: int  # UTC capture time of the frame or reading, ms since the Unix epoch
    clock_synced: bool  # whether the device clock was synchronized at capture time
    device: str = ""  # stamped by the outbox
    seq: int = 0  # per-device, strictly increasing across restarts; stamped by the outbox
    event_id: bytes = field(default_factory=lambda: os.urandom(16))
    # street issues, crowd counts and alarms
    phase: str | None = None
    ref: bytes | None = None  # event_id of the issue's or alarm's ``start`` event
    label: str | None = None  # detected class (issues) or alarm code (alarms)
    model: ModelRef | None = None
    confidence: int | None = None  # 0..CONF_SCALE
    box: tuple[int, int, int, int] | None = None  # x1, y1, x2, y2 in 0..BOX_SCALE
    camera: str | None = None
    zone: str | None = None
    track: int | None = None
    count: float | None = None  # crowd count, or objects piling up in a zone
    density: float | None = None  # persons per square metre
    # sensor boards
    board: str | None = None
    sensor: str | None = None
    values: dict[str, float] | None = None
    units: dict[str, str] | None = None
    severity: str | None = None
    # device health telemetry
    health: dict[str, Any] | None = None
    # snapshot: JPEG bytes, sent only when configured, and then blurred
    image: bytes | None = None
    blurred: bool | None = None
    # tamper evidence (agent/uplink/chain.py): the previous event's link, and the chain-head
    # signature that health reports carry; both set by the outbox when it numbers the event
    prev: bytes | None = None
    signature: bytes | None = None
    # keys this version does not know, kept for forward compatibility
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def priority(self) -> int:
        return PRIORITY.get(self.kind, 1)

    def stamped(
        self, device: str, seq: int, prev: bytes | None = None, signature: bytes | None = None
    ) -> Event:
        # A field-by-field copy: dataclasses.replace re-runs __init__ and costs twice as much, which
        # shows at the outbox's tens of thousands of stamps per second (3.3 us against 4.7 with
        # object.__setattr__ looked up for each field).
        new = _new(Event)
        for name in _FIELD_NAMES:
            _set(new, name, getattr(self, name))
        _set(new, "device", device)
        _set(new, "seq", seq)
        _set(new, "prev", prev)
        _set(new, "signature", signature)
        return new


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Event))
_new, _set = object.__new__, object.__setattr__


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def box_to_wire(x1: float, y1: float, x2: float, y2: float) -> tuple[int, int, int, int]:
    """Normalized float box → the integer box of the wire format, clipped to the image."""

    def q(v: float) -> int:
        return min(BOX_SCALE, max(0, round(v * BOX_SCALE)))

    return q(x1), q(y1), q(x2), q(y2)


def confidence_to_wire(score: float) -> int:
    return min(CONF_SCALE, max(0, round(score * CONF_SCALE)))


# Wire key for each field. Header keys are one or two letters; they are the bulk of every event.
_KEYS: dict[str, str] = {
    "device": "d",
    "seq": "s",
    "event_id": "id",
    "kind": "k",
    "captured_ms": "t",
    "clock_synced": "cs",
    "phase": "ph",
    "ref": "ref",
    "label": "c",
    "model": "m",
    "confidence": "p",
    "box": "b",
    "camera": "cam",
    "zone": "z",
    "track": "tr",
    "count": "n",
    "density": "dn",
    "board": "bd",
    "sensor": "sn",
    "values": "val",
    "units": "u",
    "severity": "sev",
    "health": "h",
    "image": "img",
    "blurred": "blr",
    "prev": "hp",
    "signature": "sg",
}
_FIELDS = {wire: name for name, wire in _KEYS.items()}
_REQUIRED = ("device", "seq", "event_id", "kind", "captured_ms", "clock_synced")
# Fields each known kind must carry on every phase, and on its ``start`` phase.
_KIND_REQUIRED: dict[str, tuple[str, ...]] = {
    ISSUE: ("phase", "label", "camera"),
    CROWD: ("count", "camera"),
    CROSSING: ("camera", "values"),  # z, the line, is always sent too (unless privacy drops z)
    READING: ("board", "sensor", "values"),
    ALARM: ("phase", "label", "severity"),
    HEALTH: ("health",),
}
_START_REQUIRED: dict[str, tuple[str, ...]] = {
    ISSUE: ("model", "confidence", "box"),
}


def withholdable_keys() -> set[str]:
    """Wire keys a privacy setting may remove: none of the header, a kind's required or the chain."""
    required = set(_REQUIRED) | {n for names in _KIND_REQUIRED.values() for n in names}
    required |= {n for names in _START_REQUIRED.values() for n in names} | {"ref", "prev", "signature"}
    return {key for name, key in _KEYS.items() if name not in required}


def withheld(event: Event, keys: set[str]) -> Event:
    """The event without the fields of these wire keys (``withholdable_keys`` only)."""
    if "img" in keys:
        keys = keys | {"blr"}  # "blurred" says something about an image that is no longer there
    names: dict[str, Any] = {
        _FIELDS[k]: None for k in keys if k in _FIELDS and getattr(event, _FIELDS[k]) is not None
    }
    return dataclasses.replace(event, **names) if names else event


def to_wire(event: Event) -> dict[str, Any]:
    """The event as the plain map that goes on the wire (msgpack types only)."""
    out: dict[str, Any] = {"v": SCHEMA_VERSION}
    for name, key in _KEYS.items():
        value = getattr(event, name)
        if value is None:
            continue
        if name == "model":
            value = [value.id, value.version, value.sha256]
        elif name == "box":
            value = list(value)
        out[key] = value
    for key, value in event.extra.items():
        out.setdefault(key, value)
    return out


def encode(event: Event) -> bytes:
    return msgpack.packb(to_wire(event), use_bin_type=True)


def decode(payload: bytes) -> Event:
    """Decode and validate one msgpack event; raises EventFormatError naming the problem."""
    try:
        raw = msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise EventFormatError(f"not a msgpack document: {exc}") from None
    except UnicodeDecodeError:
        raise EventFormatError("a text field is not valid UTF-8") from None
    return from_wire(raw)


def from_wire(raw: Any) -> Event:
    """Validate a decoded wire map and build the Event."""
    fields, extra = _validated(raw)
    return Event(extra=extra, **fields)


def _validated(raw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A decoded wire map's fields (in their Python form) and unknown keys; EventFormatError if not valid."""
    if not isinstance(raw, Mapping):
        raise EventFormatError(f"an event must be a map, got {type(raw).__name__}")
    version = raw.get("v")
    if version is None:
        raise EventFormatError("missing schema version 'v'")
    if type(version) is not int:
        raise EventFormatError(f"schema version 'v' must be an integer, got {version!r}")
    if version != SCHEMA_VERSION:
        raise EventFormatError(
            f"unsupported schema version {version}; this decoder reads version {SCHEMA_VERSION}"
        )
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "v":
            continue
        name = _FIELDS.get(key)
        if name is None:
            extra[key] = value
        else:
            fields[name] = _check(name, key, value)
    _check_required(fields)
    return fields, extra


def _check_required(fields: dict[str, Any]) -> None:
    """The fields every event, every event of its kind and every start of its kind must carry."""
    for name in _REQUIRED:
        if name not in fields:
            raise EventFormatError(f"missing required field '{_KEYS[name]}' ({name})")
    kind = fields["kind"]
    for name in _KIND_REQUIRED.get(kind, ()):
        if name not in fields:
            raise EventFormatError(f"a '{kind}' event needs field '{_KEYS[name]}' ({name})")
    if fields.get("phase") == START:
        for name in _START_REQUIRED.get(kind, ()):
            if name not in fields:
                raise EventFormatError(f"a '{kind}' start event needs field '{_KEYS[name]}' ({name})")
    if fields.get("phase") in (UPDATE, END) and "ref" not in fields:
        raise EventFormatError(f"a '{fields['phase']}' event needs 'ref', the id of its start event")


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _is_box(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 4
        and all(type(v) is int and 0 <= v <= BOX_SCALE for v in value)
    )


def _is_model(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and isinstance(value[1], str)
        and isinstance(value[2], bytes)
    )


def _is_values(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and k and _is_number(v) for k, v in value.items()
    )


def _is_units(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _same(value: Any) -> Any:
    return value


def _bytes_of(size: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, bytes) and len(value) == size


# One row per field: whether a wire value is valid, what the error says it must be, and how the
# wire value becomes the Python one. A table, so each field's rule is one line and checking costs
# one lookup on the outbox's path.
_Rule = tuple[Callable[[Any], bool], str, Callable[[Any], Any]]
_TEXT: _Rule = (lambda v: isinstance(v, str) and bool(v), "a non-empty string", _same)
_COUNT: _Rule = (_is_count, "a non-negative integer", _same)
_FLAG: _Rule = (lambda v: type(v) is bool, "true or false", _same)
_ID: _Rule = (_bytes_of(16), "16 bytes", _same)
_AMOUNT: _Rule = (lambda v: _is_number(v) and v >= 0, "a finite non-negative number", _same)
_RULES: dict[str, _Rule] = {
    **dict.fromkeys(("device", "kind", "label", "camera", "zone", "board", "sensor"), _TEXT),
    **dict.fromkeys(("seq", "captured_ms", "track"), _COUNT),
    **dict.fromkeys(("clock_synced", "blurred"), _FLAG),
    **dict.fromkeys(("event_id", "ref"), _ID),
    **dict.fromkeys(("count", "density"), _AMOUNT),
    "prev": (_bytes_of(8), "8 bytes", _same),
    "signature": (_bytes_of(64), "a 64-byte ed25519 signature", _same),
    "image": (lambda v: isinstance(v, bytes), "bytes", _same),
    "phase": (lambda v: v in PHASES, f"one of {', '.join(PHASES)}", _same),
    "severity": (lambda v: v in SEVERITIES, f"one of {', '.join(SEVERITIES)}", _same),
    "confidence": (
        lambda v: type(v) is int and 0 <= v <= CONF_SCALE,
        f"an integer in 0..{CONF_SCALE}",
        _same,
    ),
    "box": (_is_box, f"4 integers in 0..{BOX_SCALE}", tuple),
    "model": (_is_model, "[model id, version, sha256 prefix bytes]", lambda v: ModelRef(v[0], v[1], v[2])),
    "values": (_is_values, "a map of quantity name to finite number", dict),
    "units": (_is_units, "a map of quantity name to unit", dict),
    "health": (
        lambda v: isinstance(v, Mapping) and all(isinstance(k, str) for k in v),
        "a map with string keys",
        dict,
    ),
}


def _check(name: str, key: str, value: Any) -> Any:
    """Type and range checks for one field; returns the value in its Python form."""
    valid, expected, convert = _RULES[name]
    if not valid(value):
        raise EventFormatError(f"field '{key}' ({name}) must be {expected}, got {value!r:.60}")
    if name == "box" and (value[0] > value[2] or value[1] > value[3]):
        raise EventFormatError(
            f"field '{key}' ({name}) must be a box with x1 <= x2 and y1 <= y2, got {value!r:.60}"
        )
    return convert(value)


def validate(event: Event) -> bytes:
    """The event's payload, after refusing what the decoder would refuse (EventFormatError).

    The outbox calls it on every stamped event, so nothing is published that a consumer, or our
    own ``decode``, cannot read back.
    """
    try:
        payload = encode(event)
        wire = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (TypeError, ValueError, OverflowError) as exc:  # unpackable types, int map keys, ...
        raise EventFormatError(f"cannot be encoded as msgpack: {exc}") from None
    _validated(wire)  # the decoder's checks, without building the Event again
    return payload


def json_view(value: Any) -> Any:
    """A decoded payload as JSON: bin (bytes) become lowercase hex, as docs/asyncapi.yaml says."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): json_view(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_view(v) for v in value]
    return value


def to_json(event: Event) -> dict[str, Any]:
    """A JSON-ready view of the wire map: bytes become hex strings, keys stay the wire keys."""
    return json_view(to_wire(event))


# The retained state topic ({prefix}/{device}/state): a small map with the events' header keys where
# they mean the same (``v``, ``d``, ``t``), so one decoder reads both.
_STATE_REQUIRED = {"v": int, "d": str, "online": bool, "t": int}


def state_to_wire(device: str, online: bool, at_ms: int, **more: Any) -> dict[str, Any]:
    """The birth (online) or last-will/goodbye (offline) map; ``more`` adds keys such as ``agent``."""
    return {"v": SCHEMA_VERSION, "d": device, "online": online, "t": at_ms, **more}


def encode_state(device: str, online: bool, **more: Any) -> bytes:
    return msgpack.packb(state_to_wire(device, online, now_ms(), **more), use_bin_type=True)


def decode_state(payload: bytes) -> dict[str, Any]:
    """Decode and check a state payload; raises EventFormatError naming the problem."""
    try:
        raw = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise EventFormatError(f"not a msgpack document: {exc}") from None
    if not isinstance(raw, dict):
        raise EventFormatError(f"a state must be a map, got {type(raw).__name__}")
    for key, kind in _STATE_REQUIRED.items():
        if key not in raw:
            raise EventFormatError(f"a state needs field '{key}'")
        if type(raw[key]) is not kind:
            raise EventFormatError(f"state field '{key}' must be {kind.__name__}, got {raw[key]!r:.60}")
    if raw["v"] != SCHEMA_VERSION:
        raise EventFormatError(f"unsupported state version {raw['v']}; this decoder reads {SCHEMA_VERSION}")
    if not raw["d"] or raw["t"] < 0:
        raise EventFormatError("a state needs a non-empty device 'd' and a non-negative time 't'")
    return raw


def is_state(raw: Any) -> bool:
    """Whether a decoded map is a state message rather than an event (it has ``online``, no ``k``)."""
    return isinstance(raw, Mapping) and "online" in raw and "k" not in raw
