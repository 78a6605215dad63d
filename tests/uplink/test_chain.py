"""Tamper-evident events: links and signed chain heads from the real outbox, checked by `events verify`.

A real SQLite outbox numbers and links the events; a real uplink publishes them to Mosquitto, where
`edgectl events tail --format record` records them, while another client publishes a forged event
and an altered copy of a real one. `edgectl events verify` must pass the honest recording and name
both tampered ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import msgpack
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from uplink_support import gateway_config, reading, running_uplink

from agent import events as ev
from agent.events import HEALTH, Event, now_ms
from agent.trust.keys import DeviceKey
from agent.uplink.chain import link_of, verify
from agent.uplink.outbox import Outbox
from tools.broker import Broker

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def health() -> Event:
    return Event(kind=HEALTH, captured_ms=now_ms(), clock_synced=True, health={"uptime_s": 1})


async def _stored(outbox: Outbox) -> list[tuple[str, bytes]]:
    rows = await outbox.read(0, outbox.last_seq, 10_000)
    return [(f"city/{outbox.device}/evt/{r.kind}", r.payload) for r in rows]


def test_every_event_links_to_the_one_before_and_health_reports_sign_the_head(tmp_path: Path) -> None:
    key = DeviceKey.load_or_create(tmp_path / "device.key")
    assert (tmp_path / "device.key").stat().st_mode & 0o777 == 0o600

    async def go() -> list[tuple[str, bytes]]:
        outbox = await Outbox.open(tmp_path / "outbox.sqlite", "pole-c", 10_000_000, key)
        await outbox.submit_many([reading(i) for i in range(5)])
        await outbox.submit(health())
        await outbox.submit_many([reading(i) for i in range(3)])
        stored = await _stored(outbox)
        await outbox.close()
        # after a restart the chain goes on from the last stored event
        outbox = await Outbox.open(tmp_path / "outbox.sqlite", "pole-c", 10_000_000, key)
        await outbox.submit(reading(9))
        await outbox.submit(health())
        stored = await _stored(outbox)
        await outbox.close()
        return stored

    stored = asyncio.run(go())
    events = [ev.decode(p) for _, p in stored]
    assert events[0].prev is None and all(
        e.prev == link_of(p) for e, (_, p) in zip(events[1:], stored, strict=False)
    )
    assert [e.signature is not None for e in events] == [e.kind == HEALTH for e in events]
    report = verify(stored, {"pole-c": [key.public_b64]})
    assert report.problems == [], report.findings
    assert report.verified["pole-c"] == len(stored) - 1  # all but the last, which the next report covers


def test_verify_names_removed_altered_forged_and_wrongly_signed_events(tmp_path: Path) -> None:
    key = DeviceKey.load_or_create(tmp_path / "device.key")
    other = DeviceKey.load_or_create(tmp_path / "other.key")

    async def go() -> list[tuple[str, bytes]]:
        outbox = await Outbox.open(tmp_path / "outbox.sqlite", "pole-v", 10_000_000, key)
        await outbox.submit_many([reading(i) for i in range(6)])
        await outbox.submit(health())
        stored = await _stored(outbox)
        await outbox.close()
        return stored

    stored = asyncio.run(go())
    trusted = {"pole-v": [key.public_b64]}

    def problems(stream: list[tuple[str, bytes]]) -> list[str]:
        return [f"#{f.seq} {f.what}" for f in verify(stream, trusted).problems]

    assert problems(stored) == []
    removed = stored[:2] + stored[3:]
    assert any("gap: events 3..3" in p for p in problems(removed))
    raw = msgpack.unpackb(stored[3][1], raw=False)
    raw["val"] = {"pm2_5": 999.0}
    altered = [*stored[:3], (stored[3][0], msgpack.packb(raw, use_bin_type=True)), *stored[4:]]
    assert any("#5 broken link: event 5 does not follow event 4" in p for p in problems(altered))
    both = [*stored, altered[3]]  # the original and an altered copy
    assert any("#4 two different events" in p for p in problems(both))
    forged_sig = dict(msgpack.unpackb(stored[-1][1], raw=False))
    forged_sig["sg"] = other.sign(b"anything")
    resigned = [*stored[:-1], (stored[-1][0], msgpack.packb(forged_sig, use_bin_type=True))]
    assert any("signature that does not verify" in p for p in problems(resigned))


def _publish(broker: Broker, topic: str, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id="intruder")
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def _edgectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.edgectl", "events", *args],
        input=stdin, capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip


@pytest.mark.timeout(120)
def test_events_verify_catches_a_forged_event_and_an_altered_payload_on_the_broker(
    mosquitto: Broker, tmp_path: Path
) -> None:
    device = "pole-ev"
    # birth, 4 readings, a health report, the two tampered messages, 2 readings, a health report
    recorder = subprocess.Popen(
        [sys.executable, "-m", "tools.edgectl", "events", "tail", "--url", mosquitto.url, "--format", "record",
         "--topic", f"city/{device}/#", "--timeout", "60", "--count", "11"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    assert recorder.stderr is not None and "following" in recorder.stderr.readline()
    config = gateway_config(
        mosquitto.url, tmp_path / "outbox.sqlite", device=device, telemetry_interval_s=3600
    )
    tampered: list[bytes] = []

    async def run() -> None:
        async with running_uplink(config) as ctx:
            outbox = ctx.uplink.outbox
            published: list[bytes] = []
            outbox.add_listener(lambda rows: published.extend(r.payload for r in rows))
            await ctx.sink.submit_many([reading(i) for i in range(4)])
            await ctx.sink.submit(health())
            while outbox.stats.depth:
                await asyncio.sleep(0.05)
            # another client on the broker: a forged reading with the next number, and an altered
            # copy of the second reading
            forged = reading(77).stamped(device, outbox.last_seq + 1, os.urandom(8))
            raw = msgpack.unpackb(published[1], raw=False)
            raw["val"] = {"pm2_5": 999.0}
            tampered.extend([ev.encode(forged), msgpack.packb(raw, use_bin_type=True)])
            for payload in tampered:
                _publish(mosquitto, f"city/{device}/evt/reading", payload)
            await ctx.sink.submit_many([reading(i) for i in range(2)])
            await ctx.sink.submit(health())
            while outbox.stats.depth:
                await asyncio.sleep(0.05)

    asyncio.run(run())
    out, err = recorder.communicate(timeout=60)
    assert recorder.returncode == 0, err
    recording = tmp_path / "as-received.jsonl"
    recording.write_text(out)
    done = _edgectl("verify", str(recording))
    assert done.returncode == 1, done.stdout + done.stderr
    conflicts = [line for line in done.stdout.splitlines() if "two different events" in line]
    assert len(conflicts) == 2, done.stdout  # the forged one and the altered one
    assert "key: the birth message" in done.stdout
    honest = tmp_path / "honest.jsonl"
    honest.write_text(
        "".join(
            line + "\n"
            for line in out.splitlines()
            if bytes.fromhex(json.loads(line)["payload"]) not in tampered
        )
    )
    public = DeviceKey.load_or_create(
        tmp_path / "device.key"
    ).public_b64  # the agent made it beside the outbox
    done = _edgectl("verify", str(honest), "--key", f"{device}={public}")
    assert done.returncode == 0 and "verified: no problems" in done.stdout, done.stdout
    assert f"{device}: 8 events, 7 vouched for by a signature; key: given" in done.stdout


def test_the_verification_recipe_in_docs_events_md_works_as_written(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    recipe: dict = {}
    exec(compile(code, "docs/events.md", "exec"), recipe)  # the integrator's code, as printed
    key = DeviceKey.load_or_create(tmp_path / "device.key")

    async def go() -> list[tuple[str, bytes]]:
        outbox = await Outbox.open(tmp_path / "outbox.sqlite", "pole-d", 10_000_000, key)
        await outbox.submit_many([reading(i) for i in range(4)])
        await outbox.submit(health())
        await outbox.submit(reading(5))
        stored = await _stored(outbox)
        await outbox.close()
        return stored

    stored = asyncio.run(go())
    events = {ev.decode(p).seq: p for _, p in stored}
    public = Ed25519PublicKey.from_public_bytes(key.public)
    assert recipe["vouched"](events, "pole-d", public) == {1, 2, 3, 4}
    raw = msgpack.unpackb(events[2], raw=False)
    raw["val"] = {"pm2_5": 1e6}
    events[2] = msgpack.packb(raw, use_bin_type=True)
    assert recipe["vouched"](events, "pole-d", public) == {4, 3}  # the chain stops at the altered one
