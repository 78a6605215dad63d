"""The bench's moving parts as objects the tests drive: the broker, an MQTT listener standing in for
the city platform, and the agent as the daemon it is in the field (``edge-agent --config FILE`` in
its own process, so that restarts and SIGKILL are real)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgpack
import paho.mqtt.client as mqtt
import tomli_w
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.events import Event, EventFormatError, decode

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "demo" / "agent.toml"
PREFIX = "hil"


@dataclass
class BrokerHandle:
    """The session's broker: ours (restartable) or one given with ``--broker`` (not ours to restart)."""

    url: str
    restart: Callable[[], None] | None = None
    stop: Callable[[], None] | None = None
    start: Callable[[], None] | None = None

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 1883


@dataclass
class Arrival:
    event: Event
    topic: str
    at_ms: int  # when the listener got it, by this machine's clock


@dataclass
class Listener:
    """Subscribed to everything of one device, like an integrator's platform; decodes every event."""

    broker: BrokerHandle
    device: str
    arrivals: list[Arrival] = field(default_factory=list)
    replies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: mqtt.Client | None = None

    def start(self) -> Listener:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"hil-listener-{os.getpid()}-{self.device}-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        subscribed = threading.Event()

        def on_connect(c, userdata, flags, reason, properties) -> None:
            c.subscribe(f"{PREFIX}/{self.device}/#", qos=1)

        def on_subscribe(c, userdata, mid, reasons, properties) -> None:
            subscribed.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = self._on_message
        host, port = self.broker.host_port
        client.reconnect_delay_set(0.2, 2)
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = 600  # messages published while it reconnects are kept for it
        client.connect(host, port, keepalive=15, clean_start=False, properties=session)
        client.loop_start()
        if not subscribed.wait(15):
            raise RuntimeError(f"the HIL listener could not subscribe on {self.broker.url}")
        self._client = client
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()

    def _on_message(self, client, userdata, message) -> None:
        topic = message.topic
        now = time.time_ns() // 1_000_000
        if "/evt/" in topic or topic.endswith("/telemetry"):
            try:
                event = decode(message.payload)
            except EventFormatError as exc:
                with self._lock:
                    self.problems.append(f"{topic}: {exc}")
                return
            with self._lock:
                if message.dup and any(a.event.event_id == event.event_id for a in self.arrivals):
                    return  # the broker's own redelivery of a message it already gave us
                self.arrivals.append(Arrival(event, topic, now))
        elif "/cmd/" in topic and "/reply" in topic:
            try:
                body = msgpack.unpackb(message.payload)
            except Exception:  # recorded as a reply that did not decode; the listener keeps going
                body = {"undecodable": message.payload.hex()}
            with self._lock:
                self.replies.append((topic, body))

    def publish(self, topic: str, payload: bytes, qos: int = 1, properties: Any = None) -> None:
        assert self._client is not None
        self._client.publish(topic, payload, qos=qos, properties=properties).wait_for_publish(10)

    def events(self, kind: str | None = None, **match: Any) -> list[Event]:
        with self._lock:
            found = [a.event for a in self.arrivals]
        return [
            e
            for e in found
            if (kind is None or e.kind == kind) and all(getattr(e, k) == v for k, v in match.items())
        ]

    def wait_for(self, predicate: Callable[[Listener], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def gateway_config(
    device: str,
    broker: BrokerHandle,
    workdir: Path,
    camera: str | None = None,
    board_port: str | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """A gateway config for the bench: demo/agent.toml's camera rules, our broker, a scratch outbox."""
    data: dict[str, Any] = tomllib.loads(DEMO_CONFIG.read_text(encoding="utf-8"))
    data["device"] = {"id": device}
    data["uplink"] = {
        **data.get("uplink", {}),
        "url": broker.url,
        "topic_prefix": PREFIX,
        "telemetry_interval_s": 3600,
    }
    data["outbox"] = {"path": str(workdir / "outbox.sqlite")}
    cameras = data.get("cameras", [])
    if camera is None:
        data.pop("cameras", None)
    else:
        for cam in cameras:
            cam["source"] = camera if camera != "clip" else str(ROOT / cam["source"])
            cam["models"] = [str(ROOT / m) for m in cam["models"]]
        data["cameras"] = cameras[:1]
    if board_port is None:
        data.pop("boards", None)
    else:
        board = (data.get("boards") or [{"id": "board-1"}])[0]
        data["boards"] = [{**board, "port": board_port}]
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return data


class AgentProcess:
    """``edge-agent --config FILE`` in its own process; its log goes to ``workdir/agent.log``."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.workdir = workdir
        self.path = workdir / "gateway.toml"
        self.path.write_text(tomli_w.dumps(config), encoding="utf-8")
        self.log = workdir / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "--config", str(self.path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class BenchBoard:
    """The board on the bench: the simulated one (its world and cable under the test's control), or a
    dev board on a serial port, flashed with our firmware and provisioned by the suite, where the
    physical actions are asked of the operator (or the test is skipped without one)."""

    def __init__(
        self, port: str, setup: dict[str, Any], sim: Any = None, operator: bool = False, baud: int = 115200
    ) -> None:
        self.port = port
        self.baud = baud
        self.setup = setup
        self.board_id = setup["board_id"]
        self.sim = sim
        self.operator = operator

    @property
    def simulated(self) -> bool:
        return self.sim is not None

    def _ask(self, action: str) -> None:
        import pytest

        if not self.operator:
            pytest.skip(f"a real board needs an operator to {action} (run with --operator)")
        input(f"\n>>> {action}, then press Enter ")

    def world(self, **quantities: float) -> None:
        """Make the sensors see these quantities (tilt_deg=35, ...): the scenario on the simulated board,
        the operator on a real one."""
        if self.sim is not None:
            for name, value in quantities.items():
                setattr(self.sim.world, name, value)
        else:
            self._ask("make the sensors see " + ", ".join(f"{k} = {v}" for k, v in quantities.items()))

    def unplug(self) -> None:
        if self.sim is not None:
            self.sim.unplug()
        else:
            self._ask("pull the board's USB cable")

    def replug(self) -> None:
        if self.sim is not None:
            self.sim.plug()
        else:
            self._ask("plug the board's USB cable back in")

    def lamp_duty(self) -> int | None:
        """The lamp's PWM duty as the simulated board drives it; None on a real board (look at the lamp)."""
        if self.sim is None:
            return None
        pwm = self.sim.hal.pwms.get(self.setup["lamp"]["pin"])
        return None if pwm is None else pwm.duty

    def close(self) -> None:
        if self.sim is not None:
            self.sim.close()


def board_section(board: BenchBoard) -> dict[str, Any]:
    return {"id": board.board_id, "port": board.port, "baud": board.baud, "time_sync_interval_s": 30}
