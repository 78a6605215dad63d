"""Commands over a real broker: signed, unsigned, forged, replayed, stale, malformed and unknown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import msgpack
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.commands import CommandError
from agent.config import load_config
from agent.events import now_ms
from agent.runtime import AgentContext
from agent.trust.commands import command_payload
from agent.trust.keys import new_key
from agent.uplink import part
from tools.broker import Broker

DEVICE = "pole-cmd"


class Operator:
    """An operator's client: sends a command with a response topic and waits for its reply."""

    def __init__(self, client: aiomqtt.Client, replies: dict[bytes, Any]) -> None:
        self.client = client
        self.replies = replies

    async def post(self, name: str, payload: bytes, expiry_s: int = 60) -> bytes:
        """Publish a command; returns its correlation data."""
        correlation = os.urandom(8)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"city/{DEVICE}/reply/ops"
        props.CorrelationData = correlation
        props.MessageExpiryInterval = expiry_s
        await self.client.publish(f"city/{DEVICE}/cmd/{name}", payload, qos=1, properties=props)
        return correlation

    async def reply(self, correlation: bytes, timeout: float = 5.0) -> dict[str, Any] | None:
        for _ in range(int(timeout * 100)):
            if correlation in self.replies:
                return self.replies.pop(correlation)
            await asyncio.sleep(0.01)
        return None

    async def send(self, name: str, payload: bytes, expiry_s: int = 60) -> dict[str, Any]:
        reply = await self.reply(await self.post(name, payload, expiry_s))
        assert reply is not None, f"no reply to {name}"
        return reply


@contextlib.asynccontextmanager
async def agent_and_operator(
    broker: Broker, tmp_path: Path, trusted: list[str]
) -> AsyncIterator[tuple[AgentContext, Operator]]:
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        f'[device]\nid = "{DEVICE}"\n[uplink]\nurl = "{broker.url}"\npassword_env = "NOT_SET_ANYWHERE"\n'
        f"telemetry_interval_s = 60\n[uplink.commands]\ntrusted_keys = {json.dumps(trusted)}\n"
        f'[outbox]\npath = "{tmp_path / "outbox.sqlite"}"\n'
    )
    os.environ["NOT_SET_ANYWHERE"] = "s3cret-password"
    ctx = AgentContext(config=load_config(config_path), config_path=config_path)
    await part.setup(ctx)
    runner = asyncio.create_task(part.run(ctx))
    ctx.runner = runner  # type: ignore[attr-defined]
    replies: dict[bytes, Any] = {}
    try:
        async with aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.subscribe(f"city/{DEVICE}/reply/ops", qos=1)

            async def collect() -> None:
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    body = (
                        json.loads(message.payload)
                        if message.payload[:1] == b"{"
                        else msgpack.unpackb(message.payload)
                    )
                    replies[message.properties.CorrelationData] = body

            collector = asyncio.create_task(collect())
            while not ctx.uplink.publisher.stats.connected:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # the subscription to cmd/+ follows the birth message
            yield ctx, Operator(client, replies)
            collector.cancel()
    finally:
        ctx.runner.cancel()  # type: ignore[attr-defined]
        with contextlib.suppress(asyncio.CancelledError):
            await ctx.runner  # type: ignore[attr-defined]
        await part.close(ctx)
        os.environ.pop("NOT_SET_ANYWHERE", None)


@pytest.fixture
def keys() -> tuple[str, str]:
    return new_key()


def test_ping_and_get_config_need_no_signature_and_leak_no_secret(
    mosquitto: Broker, tmp_path: Path, keys
) -> None:
    async def main() -> None:
        async with agent_and_operator(mosquitto, tmp_path, [keys[1]]) as (_ctx, op):
            pong = await op.send("ping", command_payload(DEVICE, "ping"))
            assert (
                pong["ok"] is True and pong["result"]["pong"] is True and pong["result"]["device"] == DEVICE
            )
            got = await op.send("get-config", command_payload(DEVICE, "get-config"))
            assert got["ok"] is True
            assert got["result"]["config"]["device"]["id"] == DEVICE
            assert got["result"]["config"]["uplink"]["password_env"] == "(set)"
            assert b"s3cret" not in msgpack.packb(got) and b"NOT_SET_ANYWHERE" not in msgpack.packb(got)
            # JSON in, JSON out, for integrators without msgpack at hand.
            pong = await op.send("ping", json.dumps({"args": {}}).encode())
            assert pong["ok"] is True

    asyncio.run(asyncio.wait_for(main(), 60))


