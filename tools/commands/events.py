"""`edgectl events`: decode events, and follow them live from a broker (for integrators)."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import json
import os
import sys
from pathlib import Path
from typing import TextIO

import aiomqtt
import msgpack

from agent.events import Event, EventFormatError, decode, decode_state, is_state, to_json
from agent.trust.keys import KeyFormatError, load_public
from agent.uplink.atrest import AtRestError, Sealer
from agent.uplink.chain import verify

from ..errors import FAILED, USAGE, EdgectlError
from ..eventview import describe
from ._mqtt import add_broker_args, broker_error, client_from_args

DEDUP_WINDOW = 1_000_000  # (device, seq) pairs remembered for --dedup


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("events", help="decode and follow events")
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    dec = cmds.add_parser("decode", help="print a msgpack event (or state message) as JSON")
    dec.add_argument(
        "file",
        nargs="?",
        type=Path,
        help="a .msgpack file, one payload as mosquitto_sub -N -F %%p writes it (default: standard input)",
    )
    dec.set_defaults(func=cmd_decode)

    tail = cmds.add_parser(
        "tail",
        help="subscribe to a broker and print events as they arrive",
        description="Subscribes to events (and telemetry) and prints each as a JSON line or a table row. "
        "With --share, several tails (or consumers) with the same group split the stream between them "
        "(MQTT 5 shared subscription).",
    )
    add_broker_args(tail)
    tail.add_argument(
        "--topic",
        action="append",
        help="topic filter, repeatable (default: city/+/evt/#, city/+/telemetry and city/+/state)",
    )
    tail.add_argument("--share", metavar="GROUP", help="join shared subscription group GROUP")
    tail.add_argument(
        "--format",
        choices=["json", "table", "record"],
        default="json",
        help="output: json lines (default), a table, or record: the exact payloads as JSON lines "
        "{topic, payload (hex)}, for `events verify`",
    )
    tail.add_argument(
        "--dedup", action="store_true", help="drop repeated (device, sequence): at-least-once copies"
    )
    tail.add_argument("--count", type=int, help="exit after printing this many events")
    tail.add_argument("--timeout", type=float, help="exit after this many seconds")
    tail.set_defaults(func=cmd_tail)

    ver = cmds.add_parser(
        "verify",
        help="check a recorded stream: gaps, reorderings, altered and forged events, signatures",
        description="Reads what `events tail --format record` wrote and checks each device's event "
        "chain: every event must link to the one before it (hp) and be vouched for by a signed chain "
        "head (sg, on health reports) made with the device's key. Exit 0: nothing wrong; 1: problems "
        "found (each named).",
    )
    ver.add_argument(
        "file", type=Path, help="a recording (JSON lines of topic and hex payload); - reads stdin"
    )
    ver.add_argument(
        "--key",
        action="append",
        metavar="DEVICE=PUBLIC_KEY",
        help="a device's public key (base64), repeatable; default: the key in its recorded birth "
        "message, trusted on first use",
    )
    ver.add_argument("--json", action="store_true", help="the findings as JSON")
    ver.set_defaults(func=cmd_verify)

    snap = cmds.add_parser(
        "snapshot",
        help="open a snapshot the gateway kept sealed (snapshots.keep_dir) into a JPEG",
        description="Kept snapshots are sealed with the outbox key (AES-256-GCM, bound to the device "
        "and the file name). Run on the gateway, with read access to the key.",
    )
    snap.add_argument("file", type=Path, help="a .jpg.sealed file")
    snap.add_argument("--key-file", type=Path, required=True, help="the outbox key (outbox.key_file)")
    snap.add_argument("--device", required=True, help="the device id the gateway runs as")
    snap.add_argument("-o", "--out", type=Path, help="the JPEG to write (default: beside it, .jpg)")
    snap.set_defaults(func=cmd_snapshot)


def cmd_decode(args: argparse.Namespace) -> int:
    if args.file is None:
        payload = sys.stdin.buffer.read()
        name = "standard input"
    else:
        try:
            payload = args.file.read_bytes()
        except OSError as exc:
            raise EdgectlError(f"cannot read {args.file}: {exc.strerror}", USAGE) from None
        name = str(args.file)
    try:
        shown = _decoded(payload)
    except EventFormatError as exc:
        hint = ""
        if payload.endswith(b"\n") and "extra data" in str(exc):
            hint = " (a newline after the payload: record with mosquitto_sub -N, which adds none)"
        raise EdgectlError(f"{name} is not a valid event: {exc}{hint}", USAGE) from None
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    return 0


def _decoded(payload: bytes) -> dict:
    """The JSON view of an event, or of a state message (birth / last will), checked either way."""
    with contextlib.suppress(ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        if is_state(msgpack.unpackb(payload, raw=False, strict_map_key=False)):
            return decode_state(payload)
    return to_json(decode(payload))


def table_row(event: Event) -> str:
    """Device and sequence, then the event as the demo shows it (sensor names, values with units)."""
    return f"{event.device:<16} {describe(event, utc=True)}"


def state_row(state: dict) -> str:
    when = datetime.datetime.fromtimestamp(state["t"] / 1000, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    when = when[:-3] + "Z"
    extra = " ".join(f"{k}={v}" for k, v in state.items() if k not in ("v", "d", "online", "t"))
    return f"{state['d']:<16} {when} state   {'online' if state['online'] else 'offline'} {extra}".rstrip()


class Tail:
    """Prints events, dropping (device, seq) pairs already printed when asked to."""

    def __init__(self, out: TextIO, fmt: str, dedup: bool) -> None:
        self.out = out
        self.fmt = fmt
        self.dedup = dedup
        self.seen: collections.OrderedDict[tuple[str, int], None] = collections.OrderedDict()
        self.printed = 0
        self.closed = False  # the reader went away (`| head`): stop quietly, as Unix tools do

    def show(self, topic: str, payload: bytes) -> None:
        try:
            if topic.endswith("/state"):
                self._write(topic, decode_state(payload), payload)
                return
            event = decode(payload)
        except EventFormatError as exc:
            print(f"edgectl: skipped a message on {topic}: {exc}", file=sys.stderr)
            return
        if self.dedup:
            key = (event.device, event.seq)
            if key in self.seen:
                return
            self.seen[key] = None
            if len(self.seen) > DEDUP_WINDOW:
                self.seen.popitem(last=False)
        self._write(topic, event, payload)

    def _write(self, topic: str, item: Event | dict, payload: bytes = b"") -> None:
        if self.fmt == "record":
            line = json.dumps({"topic": topic, "payload": payload.hex()}, separators=(",", ":"))
        elif self.fmt == "json":
            # "topic" is not a wire key, so it cannot shadow a field of the event
            view = to_json(item) if isinstance(item, Event) else item
            line = json.dumps({"topic": topic, **view}, separators=(",", ":"), ensure_ascii=False)
        else:
            row = table_row(item) if isinstance(item, Event) else state_row(item)
            line = f"{row}  [{topic}]"
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.closed = True
            return
        self.printed += 1


async def _tail(args: argparse.Namespace) -> None:
    topics = args.topic or ["city/+/evt/#", "city/+/telemetry", "city/+/state"]
    if args.share:
        topics = [f"$share/{args.share}/{t}" for t in topics]
    tail = Tail(sys.stdout, args.format, args.dedup)
    done = asyncio.Event()

    class Printer(asyncio.Queue[aiomqtt.Message]):
        """Prints each message as paho receives it, before it is acknowledged."""

        def put_nowait(self, item: aiomqtt.Message) -> None:
            if done.is_set() or not isinstance(item.payload, bytes):
                return
            tail.show(str(item.topic), item.payload)
            if tail.closed or (args.count is not None and tail.printed >= args.count):
                done.set()

    try:
        async with client_from_args(args, queue_type=Printer) as client:
            for topic in topics:
                await client.subscribe(topic, qos=1)
            print(f"edgectl: following {', '.join(topics)} on {args.url}", file=sys.stderr)
            waiter = asyncio.create_task(done.wait())
            reader = asyncio.create_task(_drain(client))
            finished, _ = await asyncio.wait(
                {waiter, reader}, timeout=args.timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for task in (waiter, reader):
                task.cancel()
            if reader in finished and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
    except aiomqtt.MqttError as exc:
        raise broker_error(args, exc) from None


async def _drain(client: aiomqtt.Client) -> None:
    async for _ in client.messages:  # printing happens on receipt; this only notices a lost link
        pass


def cmd_tail(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(args))
    if not sys.stdout.closed:
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.flush()
    # After a closed pipe, Python's own flush at exit would complain: point stdout at nothing.
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _recording(path: Path) -> list[tuple[str, bytes]]:
    text = sys.stdin.read() if str(path) == "-" else None
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EdgectlError(f"cannot read {path}: {exc.strerror}", USAGE) from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            out.append((str(item["topic"]), bytes.fromhex(item["payload"])))
        except (ValueError, KeyError, TypeError):
            raise EdgectlError(
                f"{path}:{n}: not a recorded message (record with `edgectl events tail --format record`)",
                USAGE,
            ) from None
    return out


def cmd_verify(args: argparse.Namespace) -> int:
    trusted: dict[str, list[str]] = {}
    for spec in args.key or []:
        device, sep, key = spec.partition("=")
        try:
            if not sep:
                raise KeyFormatError("give it as DEVICE=BASE64")
            load_public(key)
        except KeyFormatError as exc:
            raise EdgectlError(f"--key {spec!r}: {exc}", USAGE) from None
        trusted.setdefault(device, []).append(key)
    report = verify(_recording(args.file), trusted)
    if args.json:
        print(
            json.dumps(
                {
                    "checked": report.checked,
                    "verified": report.verified,
                    "keys": report.key_source,
                    "findings": [vars(f) for f in report.findings],
                },
                indent=2,
            )
        )
    else:
        for device, n in sorted(report.checked.items()):
            key = report.key_source.get(device, "none")
            print(
                f"{device}: {n} events, {report.verified.get(device, 0)} vouched for by a signature; key: {key}"
            )
        for f in report.findings:
            where = f" #{f.seq}" if f.seq is not None else ""
            print(f"{'PROBLEM' if f.problem else 'note   '} {f.device}{where}: {f.what}")
        print("verified: no problems" if not report.problems else f"{len(report.problems)} problems")
    return 1 if report.problems else 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    try:
        sealer = Sealer(args.key_file.read_bytes(), args.device)
        jpeg = sealer.open_file(args.file.name, args.file.read_bytes())
    except OSError as exc:
        raise EdgectlError(f"cannot read {exc.filename}: {exc.strerror}", USAGE) from None
    except AtRestError as exc:
        raise EdgectlError(str(exc), FAILED) from None
    out = args.out or args.file.with_name(args.file.name.removesuffix(".sealed"))
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may show a street: private
    with os.fdopen(fd, "wb") as fh:
        fh.write(jpeg)
    print(f"wrote {out} ({len(jpeg):,} bytes)")
    return 0
