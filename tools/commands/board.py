"""`edgectl board`: find, flash, provision and watch sensor boards."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from ..board_cli.ports import list_serial_ports
from ..model_signing import add_trust_options, trust_from_args


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

    flash = cmds.add_parser(
        "flash",
        help="install a firmware bundle on a board (verified, atomic, resumable)",
        description="Installs a bundle built by `edgectl firmware build`: each file is written under a temporary "
        "name, checked by sha256 on the board, and the new version is switched in by one rename, keeping the "
        "previous version for rollback. An interrupted flash leaves the old firmware booting; running the "
        "command again completes it. The board is then rebooted and must come back with the new version.",
    )
    flash.add_argument("bundle", type=Path, help="bundle folder (with bundle.json)")
    flash.add_argument("--port", required=True, help="serial port of the board (see `edgectl board list`)")
    flash.add_argument("--baud", type=int, default=115200)
    flash.add_argument(
        "--allow-downgrade", action="store_true", help="install a version older than the board's"
    )
    flash.add_argument("--no-reboot", action="store_true", help="switch the version in but do not reboot")
    flash.add_argument("--quiet", action="store_true", help="no progress bar")
    add_trust_options(flash)
    flash.set_defaults(func=cmd_flash)


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


def cmd_flash(args: argparse.Namespace) -> int:
    from ..board_cli.flash import FlashOptions, flash_over_repl, open_bundle

    bundle = open_bundle(args.bundle, trust_from_args(args))
    options = FlashOptions(
        port=args.port,
        baud=args.baud,
        allow_downgrade=args.allow_downgrade,
        reboot=not args.no_reboot,
        quiet=args.quiet,
    )
    say = (lambda text: None) if args.quiet else print
    result = flash_over_repl(bundle, options, say)
    was = f"was {result.previous}, kept for rollback" if result.previous else "first install"
    print(
        f"{args.port}: firmware {result.version} installed ({result.sent} file(s) sent, {result.reused} reused; {was})"
        + ("; rebooted and running it" if options.reboot else "; reboot the board to run it")
    )
    return 0
