"""`edgectl board`: find, flash, provision and watch sensor boards."""

# Lazy imports: every edgectl start-up loads every command module (`edgectl --help`: 0.39 s), so the
# board links (board_cli.flash 50 ms, probe 31, provision 29, monitor 25, proto 18, board_setup 7) and
# the firmware simulators (20 and 13 ms) are imported in the handlers that use them.

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiomqtt

from agent.config import ConfigError, load_config
from agent.trust.bundle import BUNDLE_FILE

from ..board_cli.connecting import Connecting
from ..board_cli.ports import list_serial_ports, the_only_board
from ..board_cli.sim_registry import announced
from ..doctor_checks import broker_failure
from ..errors import BROKER, BYTECODE, FAILED, USAGE, EdgectlError
from ..firmware_build import BuildError, BytecodeError, build_bundle
from ._trust import add_key_option, add_trust_options, signing_key_from_args, trust_from_args


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("board", help="find, flash, provision and watch sensor boards")
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = cmds.add_parser(
        "list",
        help="serial ports with USB ids, marking likely MicroPython boards",
        description="Lists serial ports with their USB vendor:product ids. MICROPYTHON says 'yes' for the "
        "ids MicroPython itself reports, 'maybe' for chips and USB-UART bridges boards use, and 'sim' for "
        "the simulated boards `edgectl board sim` runs.",
    )
    listing.add_argument("--port", action="append", default=[], help="also show this port (repeatable)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument(
        "--probe",
        action="store_true",
        help="ask each likely board who it is (briefly interrupts its program, which then restarts)",
    )
    listing.set_defaults(func=cmd_list)

    flash = cmds.add_parser(
        "flash",
        help="install a firmware bundle on a board (verified, atomic, resumable)",
        description="Installs a bundle built by `edgectl firmware build`: each file is written under a temporary "
        "name, checked by sha256 on the board, and the new version is switched in by one rename, keeping the "
        "previous version for rollback. An interrupted flash leaves the old firmware booting; running the "
        "command again completes it. The board is then rebooted and must come back with the new version.",
    )
    flash.add_argument(
        "bundle",
        type=Path,
        help="bundle folder (with bundle.json), or a firmware source folder to compile for the board's bytecode",
    )
    flash.add_argument("--version", dest="fw_version", help="with a source folder: the version to build")
    add_key_option(flash, "bundle built from a source folder")
    flash.add_argument("--port", help="serial port of the board (default: the only board plugged in)")
    flash.add_argument("--baud", type=int, default=115200)
    flash.add_argument(
        "--allow-downgrade", action="store_true", help="install a version older than the board's"
    )
    flash.add_argument("--no-reboot", action="store_true", help="switch the version in but do not reboot")
    flash.add_argument(
        "--repl",
        action="store_true",
        help="go through the raw REPL even if the board answers our protocol (default: protocol when it does)",
    )
    flash.add_argument("--quiet", action="store_true", help="no progress bar")
    add_trust_options(flash)
    flash.set_defaults(func=cmd_flash)

    provision = cmds.add_parser(
        "provision",
        help="write a board's config (id, sensors and pins, intervals, thresholds, calibration) and verify it",
        description="Validates a board setup file (TOML or JSON), writes it to the board as /config.json under "
        "a temporary name, checks its sha256 on the board, renames it into place (the previous config is kept "
        "as /config.prev.json), reads it back and compares. With --show, prints the board's current config.",
    )
    provision.add_argument("setup", nargs="?", type=Path, help="board setup file (.toml or .json)")
    provision.add_argument("--port", help="serial port of the board (default: the only board plugged in)")
    provision.add_argument("--baud", type=int, default=115200)
    provision.add_argument("--board-id", help="board id, overriding the file's (one file for many boards)")
    provision.add_argument("--show", action="store_true", help="print the board's current config and exit")
    provision.add_argument(
        "--dry-run", action="store_true", help="validate the setup file only (no board needed)"
    )
    provision.set_defaults(func=cmd_provision)

    sim = cmds.add_parser(
        "sim",
        help="run a simulated board on a pseudo-terminal, to practise and test without hardware",
        description="By default, our firmware under CPython with simulated sensors, on a pseudo-terminal "
        "reached through a stable path (--port) that the agent's [[boards]] port can name; a scenario "
        "plays a street situation and faults can be injected on the line. --stock: a board that runs only "
        "stock MicroPython (raw REPL, raw paste, soft reboot); mpremote and `edgectl board flash` work on "
        "it, and its flash is a folder on this machine. Stop either with Ctrl-C.",
    )
    sim.add_argument("--stock", action="store_true", help="a board with stock MicroPython only")
    sim.add_argument(
        "--flash",
        type=Path,
        default=None,
        help="folder standing for its flash, kept between runs (default: board-flash with --stock; a "
        "temporary folder for our firmware, provisioned with --setup at each start)",
    )
    sim.add_argument(
        "--setup",
        type=Path,
        default=None,
        help="board setup file as for `board provision`, written to the flash at start (default: the "
        "flash's /config.json if it has one, else firmware/sim/street-setup.toml)",
    )
    sim.add_argument(
        "--port", type=Path, default=Path("ttyBOARD"), help="stable path (symlink) to the board's port"
    )
    sim.add_argument("--scenario", default="calm", help="calm, pollution, noise, cover, flood, street")
    sim.add_argument("--loop", action="store_true", help="replay the scenario every --period seconds")
    sim.add_argument("--period", type=float, default=120.0, help="scenario period with --loop (s)")
    sim.add_argument("--baud", type=int, default=115200, help="line rate the board paces its bytes at")
    sim.add_argument("--ber", type=float, default=0.0, help="bit-error rate on the line, e.g. 1e-4")
    sim.add_argument("--drop", type=float, default=0.0, help="share of bytes lost on the line")
    sim.add_argument(
        "--unplug-every", type=float, default=0.0, help="pull the cable every S seconds, for 3 s"
    )
    sim.set_defaults(func=cmd_sim)

    monitor = cmds.add_parser(
        "monitor",
        help="live readings, alarms and link statistics of the pole's boards",
        description="Shows the latest reading of each sensor, open and cleared alarms, and the boards' link "
        "statistics, in a table that updates in place. It watches what the running agent publishes (the "
        "agent holds the serial ports), connecting with the gateway config's broker settings. --json prints "
        "one JSON object per line instead: {'event': ...} or {'link': ...}.",
    )
    monitor.add_argument(
        "--config", type=Path, default=Path("/etc/edge-agent/config.toml"), help="gateway config"
    )
    monitor.add_argument("--board", help="only this board")
    monitor.add_argument("--json", action="store_true", help="JSON lines for machines")
    monitor.add_argument("--duration", type=float, help="stop after this many seconds")
    monitor.add_argument("--count", type=int, help="stop after this many readings and alarms")
    monitor.set_defaults(func=cmd_monitor)


