"""The vision part in the agent, and `edge-agent run`: real models, real video files."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import moving_square_frames, write_video
from synthetic_models import yolov8_rows

from agent.config import parse_config
from agent.events import ISSUE, START, decode, encode
from agent.runtime import AgentContext
from agent.sink import MemorySink
from agent.vision import part

CLASSES = ["person", "street_stall", "garbage"]
STALL = yolov8_rows([(40, 30, 56, 60)], [[0.0, 0.9, 0.0]])
FAST_STALL = {"street_stall": {"min_dwell_s": 1.0, "k": 2, "n": 3}}
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_a_refused_model_disables_only_its_camera(make_model, tmp_path: Path) -> None:
    good = make_model(STALL, adapter="yolov8", classes=CLASSES)
    bad = make_model(STALL, adapter="yolov8", classes=CLASSES)
    (bad / "model.onnx").write_bytes((bad / "model.onnx").read_bytes() + b"tampered")
    clip = write_video(tmp_path / "clip.avi", moving_square_frames(200), fps=40.0)
    camera = {"source": str(clip), "fps": 10, "issues": FAST_STALL, "motion": {"enabled": False}}
    config = parse_config(
        {
            "device": {"id": "pole-1"},
            "vision": {"intra_op_threads": 1, "warmup_runs": 1},
            "cameras": [
                {"id": "cam-bad", "models": [str(bad)], **camera},
                {"id": "cam-good", "models": [str(good)], **camera},
            ],
        }
    )
    sink = MemorySink("pole-1")

    async def scenario() -> dict:
        ctx = AgentContext(config=config, sink=sink)
        await part.setup(ctx)
        task = asyncio.create_task(part.run(ctx))
        for _ in range(600):
            if sink.events:
                break
            await asyncio.sleep(0.1)
        health = ctx.health.snapshot()
        ctx.stopping.set()
        await asyncio.wait_for(task, 30)
        await part.close(ctx)
        return health

    health = asyncio.run(scenario())
    starts = [e for e in sink.events if e.kind == ISSUE and e.phase == START]
    assert [e.camera for e in starts] == ["cam-good"]
    assert decode(encode(starts[0])).label == "street_stall"
    cams = health["vision"]["cameras"]
    assert cams["cam-bad"]["state"] == "disabled"
    assert "does not match the manifest" in cams["cam-bad"]["reason"]
    assert cams["cam-good"]["state"] == "running" and cams["cam-good"]["read"] > 0
    assert health["vision"]["models"]["synthetic"]["runs"] > 0


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_edge_agent_run_prints_events_as_json_lines(make_model, tmp_path: Path) -> None:
    model = make_model(STALL, adapter="yolov8", classes=CLASSES)
    clip = write_video(tmp_path / "clip.avi", moving_square_frames(300), fps=10.0)  # 30 s
    zones = tmp_path / "zones.toml"
    zones.write_text(
        "[[zones]]\nid = 'pavement'\npolygon = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]\n"
        "[issues.street_stall]\nmin_dwell_s = 10\n"
    )
    done = run_cli("--source", str(clip), "--model", str(model), "--zones", str(zones), "--print")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(events) == 1
    e = events[0]
    assert (e["k"], e["ph"], e["c"], e["z"], e["s"], e["m"][0]) == (
        "issue",
        "start",
        "street_stall",
        "pavement",
        1,
        "synthetic",
    )
    assert "60 frames" in done.stderr


def test_edge_agent_run_refuses_a_bad_model_clearly(make_model, tmp_path: Path) -> None:
    model = make_model(np.zeros((1, 8, 10), np.float32), adapter="yolov8", classes=CLASSES)
    clip = write_video(tmp_path / "clip.avi", moving_square_frames(5), fps=10.0)
    done = run_cli("--source", str(clip), "--model", str(model))
    assert done.returncode == 6
    assert "outputs do not fit adapter 'yolov8'" in done.stderr
    done = run_cli("--source", str(tmp_path / "nope.mp4"), "--model", str(model))
    assert done.returncode == 2 and "no such file or folder" in done.stderr
