"""`edgectl events`: decode events for integrators (tail lives beside it once the uplink exists)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agent.events import EventFormatError, decode, to_json

from ..errors import USAGE, EdgectlError


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("events", help="decode and follow events")
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    dec = cmds.add_parser("decode", help="print a msgpack event as JSON")
    dec.add_argument("file", nargs="?", type=Path, help="a .msgpack file (default: standard input)")
    dec.set_defaults(func=cmd_decode)


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
        event = decode(payload)
    except EventFormatError as exc:
        raise EdgectlError(f"{name} is not a valid event: {exc}", USAGE) from None
    print(json.dumps(to_json(event), indent=2, ensure_ascii=False))
    return 0
