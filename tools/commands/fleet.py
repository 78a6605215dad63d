"""`edgectl fleet`: change many gateways at once and watch them converge (for operators)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import functools
import hashlib
import io
import json
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import msgpack

from agent import topics
from agent.events import EventFormatError, decode_state
from agent.trust.commands import command_payload

from ..errors import FAILED, USAGE, EdgectlError
from ._mqtt import Requester, add_broker_args, broker_error, client_from_args
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
    conf.add_argument("devices", nargs="*", metavar="DEVICE", help="device ids (or --match)")
    add_match_option(conf)
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

    for deployment in (MODEL, FIRMWARE):
        add_deployment(cmds, deployment)

    packed = cmds.add_parser(
        "pack",
        help="write a model folder or firmware bundle as the tar the gateways fetch with --from-url",
        description="Writes FOLDER (a signed model folder, or a firmware bundle) as a tar with stable "
        "names and times: the same bytes `fleet model|firmware` sends. Put it on an HTTPS server and "
        "run `fleet model|firmware FOLDER ... --from-url URL`: the gateways fetch it themselves.",
    )
    packed.add_argument("folder", type=Path, help="the signed model folder or firmware bundle")
    packed.add_argument("out", type=Path, help="the tar to write")
    packed.set_defaults(func=cmd_pack)


def add_deploy_options(parser: argparse.ArgumentParser, wait_s: float) -> None:
    """What every package deployment takes: the operator's key, the topics, waiting and chunking."""
    parser.add_argument("--key", type=Path, required=True, help="operator private key (edgectl keys new)")
    parser.add_argument("--prefix", default="city", help="topic prefix (default city)")
    parser.add_argument(
        "--wait", type=float, default=wait_s, help=f"seconds to wait for each reply (default {wait_s:g})"
    )
    parser.add_argument(
        "--chunk-kib",
        type=int,
        default=40,
        choices=range(1, 48),
        metavar="KIB",
        help="chunk size (default 40; smaller for a broker with a small maximum packet size)",
    )
    parser.add_argument(
        "--from-url",
        metavar="URL",
        help="the gateways fetch the package from this https:// URL (where `edgectl fleet pack` put "
        "it) instead of receiving it over MQTT; the signed command names the URL, SHA-256 and size",
    )
    parser.add_argument(
        "--stop-after", type=int, metavar="N", help=argparse.SUPPRESS
    )  # tests: cut a transfer


def add_match_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--match",
        metavar="GLOB",
        help="also every device whose retained state says it is online and whose id matches GLOB "
        "(e.g. 'pole-00*')",
    )


async def online_devices(
    client: aiomqtt.Client, prefix: str, pattern: str, settle_s: float = 1.5
) -> list[str]:
    """Devices whose retained birth message is on the broker now, by id matching ``pattern``."""
    found: dict[str, bool] = {}
    await client.subscribe(topics.state(prefix, "+"), qos=1)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(settle_s):  # retained messages come at once after subscribing
            async for message in client.messages:
                if not str(message.topic).endswith("/state") or not isinstance(message.payload, bytes):
                    continue
                with contextlib.suppress(EventFormatError):
                    state = decode_state(message.payload)
                    found[state["d"]] = state["online"]
    await client.unsubscribe(topics.state(prefix, "+"))
    return sorted(d for d, online in found.items() if online and fnmatch.fnmatchcase(d, pattern))


async def _targets(client: aiomqtt.Client, args: argparse.Namespace) -> list[str]:
    devices = list(dict.fromkeys(args.devices))
    if args.match:
        devices += [d for d in await online_devices(client, args.prefix, args.match) if d not in devices]
    if not devices:
        raise EdgectlError("no device: name them, or --match a pattern of online devices", USAGE)
    return devices


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
    reports: dict[str, dict[str, Any] | None] = {}
    try:
        async with client_from_args(args) as client:
            args.devices = await _targets(client, args)
            reports = dict.fromkeys(args.devices)
            for device in args.devices:
                await client.subscribe(topics.reported_config(args.prefix, device), qos=1)
            for device in args.devices:
                payload = command_payload(device, "desired-config", {"set": patch, "ver": ver}, key)
                await client.publish(topics.desired_config(args.prefix, device), payload, qos=1, retain=True)
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
        raise broker_error(args, exc) from None
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


