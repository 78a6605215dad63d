"""What every model build's command line shares: ``--out``, ``--data``, ``--smoke`` and ``--no-cache``,
where a run caches its data, and how a run ends on a data error (``build.py``, ``crowd_real.py``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from models.pipeline.data import DataError

CACHE = Path(__file__).resolve().parents[2] / "out" / "cache"


def add_build_options(
    parser: argparse.ArgumentParser, *, out: str, data: str, smoke: str, no_cache: str
) -> None:
    """The shared options, each with its help text for this build (``out``: where it writes)."""
    parser.add_argument("--out", type=Path, help=out)
    parser.add_argument("--data", type=Path, help=data)
    parser.add_argument("--smoke", action="store_true", help=smoke)
    parser.add_argument("--no-cache", action="store_true", help=no_cache)


def cache_folder(args: argparse.Namespace) -> Path | None:
    """Where a run keeps the data it made for the next one; none for smoke runs and --no-cache."""
    return None if args.no_cache or args.smoke else CACHE


def run_build(step: Callable[[], object]) -> int:
    """Run a build step: exit status 0, or 2 with one line when the user's data cannot be used."""
    try:
        step()
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
