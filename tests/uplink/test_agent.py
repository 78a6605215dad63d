"""The whole agent process with the uplink part: telemetry, birth, last will on SIGKILL, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiomqtt
import msgpack
from uplink_support import consume

from agent.events import HEALTH
from tools.broker import Broker

ROOT = Path(__file__).resolve().parents[2]


def _start_agent(config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "-c", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _states(broker: Broker, device: str, out: list[dict]) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(f"city/{device}/state", qos=1)
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            out.append(msgpack.unpackb(message.payload))


async def _until(predicate, timeout: float = 30.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


def test_agent_reports_health_and_its_state_through_kill_and_clean_stop(
    mosquitto: Broker, tmp_path: Path
) -> None:
    device = "pole-agent"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[device]\nid = "{device}"\n[uplink]\nurl = "{mosquitto.url}"\nkeepalive_s = 5\n'
        f'telemetry_interval_s = 0.3\n[outbox]\npath = "{tmp_path / "outbox.sqlite"}"\n'
    )

    async def main() -> None:
        states: list[dict] = []
        watcher = asyncio.create_task(_states(mosquitto, device, states))
        async with consume(mosquitto, f"city/{device}/#") as consumer:
            agent = _start_agent(config)
            try:
                await _until(lambda: any(e.kind == HEALTH for e in consumer.events))
                await _until(lambda: bool(states) and states[-1]["online"] is True)
                health = next(e for e in consumer.events if e.kind == HEALTH).health
                assert health is not None
                for key in ("uptime_s", "cpu_pct", "mem_pct", "disk_pct", "outbox", "uplink"):
                    assert key in health, key
                assert {"depth", "oldest_age_s", "dropped"} <= set(health["outbox"])
                assert {"connected", "reconnects"} <= set(health["uplink"])
                assert any(str(m.topic) == f"city/{device}/telemetry" for m in consumer.raw)
                # Killed: no goodbye, so the broker publishes the retained last will.
                agent.send_signal(signal.SIGKILL)
                agent.wait(10)
                await _until(lambda: states[-1]["online"] is False)
                assert states[-1]["clean"] is False
                seqs_before = max(consumer.seqs())
                agent = _start_agent(config)
                await _until(lambda: states[-1]["online"] is True)
                await _until(lambda: max(consumer.seqs()) > seqs_before)
                agent.send_signal(signal.SIGTERM)
                assert agent.wait(20) == 0, agent.stderr.read() if agent.stderr else ""
                await _until(lambda: states[-1]["online"] is False)
                assert states[-1]["clean"] is True
            finally:
                if agent.poll() is None:
                    agent.kill()
                    agent.wait()
        watcher.cancel()

    asyncio.run(asyncio.wait_for(main(), 90))