def cmd_list(args: argparse.Namespace) -> int:
    from ..board_cli.probe import probe

    ports = list_serial_ports(args.port, simulated=True)
    # Probe the ports that may be boards: USB ids of boards, and ports named explicitly.
    answers = {
        p.device: probe(p.device) for p in ports if args.probe and (p.micropython or p.device in args.port)
    }
    if args.json:
        out = []
        for p in ports:
            item = {**asdict(p), "usb_id": p.usb_id}
            if p.device in answers:
                item["answer"] = asdict(answers[p.device])
            out.append(item)
        print(json.dumps(out, indent=2))
        return 0
    if not ports:
        print("no serial ports found; plug the board in (a data cable, not a charge-only one) and retry")
        return 0
    rows = [("PORT", "USB ID", "MICROPYTHON", "KIND", "DESCRIPTION" if not args.probe else "ANSWER")]
    for p in ports:
        last = (
            answers[p.device].summary()
            if p.device in answers
            else ("-" if args.probe else p.description or "-")
        )
        rows.append((p.device, p.usb_id, p.micropython or "-", p.kind or "-", last))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def cmd_flash(args: argparse.Namespace) -> int:
    from ..board_cli.flash import FlashOptions, flash_over_protocol, flash_over_repl

    bundle = _bundle_or_builder(args)
    args.port = args.port or the_only_board()
    options = FlashOptions(
        port=args.port,
        baud=args.baud,
        allow_downgrade=args.allow_downgrade,
        reboot=not args.no_reboot,
        quiet=args.quiet,
    )
    say = (lambda text: None) if args.quiet else print
    connecting = options.connecting()
    # A board running our firmware is flashed over its protocol; any other MicroPython over the raw REPL.
    result = None if args.repl else flash_over_protocol(bundle, options, say, connecting)
    if result is None:
        result = flash_over_repl(bundle, options, say, connecting)
    if result.unchanged:
        was = "it was already installed and intact"
    else:
        was = f"was {result.previous}, kept for rollback" if result.previous else "first install"
    print(
        f"{args.port}: firmware {result.version} installed ({result.sent} file(s) sent, {result.reused} reused; {was})"
        + ("; rebooted and running it" if options.reboot else "; reboot the board to run it")
    )
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    from ..board_cli.board_setup import SetupError, load_setup, setup_warnings
    from ..board_cli.proto import probe_hello
    from ..board_cli.provision import (
        provision_over_protocol,
        provision_over_repl,
        show_over_protocol,
        show_over_repl,
    )

    if args.show:
        args.port = args.port or the_only_board()
        connecting = Connecting(args.port)
        # Our firmware answers over the protocol and keeps running; stock MicroPython over the raw REPL.
        if probe_hello(args.port, args.baud, feedback=connecting) is not None:
            current = show_over_protocol(args.port, args.baud)
        else:
            current = show_over_repl(args.port, args.baud, connecting)
        if current is None:
            print(f"{args.port}: the board has no config yet; provision it with a setup file")
            return FAILED
        print(json.dumps(current, indent=2, sort_keys=True))
        return 0
    if args.setup is None:
        raise EdgectlError("give a board setup file to write, or --show to read the board's config", USAGE)
    try:
        setup = load_setup(args.setup, args.board_id)
    except SetupError as exc:
        raise EdgectlError(str(exc), USAGE) from None
    summary = f"{setup.board_id}: {len(setup.sensors)} sensor(s)" + (
        f", lamp on pin {setup.lamp.pin}" if setup.lamp else ""
    )
    for warning in setup_warnings(setup):
        print(f"warning: {args.setup}: {warning}", file=sys.stderr)
    if args.dry_run:  # the file alone: no board needed
        print(f"{args.setup}: valid ({summary})")
        return 0
    args.port = args.port or the_only_board()
    connecting = Connecting(args.port)
    if probe_hello(args.port, args.baud, feedback=connecting) is not None:
        # Our firmware: the protocol's verified transfer, then a reboot into the new config.
        before = provision_over_protocol(setup, args.port, args.baud, connecting)
        print(
            f"{args.port}: provisioned {summary}; read back and verified, rebooted and running it "
            f"(previous config of {before.get('id', '?')} kept as /config.prev.json)"
        )
        return 0
    previous = provision_over_repl(setup, args.port, args.baud, connecting)
    was = (
        f"; previous config of {previous.get('board_id', '?')} kept as /config.prev.json" if previous else ""
    )
    print(f"{args.port}: provisioned {summary}; read back and verified{was}")
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from ..board_cli.monitor import MonitorOptions, run_monitor

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise EdgectlError(
            f"{exc.source}: invalid config; `edgectl config check {exc.source}` lists each problem", USAGE
        ) from None
    options = MonitorOptions(board=args.board, json=args.json, duration_s=args.duration, count=args.count)
    try:
        run_monitor(config, options)
    except aiomqtt.MqttError as exc:
        detail, fix = broker_failure(config.uplink.url, exc)
        raise EdgectlError(f"{config.uplink.url}: {detail}; {fix}", BROKER) from None
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    if args.stock:
        return _stock_sim(args)

    from firmware.sim.board import SimulatedBoard
    from firmware.sim.scenarios import SCENARIOS, STREET_SETUP, ScenarioPlayer

    from ..board_cli.board_setup import SetupError, load_setup

    if args.scenario not in SCENARIOS:
        raise EdgectlError(f"no scenario {args.scenario!r}; known: {', '.join(SCENARIOS)}", USAGE)
    if not 0 <= args.ber < 0.01 or not 0 <= args.drop < 0.1:
        raise EdgectlError("--ber must be in [0, 0.01) and --drop in [0, 0.1)", USAGE)
    try:
        setup = load_setup(args.setup or STREET_SETUP).document()
    except SetupError as exc:
        raise EdgectlError(str(exc), USAGE) from None
    if args.flash is not None and args.setup is not None:
        (args.flash / "config.json").unlink(missing_ok=True)  # provisioned anew with --setup
    board = SimulatedBoard(
        setup, port=args.port.absolute(), baud=args.baud, ber=args.ber, drop=args.drop, flash=args.flash
    )
    player = ScenarioPlayer(board.world, args.scenario, loop=args.loop, period_s=args.period)
    with board, announced(board.port, "our firmware", f"board {board.boot_config().get('board_id')}"):
        player.start()
        print(
            f"simulated board {board.boot_config().get('board_id')} on {board.port} ({args.baud} baud, "
            f"scenario {args.scenario}); Ctrl-C stops it",
            flush=True,
        )
        try:
            next_pull = time.monotonic() + args.unplug_every if args.unplug_every else None
            while board.error is None:
                time.sleep(0.2)
                if next_pull is not None and time.monotonic() >= next_pull:
                    print("cable pulled", flush=True)
                    board.unplug()
                    time.sleep(3)
                    board.plug()
                    print("cable back", flush=True)
                    next_pull = time.monotonic() + args.unplug_every
        except KeyboardInterrupt:
            pass
        finally:
            player.stop()
    if board.error is not None:
        raise EdgectlError(f"the simulated firmware stopped: {board.error!r}", 70)
    return 0


