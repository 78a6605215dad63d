"""`edgectl cmd send`: sign a command, send it to a gateway, print its reply."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiomqtt

from ..errors import FAILED, USAGE, EdgectlError
from ._mqtt import Requester, add_broker_args, broker_error, client_from_args
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
    try:
        async with client_from_args(args) as client:
            request = Requester(client, args.prefix, args.device, key, args.wait)
            await client.subscribe(request.reply_topic, qos=1)
            return await request.reply(args.name, cmd_args)
    except aiomqtt.MqttError as exc:
        raise broker_error(args, exc) from None


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
