"""Event wire format v1: round trips, golden vectors, and rejection of malformed payloads."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import events as ev
from agent.events import Event, EventFormatError, ModelRef, decode, encode

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
VECTOR_NAMES = sorted(p.stem for p in VECTORS.glob("*.msgpack") if not p.stem.startswith("state_"))
STATE_NAMES = sorted(p.stem for p in VECTORS.glob("state_*.msgpack"))


def test_every_kind_has_a_vector() -> None:
    kinds = {decode((VECTORS / f"{n}.msgpack").read_bytes()).kind for n in VECTOR_NAMES}
    assert kinds == set(ev.KINDS)


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_golden_vector_decodes_to_its_json_and_reencodes_byte_for_byte(name: str) -> None:
    payload = (VECTORS / f"{name}.msgpack").read_bytes()
    event = decode(payload)
    assert ev.to_json(event) == json.loads((VECTORS / f"{name}.json").read_text())
    assert encode(event) == payload


def test_the_vectors_are_what_the_agents_encoders_make_now() -> None:
    """make_vectors builds alarms and states with the agent's own code: a change there fails here."""
    sys.path.insert(0, str(VECTORS))
    try:
        import make_vectors
    finally:
        sys.path.remove(str(VECTORS))
    made = make_vectors.payloads()
    assert sorted(made) == sorted(VECTOR_NAMES + STATE_NAMES)
    for name, (payload, view) in made.items():
        assert (VECTORS / f"{name}.msgpack").read_bytes() == payload, (
            f"{name}: rerun tests/vectors/make_vectors.py"
        )
        assert json.loads((VECTORS / f"{name}.json").read_text()) == view, name


@pytest.mark.parametrize("name", STATE_NAMES)
def test_state_vectors_decode_with_the_events_header_keys(name: str) -> None:
    state = ev.decode_state((VECTORS / f"{name}.msgpack").read_bytes())
    assert state["v"] == 1 and state["d"] == "pole-0042" and isinstance(state["online"], bool)
    with pytest.raises(EventFormatError, match="'d'"):
        ev.decode_state(msgpack.packb({"v": 1, "device": "pole", "online": True, "t": 1}))


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_golden_vector_readable_by_plain_msgpack(name: str) -> None:
    raw = msgpack.unpackb((VECTORS / f"{name}.msgpack").read_bytes())
    assert raw["v"] == 1 and raw["d"] == "pole-0042" and isinstance(raw["s"], int)


def test_update_carries_only_what_changed() -> None:
    raw = msgpack.unpackb((VECTORS / "issue_update.msgpack").read_bytes())
    assert "m" not in raw and "tr" not in raw and "z" not in raw
    assert len((VECTORS / "issue_update.msgpack").read_bytes()) <= 150


def _valid() -> dict:
    return msgpack.unpackb((VECTORS / "issue_start.msgpack").read_bytes())


