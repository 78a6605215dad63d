"""`edgectl config`: write an example gateway config, check a config file."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from agent.config import ConfigError, load_config
from agent.redact import redact_text, redact_url

from ..errors import FAILED, USAGE, EdgectlError


def example_config() -> str:
    return resources.files("agent.config").joinpath("example.toml").read_text(encoding="utf-8")


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("config", help="write and check gateway config files")
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    init = cmds.add_parser("init", help="write a commented example config")
    init.add_argument("path", nargs="?", type=Path, help="file to write (default: standard output)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=cmd_init)
    check = cmds.add_parser("check", help="validate a config file; exit 0 when it is valid")
    check.add_argument("path", type=Path)
    check.set_defaults(func=cmd_check)


def cmd_init(args: argparse.Namespace) -> int:
    text = example_config()
    if args.path is None:
        sys.stdout.write(text)
        return 0
    if args.path.exists() and not args.force:
        raise EdgectlError(f"{args.path} exists; pass --force to overwrite it", USAGE)
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}; edit it, then run: edgectl config check {args.path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        print(f"{exc.source}: invalid", file=sys.stderr)
        for path, message in exc.problems:
            print(f"  {path}: {redact_text(message)}", file=sys.stderr)
        return FAILED
    print(
        f"{args.path}: valid (device {config.device.id}, {len(config.cameras)} camera(s), "
        f"{len(config.boards)} board(s), uplink {redact_url(config.uplink.url)})"
    )
    return 0
