"""`edgectl config`: write an example gateway config, check a config file."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

from agent.config import ConfigError, file_problems, load_config
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
    check = cmds.add_parser(
        "check",
        help="validate a config file; exit 0 when it is valid",
        description="Checks every key, then that the files it names exist (passwords, TLS files, models, "
        "video files). Relative paths are taken from the config file's folder. Exit 0: valid; 1: not.",
    )
    check.add_argument("path", type=Path)
    check.add_argument("--json", action="store_true", help="the result as JSON")
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
    problems: list[tuple[str, str]]
    try:
        config = load_config(args.path)
        problems = file_problems(config)
    except ConfigError as exc:
        config, problems = None, exc.problems
    missing = problems == [("(file)", "no such file")]
    if args.json:
        out = {
            "path": str(args.path.resolve()),
            "valid": not problems,
            "problems": [{"key": k, "problem": redact_text(m)} for k, m in problems],
        }
        if config is not None and not problems:
            out |= {"device": config.device.id, "cameras": len(config.cameras), "boards": len(config.boards)}
        print(json.dumps(out, indent=2))
        return FAILED if problems else 0
    if missing:
        print(
            f"{args.path.resolve()}: not found; write one with `edgectl config init {args.path}`",
            file=sys.stderr,
        )
        return FAILED
    if problems:
        print(f"{args.path}: invalid", file=sys.stderr)
        for path, message in problems:
            print(f"  {path}: {redact_text(message)}", file=sys.stderr)
        return FAILED
    assert config is not None
    print(
        f"{args.path}: valid (device {config.device.id}, {len(config.cameras)} camera(s), "
        f"{len(config.boards)} board(s), uplink {redact_url(config.uplink.url)})"
    )
    return 0