def _pack(raw: dict) -> bytes:
    return msgpack.packb(raw, use_bin_type=True)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r.pop("v"), "missing schema version"),
        (lambda r: r.update(v=2), "unsupported schema version 2"),
        (lambda r: r.update(v="1"), "must be an integer"),
        (lambda r: r.pop("s"), "'s' (seq)"),
        (lambda r: r.update(s=-1), "'s' (seq) must be a non-negative integer"),
        (lambda r: r.update(id=b"short"), "'id' (event_id) must be 16 bytes"),
        (lambda r: r.update(cs="yes"), "'cs' (clock_synced) must be true or false"),
        (lambda r: r.update(p=1001), "'p' (confidence) must be an integer in 0..1000"),
        (lambda r: r.update(b=[1, 2, 3]), "'b' (box) must be 4 integers"),
        (lambda r: r.update(b=[500, 2, 100, 40]), "x1 <= x2"),
        (lambda r: r.update(ph="begin"), "'ph' (phase) must be one of start, update, end"),
        (lambda r: r.pop("m"), "start event needs field 'm'"),
        (lambda r: r.pop("c"), "needs field 'c'"),
        (lambda r: r.update(m=["x", "1"]), "'m' (model)"),
        (lambda r: r.update(d=""), "'d' (device) must be a non-empty string"),
        (lambda r: r.update(ph="update"), "needs 'ref'"),
    ],
)
def test_malformed_issue_is_rejected_naming_the_field(mutate, expected: str) -> None:
    raw = _valid()
    mutate(raw)
    with pytest.raises(EventFormatError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        decode(_pack(raw))


@pytest.mark.parametrize(
    ("kind", "missing"),
    [("crowd", "n"), ("reading", "val"), ("reading", "bd"), ("alarm", "sev"), ("health", "h")],
)
def test_each_kind_requires_its_fields(kind: str, missing: str) -> None:
    name = {"crowd": "crowd", "reading": "reading", "alarm": "alarm_cover_start", "health": "health"}[kind]
    raw = msgpack.unpackb((VECTORS / f"{name}.msgpack").read_bytes())
    raw.pop(missing)
    with pytest.raises(EventFormatError, match=f"'{missing}'"):
        decode(_pack(raw))


@pytest.mark.parametrize(
    "payload", [b"", b"\xc1", b"\x93\x01\x02\x03", _pack([1, 2]), b"\x81\xa1v", _pack({"v": 1}) + b"\x00"]
)
def test_garbage_is_rejected_cleanly(payload: bytes) -> None:
    with pytest.raises(EventFormatError):
        decode(payload)


def test_reading_values_must_be_numbers() -> None:
    raw = msgpack.unpackb((VECTORS / "reading.msgpack").read_bytes())
    raw["val"] = {"pm2_5": "high"}
    with pytest.raises(EventFormatError, match="quantity name to finite number"):
        decode(_pack(raw))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_readings_are_refused_so_json_output_stays_valid(bad: float) -> None:
    raw = msgpack.unpackb((VECTORS / "reading.msgpack").read_bytes())
    raw["val"] = {"pm2_5": bad}
    with pytest.raises(EventFormatError, match="finite"):
        decode(_pack(raw))


def test_unknown_keys_survive_a_round_trip() -> None:
    raw = _valid()
    raw["future"] = {"lane": 2}
    event = decode(_pack(raw))
    assert event.extra == {"future": {"lane": 2}}
    assert msgpack.unpackb(encode(event))["future"] == {"lane": 2}


def test_unknown_kind_is_accepted_with_its_header() -> None:
    raw = msgpack.unpackb((VECTORS / "health.msgpack").read_bytes())
    raw["k"] = "radar_track"
    raw.pop("h")
    raw["speed"] = 12.5
    event = decode(_pack(raw))
    assert event.kind == "radar_track" and event.extra == {"speed": 12.5}


def test_box_and_confidence_quantization_clips() -> None:
    assert ev.box_to_wire(-0.1, 0.25, 0.5, 1.2) == (0, 2500, 5000, 10000)
    assert ev.confidence_to_wire(0.8734) == 873
    assert ev.confidence_to_wire(1.5) == 1000


# --- property: decode(encode(e)) == e for any valid event -------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20)
u16 = st.integers(0, ev.BOX_SCALE)
finite = st.floats(min_value=0, max_value=1e6, allow_nan=False)
numbers = st.one_of(st.integers(-(2**31), 2**31), st.floats(allow_nan=False, allow_infinity=False))


@st.composite
def boxes(draw) -> tuple[int, int, int, int]:
    x1, x2 = sorted((draw(u16), draw(u16)))
    y1, y2 = sorted((draw(u16), draw(u16)))
    return x1, y1, x2, y2


header = {
    "captured_ms": st.integers(0, 2**53),
    "clock_synced": st.booleans(),
    "device": names,
    "seq": st.integers(0, 2**63),
    "event_id": st.binary(min_size=16, max_size=16),
}
models = st.builds(ModelRef, id=names, version=names, sha256=st.binary(min_size=8, max_size=8))
issue = st.builds(
    Event,
    kind=st.just(ev.ISSUE),
    phase=st.just(ev.START),
    label=names,
    camera=names,
    model=models,
    confidence=st.integers(0, ev.CONF_SCALE),
    box=boxes(),
    zone=st.none() | names,
    track=st.none() | st.integers(0, 2**32),
    image=st.none() | st.binary(max_size=64),
    blurred=st.none() | st.booleans(),
    **header,
)
issue_update = st.builds(
    Event,
    kind=st.just(ev.ISSUE),
    phase=st.sampled_from([ev.UPDATE, ev.END]),
    ref=st.binary(min_size=16, max_size=16),
    label=names,
    camera=names,
    confidence=st.none() | st.integers(0, ev.CONF_SCALE),
    box=st.none() | boxes(),
    **header,
)
crowd = st.builds(
    Event,
    kind=st.just(ev.CROWD),
    count=finite,
    camera=names,
    density=st.none() | finite,
    zone=st.none() | names,
    **header,
)
reading = st.builds(
    Event,
    kind=st.just(ev.READING),
    board=names,
    sensor=names,
    values=st.dictionaries(names, numbers, max_size=5),
    units=st.none() | st.dictionaries(names, names, max_size=5),
    **header,
)
alarm = st.builds(
    Event,
    kind=st.just(ev.ALARM),
    phase=st.just(ev.START),
    label=names,
    severity=st.sampled_from(ev.SEVERITIES),
    board=st.none() | names,
    sensor=st.none() | names,
    values=st.none() | st.dictionaries(names, numbers, max_size=3),
    **header,
)
health = st.builds(
    Event, kind=st.just(ev.HEALTH), health=st.dictionaries(names, numbers | names, max_size=6), **header
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(issue, issue_update, crowd, reading, alarm, health))
def test_decode_inverts_encode(event: Event) -> None:
    assert decode(encode(event)) == event


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash_the_decoder(payload: bytes) -> None:
    with contextlib.suppress(EventFormatError):
        decode(payload)
