"""`edgectl demo`: the newcomer's first minute: the whole product on bundled data (tools/demo.py)."""

# Lazy import: tools.demo loads the agent, OpenCV and the vision stack (218 ms over `edgectl --help`'s
# 0.39 s), so it is imported in cmd_demo.

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import FAILED, OK

ROOT = Path(__file__).resolve().parents[2]


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the agent on the bundled clip and a simulated board, printing events as they arrive",
        description="Starts a broker, the simulated sensor board and the agent with the shipped models on "
        "the bundled street clip; prints every event an integrator would receive, then a summary, and "
        "writes an annotated clip of what the camera saw.",
    )
    demo.add_argument("--seconds", type=float, default=60.0, help="stop after this long (default 60)")
    demo.add_argument(
        "--out",
        type=Path,
        default=ROOT / "out" / "demo",
        help="where the annotated clip goes (default out/demo)",
    )
    demo.add_argument("--config", type=Path, help="demo gateway config (default demo/agent.toml)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from tools.demo import DEMO_CONFIG, run_demo

    result = run_demo(args.seconds, args.out, config_path=args.config or DEMO_CONFIG)
    return OK if result.summary.kinds and not result.problems else FAILED
