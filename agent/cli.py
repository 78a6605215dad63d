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
    return parser


def cmd_daemon(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"edge-agent: invalid config {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or config.logging.level, config.logging.format)
    ctx = AgentContext(config=config, config_path=args.config)
    asyncio.run(run_agent(ctx))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