def _stock_sim(args: argparse.Namespace) -> int:
    from firmware.sim.stock_board import StockBoard

    if args.baud <= 0:
        raise EdgectlError(f"--baud must be a positive line rate, not {args.baud}", USAGE)
    flash = args.flash or Path("board-flash")
    with (
        StockBoard(flash, port=args.port.absolute(), baud=args.baud) as board,
        announced(board.port, "stock MicroPython", f"flash {flash}"),
    ):
        board.booted.wait(10)  # announce the port once the board listens
        print(
            f"simulated stock MicroPython board on {board.port} ({args.baud} baud, flash: {flash}); "
            "Ctrl-C stops it",
            flush=True,
        )
        try:
            while not board.unplugged.is_set():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def _bundle_or_builder(args: argparse.Namespace) -> Any:
    """The bundle to flash, or, for a firmware source folder, a function compiling it for a bytecode version."""
    from ..board_cli.flash import open_bundle

    if (args.bundle / BUNDLE_FILE).is_file() or not args.bundle.is_dir():
        return open_bundle(args.bundle, trust_from_args(args))
    if not args.fw_version:
        raise EdgectlError(
            f"{args.bundle} is a firmware source folder (no bundle.json); give --version X.Y.Z to compile it for "
            "the board, or flash a bundle built with `edgectl firmware build`",
            USAGE,
        )
    key = signing_key_from_args(args, required=False)
    workdir = Path(tempfile.mkdtemp(prefix="edgectl-flash-"))
    atexit.register(shutil.rmtree, workdir, True)

    def build(mpy: int) -> Any:
        try:
            return build_bundle(
                args.bundle, workdir / "bundle", args.fw_version, mpy=mpy, key=key, force=True
            )
        except BytecodeError as exc:
            raise EdgectlError(str(exc), BYTECODE) from None
        except BuildError as exc:
            raise EdgectlError(str(exc), USAGE) from None

    return build
