"""`edge-agent`: the gateway daemon's command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from . import __version__
from .config import ConfigError, load_config
from .logs import setup_logging
from .runtime import AgentContext, run_agent

DEFAULT_CONFIG = Path("/etc/edge-agent/config.toml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Gateway daemon: cameras and sensor boards in, deduplicated events out over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument(
        "-c", "--config", type=Path, default=DEFAULT_CONFIG, help=f"gateway config (default {DEFAULT_CONFIG})"
    )
    parser.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="overrides the config"
    )
    parser.set_defaults(func=cmd_daemon)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    daemon = sub.add_parser("daemon", help="run the agent from its config (the default)")
    daemon.set_defaults(func=cmd_daemon)
    run = sub.add_parser(
        "run",
        help="run one source through models and print events as JSON lines (for trying a model)",
        description="Runs one video file, image folder, stream or USB camera through the given models and "
        "rules, printing each event as a JSON line on stdout. Files and folders are read in order at "
        "--fps by their own clock, as fast as the machine allows; streams run until interrupted.",
    )
    run.add_argument(
        "--source", required=True, help="video file, image folder, rtsp:// or http:// URL, or usb:N"
    )
    run.add_argument(
        "--model", action="append", type=Path, required=True, help="model folder or .onnx export (repeatable)"
    )
    run.add_argument(
        "--zones",
        type=Path,
        help="TOML file with [[zones]] and any other camera keys (issues, crowd, motion, ...)",
    )
    run.add_argument("--fps", type=float, default=2.0, help="frames sampled per second (default 2)")
    run.add_argument("--device", default="try-device", help="device id stamped on printed events")
    run.add_argument("--print", action="store_true", help="print events as JSON lines (the default)")
    run.set_defaults(func=cmd_run)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    # Imported here: the vision stack (OpenCV, onnxruntime) is not needed by the other commands.
    from .vision.run import run_source

    setup_logging(args.log_level or "WARNING", "text")
    return run_source(args.source, args.model, args.zones, args.fps, args.device)


def cmd_daemon(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"edge-agent: invalid config {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or config.logging.level, config.logging.format)
    # Imported here: the outbox and the device keys (28 ms) are the daemon's alone.
    from agent.trust.keys import DeviceKeyError

    from .uplink.outbox import OutboxError

    ctx = AgentContext(config=config, config_path=args.config)
    try:
        asyncio.run(run_agent(ctx))
    except (OutboxError, DeviceKeyError) as exc:  # what only the operator can fix: said, not traced
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
