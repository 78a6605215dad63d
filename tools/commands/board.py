"""`edgectl board`: find, flash, provision and watch sensor boards."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from ..board_cli.ports import list_serial_ports


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("board", help="find, flash, provision and watch sensor boards")
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = cmds.add_parser(
        "list",
        help="serial ports with USB ids, marking likely MicroPython boards",
        description="Lists serial ports with their USB vendor:product ids. MICROPYTHON says 'yes' for the "
        "ids MicroPython itself reports and 'maybe' for chips and USB-UART bridges boards use.",
    )
    listing.add_argument("--port", action="append", default=[], help="also show this port (repeatable)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    ports = list_serial_ports(args.port)
    if args.json:
        print(json.dumps([{**asdict(p), "usb_id": p.usb_id} for p in ports], indent=2))
        return 0
    if not ports:
        print("no serial ports found; plug the board in (a data cable, not a charge-only one) and retry")
        return 0
    rows = [("PORT", "USB ID", "MICROPYTHON", "KIND", "DESCRIPTION")]
    rows += [(p.device, p.usb_id, p.micropython or "-", p.kind or "-", p.description or "-") for p in ports]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0