def test_signed_set_config_is_validated_persisted_and_applied(
    mosquitto: Broker, tmp_path: Path, keys
) -> None:
    private, public = keys

    async def main() -> None:
        async with agent_and_operator(mosquitto, tmp_path, [public]) as (ctx, op):
            change = {"set": {"uplink": {"telemetry_interval_s": 5, "keepalive_s": 45}}}
            done = await op.send("set-config", command_payload(DEVICE, "set-config", change, private))
            assert done["ok"] is True, done
            assert done["result"]["applied"] == ["uplink.telemetry_interval_s"]
            assert done["result"]["restart_needed"] == ["uplink.keepalive_s"]
            assert ctx.config.uplink.telemetry_interval_s == 5
            on_disk = tomllib.loads((tmp_path / "config.toml").read_text())
            assert on_disk["uplink"]["telemetry_interval_s"] == 5 and on_disk["uplink"]["keepalive_s"] == 45

            bad = {"set": {"uplink": {"telemetry_interval_s": -1}}}
            refused = await op.send("set-config", command_payload(DEVICE, "set-config", bad, private))
            assert refused["ok"] is False and refused["error"] == "invalid-config"
            assert "uplink.telemetry_interval_s" in refused["message"]
            assert (
                tomllib.loads((tmp_path / "config.toml").read_text())["uplink"]["telemetry_interval_s"] == 5
            )

    asyncio.run(asyncio.wait_for(main(), 60))


def test_bad_commands_get_an_error_naming_why_and_the_agent_keeps_answering(
    mosquitto: Broker, tmp_path: Path, keys
) -> None:
    private, public = keys
    other_private, _ = new_key()
    change = {"set": {"uplink": {"telemetry_interval_s": 7}}}

    async def main() -> None:
        async with agent_and_operator(mosquitto, tmp_path, [public]) as (ctx, op):
            cases = {
                "malformed": ("set-config", b"\xc1 not msgpack"),
                "unknown-command": ("reboot-the-city", command_payload(DEVICE, "reboot-the-city")),
                "unsigned": ("set-config", command_payload(DEVICE, "set-config", change)),
                "bad-signature": ("set-config", command_payload(DEVICE, "set-config", change, other_private)),
                "expired": (
                    "set-config",
                    command_payload(DEVICE, "set-config", change, private, ts=now_ms() - 3_600_000),
                ),
            }
            for code, (name, payload) in cases.items():
                reply = await op.send(name, payload)
                assert reply["ok"] is False and reply["error"] == code, (code, reply)
                assert reply["message"]
            # Signed for another device: the signature binds the device id.
            elsewhere = command_payload("pole-other", "set-config", change, private)
            assert (await op.send("set-config", elsewhere))["error"] == "bad-signature"
            # A valid command once, then the same bytes again.
            signed = command_payload(DEVICE, "set-config", change, private)
            assert (await op.send("set-config", signed))["ok"] is True
            again = await op.send("set-config", signed)
            assert again["ok"] is False and again["error"] == "replayed"
            assert (await op.send("ping", command_payload(DEVICE, "ping")))["ok"] is True
            stats = await op.send(
                "flush-outbox-stats", command_payload(DEVICE, "flush-outbox-stats", {}, private)
            )
            assert stats["ok"] is True and stats["result"]["dropped"] == {} and "depth" in stats["result"]
            counts = ctx.health.snapshot()["uplink"]["commands"]
            assert counts["replayed"] == 1 and counts["malformed"] == 1

    asyncio.run(asyncio.wait_for(main(), 60))


def test_mqtt311_sender_gets_the_reply_on_the_fallback_topic(mosquitto: Broker, tmp_path: Path, keys) -> None:
    async def main() -> None:
        async with (
            agent_and_operator(mosquitto, tmp_path, [keys[1]]) as (_ctx, _op),
            aiomqtt.Client(mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V311) as old,
        ):
            await old.subscribe(f"city/{DEVICE}/cmd/ping/reply", qos=1)
            payload = command_payload(DEVICE, "ping", nonce="nonce-311-abc")
            await old.publish(f"city/{DEVICE}/cmd/ping", payload, qos=1)
            async for message in old.messages:
                assert isinstance(message.payload, bytes)
                reply = msgpack.unpackb(message.payload)
                assert reply["ok"] is True and reply["nonce"] == "nonce-311-abc"
                break

    asyncio.run(asyncio.wait_for(main(), 60))


def _edgectl(*args: str) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "tools.edgectl", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_edgectl_keys_new_and_cmd_send_sign_a_command_the_device_accepts(
    mosquitto: Broker, tmp_path: Path
) -> None:
    key_file = tmp_path / "operator.key"
    made = _edgectl("keys", "new", str(key_file))
    assert made.returncode == 0, made.stderr
    public = made.stdout.strip()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert _edgectl("keys", "public", str(key_file)).stdout.strip() == public

    async def main() -> None:
        async with agent_and_operator(mosquitto, tmp_path, [public]) as (ctx, _):
            change = json.dumps({"set": {"uplink": {"telemetry_interval_s": 9}}})
            base = ["cmd", "send", "--url", mosquitto.url, DEVICE, "set-config", "--args", change]
            unsigned = await asyncio.to_thread(_edgectl, *base)
            assert unsigned.returncode == 1 and json.loads(unsigned.stdout)["error"] == "unsigned"
            signed = await asyncio.to_thread(_edgectl, *base, "--key", str(key_file))
            assert signed.returncode == 0, signed.stdout + signed.stderr
            assert json.loads(signed.stdout)["result"]["applied"] == ["uplink.telemetry_interval_s"]
            assert ctx.config.uplink.telemetry_interval_s == 9

    asyncio.run(asyncio.wait_for(main(), 90))


