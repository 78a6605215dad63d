"""A model's probation across agent restarts, on the real daemon (`python -m agent`) killed for real:
a clean stop and one kill (a pole's power cut) keep the new model and its probation goes on; a
second kill within the probation (a model that crashes the agent does it again at once) brings the
previous model back at the next start, with a model_rollback alarm."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from test_model_update import DEVICE, ENV, ROOT, _config, _fleet, _package
from uplink_support import consume

from agent.trust.keys import new_key
from tools.broker import Broker


def _status(broker: Broker, operator: Path) -> dict[str, Any] | None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.edgectl", "cmd", "send", DEVICE, "model-status", "--url", broker.url,
         "--key", str(operator), "--wait", "3"],
        capture_output=True, text=True, env=ENV, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        return None
    return json.loads(done.stdout)["result"]


class Daemon:
    """edge-agent on a config file, started and stopped as systemd would (or as a crash does)."""

    def __init__(self, config: Path, broker: Broker, operator: Path) -> None:
        self.config, self.broker, self.operator = config, broker, operator
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> list[list[str]]:
        """Start it; the models its camera runs, once it answers commands."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "-c", str(self.config)],
            env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the agent exited"
            status = _status(self.broker, self.operator)
            if status is not None and status.get("cameras"):
                return status["cameras"]["cam-1"]
            time.sleep(0.5)
        raise AssertionError("the agent did not answer within 90 s")

    def stop(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(30)
        if sig == signal.SIGTERM:
            assert self.proc.returncode == 0, "a clean stop"


def _probation(state: Path) -> dict[str, Any]:
    record = json.loads((state / "vision" / "models" / "models.json").read_text())
    return record["cam-1"].get("probation", {})


@pytest.mark.timeout(600)
def test_probation_survives_a_clean_stop_and_a_power_cut_and_rolls_back_a_crash_loop(
    mosquitto: Broker, tmp_path: Path
) -> None:
    signer = tmp_path / "model-signer.pem"
    good = _package(tmp_path / "pkg", signer, "2.0.1")
    private, public = new_key()
    operator = tmp_path / "operator.key"
    operator.write_text(private + "\n")
    data = _config(mosquitto, tmp_path, public, signer, probation_s=300)
    config = tmp_path / "gateway.toml"
    config.write_text(tomli_w.dumps(data))
    state = tmp_path / "state"
    agent = Daemon(config, mosquitto, operator)

    async def go() -> list[Any]:
        async with consume(mosquitto, f"city/{DEVICE}/evt/alarm") as alarms:
            assert await asyncio.to_thread(agent.start) == [["street-issues", "2.0.0"]]
            done = await asyncio.to_thread(_fleet, mosquitto, operator, good)
            assert done.returncode == 0, done.stdout + done.stderr
            assert _probation(state)["open"] is True

            await asyncio.to_thread(agent.stop, signal.SIGTERM)
            closed = _probation(state)
            assert closed["open"] is False and closed["unclean"] == 0 and 0 < closed["left_s"] <= 300
            assert await asyncio.to_thread(agent.start) == [["street-issues", "2.0.1"]], "a clean restart"

            await asyncio.to_thread(agent.stop, signal.SIGKILL)  # the power is cut
            assert await asyncio.to_thread(agent.start) == [["street-issues", "2.0.1"]], (
                "one kill is no crash"
            )
            assert _probation(state)["unclean"] == 1

            await asyncio.to_thread(agent.stop, signal.SIGKILL)  # and again, still on probation
            assert await asyncio.to_thread(agent.start) == [["street-issues", "2.0.0"]], "back to the old"
            assert _probation(state) == {}, "the probation is over"
            await alarms.wait_for(lambda c: any(e.label == "model_rollback" for e in c.events), timeout=30)
            await asyncio.to_thread(agent.stop, signal.SIGTERM)
            return [e for e in alarms.events if e.label == "model_rollback"]

    try:
        (alarm,) = asyncio.run(go())
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.proc.kill()
    assert alarm.camera == "cam-1" and alarm.values == {"unclean_exits": 2.0}
    assert (
        "2 times without closing" in alarm.extra["why"]
        and "back to street-issues 2.0.0" in alarm.extra["why"]
    )
