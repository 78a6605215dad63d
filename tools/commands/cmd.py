"""`edgectl cmd send`: sign a command, send it to a gateway, print its reply."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import msgpack
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.uplink.signing import command_payload

from ..errors import BROKER, FAILED, USAGE, EdgectlError
from ._mqtt import add_broker_args, client_from_args
from .keys import read_private


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("cmd", help="send commands to gateways")
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    send = cmds.add_parser(
        "send",
        help="send one command and print the reply as JSON",
        description="Sends NAME to DEVICE with its arguments, signed with --key (needed for commands that "
        "change the device), and waits for the reply. Exit code 1 when the device refuses.",
    )
    add_broker_args(send)
    send.add_argument("device", help="device id, e.g. pole-0042")
    send.add_argument("name", help="command, e.g. ping, get-config, set-config")
    send.add_argument("--args", default="{}", help='arguments as JSON, e.g. \'{"set": {"uplink": {...}}}\'')
    send.add_argument("--key", type=Path, help="operator private key (edgectl keys new)")
    send.add_argument("--prefix", default="city", help="topic prefix (default city)")
    send.add_argument("--wait", type=float, default=15.0, help="seconds to wait for the reply (default 15)")
    send.set_defaults(func=cmd_send)


async def send(args: argparse.Namespace, cmd_args: dict[str, Any], key: str | None) -> dict[str, Any]:
    # in the device's own reply space, the only place its replies may go by default
    reply_topic = f"{args.prefix}/{args.device}/reply/edgectl-{os.urandom(6).hex()}"
    correlation = os.urandom(8)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = reply_topic
    props.CorrelationData = correlation
    props.MessageExpiryInterval = max(1, int(args.wait))  # the broker drops it if the device is away
    payload = command_payload(args.device, args.name, cmd_args, key)
    try:
        async with client_from_args(args) as client:
            await client.subscribe(reply_topic, qos=1)
            await client.publish(
                f"{args.prefix}/{args.device}/cmd/{args.name}", payload, qos=1, properties=props
            )
            async with asyncio.timeout(args.wait):
                async for message in client.messages:
                    if getattr(message.properties, "CorrelationData", None) == correlation:
                        assert isinstance(message.payload, bytes)
                        return msgpack.unpackb(message.payload)
    except TimeoutError:
        raise EdgectlError(
            f"no reply from {args.device} within {args.wait:g} s; is it online (edgectl events tail)?", BROKER
        ) from None
    except aiomqtt.MqttError as exc:
        raise EdgectlError(
            f"broker {args.url}: {exc}; check the URL, TLS files and credentials", BROKER
        ) from None
    raise EdgectlError("the broker closed the connection before the reply came", BROKER)


def cmd_send(args: argparse.Namespace) -> int:
    try:
        cmd_args = json.loads(args.args)
    except json.JSONDecodeError as exc:
        raise EdgectlError(f"--args is not valid JSON: {exc}", USAGE) from None
    if not isinstance(cmd_args, dict):
        raise EdgectlError("--args must be a JSON object", USAGE)
    key = read_private(args.key) if args.key else None
    reply = asyncio.run(send(args, cmd_args, key))
    json.dump(reply, sys.stdout, indent=2, default=lambda b: b.hex() if isinstance(b, bytes) else str(b))
    print()
    return 0 if reply.get("ok") else FAILED
