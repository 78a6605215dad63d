"""Issues that survive restarts, on the real agent: garbage open when the agent stops is the same issue
after it starts again (no second start; its end names the first start), as an integrator subscribed
to real Mosquitto sees it. Frames from the demo clip, street-issues, the uplink and vision parts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cv2
import pytest
from parts_support import running_parts
from uplink_support import consume

from agent.config import parse_config
from agent.events import END, START
from agent.runtime import AgentContext
from tools.broker import Broker

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "pole-is"
FPS = 4


def _frames(folder: Path, scenes: list[tuple[float, int]]) -> Path:
    """A camera's image folder: for each (second of the demo clip, count), that many copies of it."""
    folder.mkdir(parents=True)
    cap = cv2.VideoCapture(str(ROOT / "demo" / "clip" / "street.mp4"))
    n = 0
    for second, count in scenes:
        cap.set(cv2.CAP_PROP_POS_MSEC, second * 1000)
        ok, image = cap.read()
        assert ok, f"the demo clip has no frame at {second} s"
        for _ in range(count):
            cv2.imwrite(str(folder / f"{n:04d}.jpg"), image)
            n += 1
    cap.release()
    return folder


def _config(broker: Broker, tmp_path: Path, frames: Path) -> dict[str, Any]:
    return {
        "device": {"id": DEVICE},
        "uplink": {"url": broker.url, "reconnect_min_s": 0.05, "reconnect_max_s": 0.5},
        "outbox": {"path": str(tmp_path / "state" / "outbox.sqlite")},  # the same state across restarts
        "cameras": [{"id": "cam-1", "source": str(frames), "fps": FPS, "motion": {"enabled": False},
                     "models": [str(ROOT / "models" / "street-issues")],
                     "issues": {"garbage": {"min_dwell_s": 1, "end_after_s": 3}}}],
    }  # fmt: skip


def _garbage(events: list[Any], phase: str) -> list[Any]:
    return [e for e in events if e.kind == "issue" and e.label == "garbage" and e.phase == phase]


@pytest.mark.timeout(300)
def test_garbage_open_across_an_agent_restart_is_one_issue(mosquitto: Broker, tmp_path: Path) -> None:
    from agent.uplink import part as uplink
    from agent.vision import part as vision

    # 10 s of the street with garbage lying on the pavement (clip second 10) ...
    before = _frames(tmp_path / "before", [(10.0, 10 * FPS)])
    # ... and after the restart: still there for 3 s, then cleared (clip second 2, before it was dumped)
    after = _frames(tmp_path / "after", [(10.0, 3 * FPS), (2.0, 10 * FPS)])

    async def go() -> list[Any]:
        async with consume(mosquitto, f"city/{DEVICE}/evt/issue") as seen:
            ctx = AgentContext(config=parse_config(_config(mosquitto, tmp_path, before)))
            async with running_parts(ctx, [uplink, vision]):
                await seen.wait_for(lambda c: bool(_garbage(c.events, START)), timeout=60)
            assert not _garbage(seen.events, END), "the garbage was still there when the agent stopped"

            ctx = AgentContext(config=parse_config(_config(mosquitto, tmp_path, after)))
            async with running_parts(ctx, [uplink, vision]):
                await seen.wait_for(lambda c: bool(_garbage(c.events, END)), timeout=60)
                await asyncio.sleep(1.0)  # anything else the clearing frames cause
            return seen.events

    events = asyncio.run(go())
    (start,) = _garbage(events, START)
    (end,) = _garbage(events, END)
    assert end.ref == start.event_id, "the end after the restart names the start from before it"
    assert all(e.ref == start.event_id for e in events if e.label == "garbage" and e.phase != START)
