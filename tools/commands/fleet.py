"""`edgectl fleet`: change many gateways at once and watch them converge (for operators)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import msgpack

from agent.uplink.signing import command_payload

from ..errors import BROKER, FAILED, USAGE, EdgectlError
from ._mqtt import add_broker_args, client_from_args
from .keys import read_private


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("fleet", help="change many gateways and watch them converge")
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    conf = cmds.add_parser(
        "config",
        help="publish a signed desired config to devices and show each one's report",
        description="Publishes {prefix}/DEVICE/config/desired (retained, signed with --key) for each "
        "DEVICE, then shows a table of what each reports on config/reported until all have taken the "
        "version or --wait runs out. Devices offline now take it when they reconnect. Exit 0: every "
        "device runs the version; 1: some refused it or did not report in time.",
    )
    add_broker_args(conf)
    conf.add_argument("devices", nargs="+", metavar="DEVICE", help="device ids")
    conf.add_argument(
        "--set", required=True, help='settings as JSON, e.g. \'{"uplink": {"telemetry_interval_s": 30}}\''
    )
    conf.add_argument("--key", type=Path, required=True, help="operator private key (edgectl keys new)")
    conf.add_argument(
        "--revision",
        type=int,
        metavar="N",
        help="the config version (default: the current Unix time; only newer ones apply)",
    )
    conf.add_argument("--prefix", default="city", help="topic prefix (default city)")
    conf.add_argument("--wait", type=float, default=60.0, help="seconds to watch the reports (default 60)")
    conf.set_defaults(func=cmd_config)


def _row(device: str, report: dict[str, Any] | None, ver: int) -> str:
    if report is None:
        return f"{device:<20} waiting"
    if report.get("refused") == ver:
        return f"{device:<20} REFUSED  {report.get('error')}: {report.get('message', '')}"
    if report.get("ver", 0) >= ver:
        restart = report.get("restart_needed") or []
        after = f"; after a restart: {', '.join(restart)}" if restart else ""
        return f"{device:<20} ok       version {report['ver']}, config {report.get('hash')}{after}"
    return f"{device:<20} waiting  (runs version {report.get('ver')})"


def _done(report: dict[str, Any] | None, ver: int) -> bool:
    return report is not None and (report.get("refused") == ver or report.get("ver", 0) >= ver)


async def _config(args: argparse.Namespace, patch: dict[str, Any], key: str, ver: int) -> dict[str, Any]:
    reports: dict[str, dict[str, Any] | None] = dict.fromkeys(args.devices)
    try:
        async with client_from_args(args) as client:
            for device in args.devices:
                await client.subscribe(f"{args.prefix}/{device}/config/reported", qos=1)
            for device in args.devices:
                payload = command_payload(device, "desired-config", {"set": patch, "ver": ver}, key)
                await client.publish(f"{args.prefix}/{device}/config/desired", payload, qos=1, retain=True)
            print(
                f"edgectl: desired config version {ver} published to {len(args.devices)} devices",
                file=sys.stderr,
            )
            deadline = time.monotonic() + args.wait
            while not all(_done(r, ver) for r in reports.values()):
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        message = await anext(client.messages)
                except TimeoutError:
                    break
                device = str(message.topic).split("/")[-3]
                if device in reports and isinstance(message.payload, bytes):
                    reports[device] = msgpack.unpackb(message.payload, raw=False)
                    print(_row(device, reports[device], ver), file=sys.stderr)
    except aiomqtt.MqttError as exc:
        raise EdgectlError(
            f"broker {args.url}: {exc}; check the URL, TLS files and credentials", BROKER
        ) from None
    return reports


def cmd_config(args: argparse.Namespace) -> int:
    try:
        patch = json.loads(args.set)
    except json.JSONDecodeError as exc:
        raise EdgectlError(f"--set is not JSON: {exc}", USAGE) from None
    if not isinstance(patch, dict) or not patch:
        raise EdgectlError('--set must be a JSON object of sections, e.g. {"uplink": {...}}', USAGE)
    key = read_private(args.key)
    ver = args.revision if args.revision is not None else int(time.time())
    reports = asyncio.run(_config(args, patch, key, ver))
    print("\n".join(_row(d, r, ver) for d, r in reports.items()))
    return (
        0
        if all(r is not None and r.get("ver", 0) >= ver and r.get("refused") != ver for r in reports.values())
        else FAILED
    )
