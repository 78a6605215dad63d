"""`edgectl`: field technicians, integrators and QA.

Each module in ``tools/commands/`` adds one command group through ``register(subparsers)``; adding a
group is one new module and no edit here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback

from agent import __version__
from agent.redact import redact_text

from . import commands
from .errors import INTERNAL, INTERRUPTED, USAGE, EdgectlError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgectl",
        description="Commission, check and watch smart-pole gateways, boards, models and events.",
    )
    parser.add_argument("--version", action="version", version=f"edgectl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return USAGE
    try:
        return int(func(args) or 0)
    except EdgectlError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"edgectl: {redact_text(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("edgectl: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # a bug, not a user error: one line unless asked for the traceback
        if args.verbose:
            traceback.print_exc()
            return INTERNAL
        print(
            f"edgectl: internal error ({type(exc).__name__}: {exc}); rerun with --verbose and report the "
            "traceback",
            file=sys.stderr,
        )
        return INTERNAL


if __name__ == "__main__":
    sys.exit(main())