def test_other_parts_register_their_own_commands_and_get_the_same_authorization(
    mosquitto: Broker, tmp_path: Path, keys
) -> None:
    private, public = keys
    calls: list[dict[str, Any]] = []

    async def board_reset(args: dict[str, Any]) -> dict[str, Any]:
        calls.append(args)
        if args.get("board") != "board-1":
            raise CommandError("unknown-board", f"no board {args.get('board')!r}; known: board-1")
        return {"reset": args["board"]}

    async def explode(args: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("driver bug")

    async def main() -> None:
        async with agent_and_operator(mosquitto, tmp_path, [public]) as (ctx, op):
            ctx.commands.register("board-reset", board_reset, mutating=True)
            ctx.commands.register("explode", explode, mutating=False)
            unsigned = await op.send(
                "board-reset", command_payload(DEVICE, "board-reset", {"board": "board-1"})
            )
            assert unsigned["error"] == "unsigned" and calls == []
            done = await op.send(
                "board-reset", command_payload(DEVICE, "board-reset", {"board": "board-1"}, private)
            )
            assert done == {"ok": True, "result": {"reset": "board-1"}, "nonce": done["nonce"]}
            refused = await op.send(
                "board-reset", command_payload(DEVICE, "board-reset", {"board": "b9"}, private)
            )
            assert refused["error"] == "unknown-board" and "b9" in refused["message"]
            crashed = await op.send("explode", command_payload(DEVICE, "explode"))
            assert crashed["error"] == "failed" and "driver bug" in crashed["message"]
            assert (await op.send("ping", command_payload(DEVICE, "ping")))["ok"] is True

    asyncio.run(asyncio.wait_for(main(), 60))


def test_commands_sent_while_the_gateway_is_away_wait_at_the_broker_until_they_expire(
    mosquitto: Broker, tmp_path: Path, keys
) -> None:
    private, public = keys

    async def main() -> None:
        async with agent_and_operator(mosquitto, tmp_path, [public]) as (ctx, op):
            # The gateway goes away cleanly; its session (and subscription) stays at the broker.
            ctx.runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ctx.runner
            fresh = await op.post("ping", command_payload(DEVICE, "ping"), expiry_s=60)
            change = {"set": {"uplink": {"telemetry_interval_s": 11}}}
            stale = await op.post(
                "set-config", command_payload(DEVICE, "set-config", change, private), expiry_s=1
            )
            await asyncio.sleep(2.5)  # the set-config expires at the broker meanwhile
            ctx.runner = asyncio.create_task(part.run(ctx))
            answered = await op.reply(fresh, timeout=15)
            assert answered is not None and answered["ok"] is True
            assert await op.reply(stale, timeout=2) is None
            assert ctx.config.uplink.telemetry_interval_s == 60

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_command_replayed_after_an_agent_restart_is_still_refused(
    mosquitto: Broker, tmp_path: Path, keys
) -> None:
    private, public = keys
    signed = command_payload(DEVICE, "set-config", {"set": {"uplink": {"telemetry_interval_s": 13}}}, private)

    async def first() -> dict[str, Any]:
        async with agent_and_operator(mosquitto, tmp_path, [public]) as (_, op):
            return await op.send("set-config", signed)

    async def after_restart() -> dict[str, Any]:
        async with agent_and_operator(mosquitto, tmp_path, [public]) as (_, op):
            return await op.send("set-config", signed)

    assert asyncio.run(asyncio.wait_for(first(), 60))["ok"] is True
    again = asyncio.run(asyncio.wait_for(after_restart(), 60))
    assert again["ok"] is False and again["error"] == "replayed"


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (msgpack.packb({"args": {"a": _nested(40)}}), "deeper than 16 levels"),
        (json.dumps({"args": {"a": _nested(40)}}).encode(), "deeper than 16 levels"),
        (b"\x91" * 3000 + b"\x01", "nests far deeper"),
        (b"\x81\xa4args\x81\xc1", "not valid msgpack: FormatError"),
        (b"\x92\x01", "not valid msgpack: Unpack failed"),
        (msgpack.packb({1: 2}), "map key"),
    ],
    ids=["deep-msgpack", "deep-json", "stack", "reserved-byte", "truncated", "int-key"],
)
def test_every_malformed_command_is_refused_with_its_reason(payload: bytes, reason: str) -> None:
    from agent.uplink.gate import parse

    with pytest.raises(CommandError) as caught:
        parse("ping", payload)
    assert caught.value.code == "malformed" and reason in caught.value.message


def test_a_list_as_the_board_name_is_named_in_the_refusal() -> None:
    from agent.boards.part import Boards

    with pytest.raises(CommandError) as caught:
        Boards([]).get(["pole-1"])
    assert caught.value.code == "bad-args" and "'board' must be a board id" in caught.value.message
