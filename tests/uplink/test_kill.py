"""The agent killed with SIGKILL at random moments: nothing acknowledged is lost, no seq repeats."""

from __future__ import annotations

import itertools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent.events import decode

WRITER = Path(__file__).with_name("outbox_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def _run_and_kill(outbox: Path, after_s: float) -> list[int]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(outbox)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    acked: list[int] = []
    first = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.endswith(b"\n"):  # a line cut by the kill was not acknowledged
                acked.append(int(line))
                first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert first.wait(30), (
        f"the writer never acknowledged an event: {proc.stderr.read() if proc.stderr else ''}"
    )
    time.sleep(after_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    reader.join(10)
    return acked


def test_sigkill_at_random_moments_loses_nothing_acknowledged(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite"
    rng = random.Random(7)
    runs = [_run_and_kill(outbox, rng.uniform(0.05, 0.6)) for _ in range(6)]
    db = sqlite3.connect(outbox)
    try:
        stored = {seq: decode(payload) for seq, payload in db.execute("SELECT seq, payload FROM events")}
    finally:
        db.close()
    everything = [seq for run in runs for seq in run]
    assert all(runs), "every run acknowledged something"
    assert len(everything) == len(set(everything)), "a sequence number was handed out twice"
    for earlier, later in itertools.pairwise(runs):
        assert min(later) > max(earlier), "a restarted agent must continue above every earlier seq"
    missing = set(everything) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    assert all(stored[s].seq == s and stored[s].device == "pole-kill" for s in everything)