def pack(folder: Path, marker: str = "manifest.json") -> bytes:
    """A package folder as a tar with stable names, times and owners: the same folder, the same bytes."""
    if marker == "manifest.json" and not (folder / "signature.json").is_file():
        raise EdgectlError(f"{folder} is not a signed model folder (manifest.json, signature.json)", USAGE)
    if not (folder / marker).is_file():
        raise EdgectlError(f"{folder} holds no {marker}: not the package expected here", USAGE)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(str(path.relative_to(folder)))
            info.size, info.mtime, info.mode = path.stat().st_size, 0, 0o644
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    return buf.getvalue()


async def _send(
    client: aiomqtt.Client,
    args: argparse.Namespace,
    device: str,
    archive: bytes,
    key: str,
    install: str,
    install_args: dict[str, Any],
) -> dict[str, Any]:
    """Upload ``archive`` to ``device`` in signed chunks (resuming a cut transfer), then ``install`` it."""
    digest = hashlib.sha256(archive).hexdigest()
    transfer = digest[:16]  # the same package resumes the same transfer
    size = args.chunk_kib * 1024
    chunks = [archive[i : i + size] for i in range(0, len(archive), size)]
    request = Requester(client, args.prefix, device, key, args.wait)
    await client.subscribe(request.reply_topic, qos=1)
    try:
        if args.from_url:
            print(f"edgectl: {device}: fetches {len(archive):,} bytes from {args.from_url}", file=sys.stderr)
            fetch = {"url": args.from_url, "sha256": digest, "size": len(archive)}
            return await request.result(install, {**fetch, **install_args})
        staged = (await request.result("upload-status", {}))["transfers"].get(transfer)
        todo = staged["missing"] if staged else list(range(len(chunks)))
        print(
            f"edgectl: {device}: {len(archive):,} bytes in {len(chunks)} chunks; "
            f"{len(chunks) - len(todo)} already on the device",
            file=sys.stderr,
        )
        for n, index in enumerate(todo):
            if args.stop_after is not None and n >= args.stop_after:
                raise EdgectlError(f"stopped after {n} chunks (--stop-after)", FAILED)
            data = chunks[index]
            answer = await request.result(
                "upload-chunk",
                {"transfer": transfer, "index": index, "count": len(chunks), "data": data,
                 "sha256": hashlib.sha256(data).hexdigest()},
            )  # fmt: skip
            print(f"\r  sent {answer['have']}/{len(chunks)} chunks", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        return await request.result(install, {"transfer": transfer, "sha256": digest, **install_args})
    finally:
        await client.unsubscribe(request.reply_topic)


def cmd_pack(args: argparse.Namespace) -> int:
    marker = "bundle.json" if (args.folder / "bundle.json").is_file() else "manifest.json"
    archive = pack(args.folder, marker=marker)
    args.out.write_bytes(archive)
    print(f"{args.out}: {len(archive)} bytes, sha256 {hashlib.sha256(archive).hexdigest()}")
    return 0


async def _deploy(
    args: argparse.Namespace, archive: bytes, key: str, install: str, install_args: dict[str, Any]
) -> dict[str, dict[str, Any] | str]:
    results: dict[str, dict[str, Any] | str] = {}
    try:
        async with client_from_args(args) as client:
            for device in await _targets(client, args):
                try:
                    results[device] = await _send(client, args, device, archive, key, install, install_args)
                except EdgectlError as exc:  # one device's refusal does not stop the others
                    print(f"edgectl: {exc}", file=sys.stderr)
                    results[device] = str(exc)
    except aiomqtt.MqttError as exc:
        raise broker_error(args, exc) from None
    return results


@dataclass(frozen=True)
class Deployment:
    """What `fleet model` and `fleet firmware` each deploy; one flow (pack, send, install, a table of
    how each device went) serves both."""

    command: str  # the `fleet` subcommand
    help: str
    description: str
    folder: str  # the package folder's argument
    folder_help: str
    marker: str  # the file that says the folder is this kind of package
    install: str  # the gateway command that installs it
    wait_s: float
    options: Callable[[argparse.ArgumentParser], None]  # this kind's own options
    install_args: Callable[[argparse.Namespace], dict[str, Any]]
    installed: Callable[[dict[str, Any]], str]  # an installed device's row, after its id and "ok"


def add_deployment(cmds: argparse._SubParsersAction, deployment: Deployment) -> None:
    parser = cmds.add_parser(deployment.command, help=deployment.help, description=deployment.description)
    add_broker_args(parser)
    parser.add_argument(deployment.folder, type=Path, help=deployment.folder_help)
    parser.add_argument("devices", nargs="*", metavar="DEVICE", help="device ids (or --match)")
    add_match_option(parser)
    deployment.options(parser)
    add_deploy_options(parser, wait_s=deployment.wait_s)
    parser.set_defaults(func=functools.partial(cmd_deploy, deployment=deployment))


def cmd_deploy(args: argparse.Namespace, deployment: Deployment) -> int:
    key = read_private(args.key)
    archive = pack(getattr(args, deployment.folder), marker=deployment.marker)
    results = asyncio.run(_deploy(args, archive, key, deployment.install, deployment.install_args(args)))
    for device, result in results.items():
        if isinstance(result, dict):
            print(f"{device:<20} ok       {deployment.installed(result)}")
        else:
            print(f"{device:<20} FAILED   {result}")
    return 0 if all(isinstance(r, dict) for r in results.values()) else FAILED


def _camera_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--camera", required=True, help="camera id on each device")


def _model_installed(result: dict[str, Any]) -> str:
    return f"{' '.join(result['installed'])} on {result['camera']} (was {' '.join(result['previous'])})"


MODEL = Deployment(
    command="model",
    help="send a signed model package to a gateway's camera, resumably, and install it",
    description="Packs FOLDER (a model folder signed with `edgectl model sign`), sends it to each DEVICE in "
    "signed chunks (a cut transfer resumes: run the same command again), then installs it on "
    "--camera in place of the model with the same id. The gateway checks the package's hash and "
    "signature (updates.model_signers) and the model's golden self-test before it swaps; the "
    "previous version stays (`edgectl cmd send DEVICE model-rollback`). Devices go one after the "
    "other; a table says how each went. Exit 0: installed on every device.",
    folder="folder",
    folder_help="the signed model folder",
    marker="manifest.json",
    install="model-install",
    wait_s=60.0,
    options=_camera_option,
    install_args=lambda args: {"camera": args.camera},
    installed=_model_installed,
)


def _board_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", help="board id on each gateway (may be left out where it has one board)")
    parser.add_argument("--allow-downgrade", action="store_true", help="install an older version")


def _firmware_install_args(args: argparse.Namespace) -> dict[str, Any]:
    install_args: dict[str, Any] = {"board": args.board} if args.board else {}
    if args.allow_downgrade:
        install_args["allow_downgrade"] = True
    return install_args


def _firmware_installed(result: dict[str, Any]) -> str:
    was = result.get("previous") or "(none)"
    reused = result.get("files_reused")
    resumed = f", {reused} files already on the board" if reused and result.get("files_sent") else ""
    return f"board {result['board']} runs {result['installed']} (was {was}){resumed}"


FIRMWARE = Deployment(
    command="firmware",
    help="send a signed firmware bundle to gateways, which install it on a board over the serial link",
    description="Packs BUNDLE (`edgectl firmware build --key`), sends it to each DEVICE in signed chunks "
    "(resumable), then the gateway checks its signature (updates.firmware_signers), hashes, "
    "bytecode version and downgrade, installs it on the board over the serial protocol with the "
    "same verified, switched-in-one-rename install as `edgectl board flash`, reboots the board and "
    "waits for its HELLO with the new version. A board cut off mid-install keeps its firmware.",
    folder="bundle",
    folder_help="the firmware bundle folder",
    marker="bundle.json",
    install="board-firmware-install",
    wait_s=120.0,
    options=_board_options,
    install_args=_firmware_install_args,
    installed=_firmware_installed,
)
