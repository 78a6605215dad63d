"""`edgectl doctor`: one pass/fail line per thing a pole needs, with the fix for each failure."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from ..doctor_checks import TIME_TOPICS, DoctorOptions, Finding, run_checks
from ..errors import FAILED
from ._trust import add_trust_options, trust_from_args

CHECKS = ("model", "camera", "broker", "clock", "board", "disk")
DEFAULT_CONFIG = Path("/etc/edge-agent/config.toml")
LABELS = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "skip": "SKIP"}


def register(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check a gateway: config, models, cameras, broker, clock, boards, disk",
        description="Runs every check a commissioned pole must pass and prints one line per check, with the "
        "fix for each failure. Exit code 0 when nothing failed (warnings allowed), 1 otherwise.",
    )
    doctor.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help=f"gateway config (default {DEFAULT_CONFIG})"
    )
    doctor.add_argument(
        "--skip", action="append", choices=CHECKS, default=[], help="leave a check out (repeatable)"
    )
    doctor.add_argument("--timeout", type=float, default=10.0, help="seconds per network or device check")
    doctor.add_argument(
        "--max-skew", type=float, default=2.0, help="largest clock difference to the broker, s"
    )
    doctor.add_argument(
        "--time-topic",
        action="append",
        default=[],
        help="topic where the broker publishes its time (repeatable)",
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output, one object per finding")
    add_trust_options(doctor)
    doctor.set_defaults(func=cmd_doctor)


def _print(finding: Finding) -> None:
    print(f"{LABELS[finding.status]}  {finding.check:<7} {finding.subject}: {finding.detail}", flush=True)
    if finding.fix and finding.status in ("fail", "warn"):
        print(f"      fix: {finding.fix}", flush=True)


def cmd_doctor(args: argparse.Namespace) -> int:
    options = DoctorOptions(
        timeout_s=args.timeout,
        max_skew_s=args.max_skew,
        time_topics=tuple(args.time_topic) or TIME_TOPICS,
        skip=frozenset(args.skip),
        trust=trust_from_args(args),
    )
    findings = run_checks(args.config, options, (lambda f: None) if args.json else _print)
    failed = sum(f.status == "fail" for f in findings)
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        counts = {s: sum(f.status == s for f in findings) for s in LABELS}
        print(
            f"{counts['pass']} passed, {counts['fail']} failed, {counts['warn']} warning(s), {counts['skip']} skipped",
            file=sys.stdout,
        )
    return FAILED if failed else 0
