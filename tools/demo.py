"""The demo: the whole product on one machine, as a newcomer's first minute.

A broker (Mosquitto when installed, else the embedded amqtt one), the simulated sensor board running
the real firmware with a scenario, and the real agent (``agent.runtime.run_agent``, in this process)
with the bundled street clip and the shipped models. Events are printed as an integrator would see
them: subscribed on the broker and decoded from the wire. It stops by itself after ``seconds`` or on
Ctrl-C, prints a summary, and writes an annotated clip of what the camera saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiomqtt
import msgpack
import tomli_w

from agent.config import GatewayConfig, load_config, parse_config
from agent.events import EventFormatError, decode
from agent.logs import setup_logging
from agent.runtime import AgentContext, run_agent
from tools import embedded_broker
from tools.board_cli.board_setup import load_setup
from tools.broker import Broker as Mosquitto
from tools.broker import BrokerError

from .errors import EdgectlError
from .eventview import Summary, describe
from .preview import terminal_progress, write_preview

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "demo" / "agent.toml"
DEVICE = "demo-pole"
PREFIX = "city"


@dataclass
class DemoResult:
    summary: Summary = field(default_factory=Summary)
    annotated: list[Path] = field(default_factory=list)
    broker: str = ""
    board: str = ""
    problems: list[str] = field(default_factory=list)
    config_file: Path | None = None  # the gateway config the agent ran with, kept in the output folder


class Broker:
    """Mosquitto when it is installed, otherwise the embedded amqtt broker (MQTT 3.1.1 only)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._stop: Callable[[], None] = lambda: None
        self.url = ""
        self.protocol = "5"
        self.name = ""

    def start(self) -> None:
        try:
            mosquitto = Mosquitto(self.workdir / "broker")
            mosquitto.start()
        except BrokerError:
            embedded = embedded_broker.start()
            self.url, self.protocol, self.name = embedded.url, embedded.protocol, "embedded amqtt broker"
            self._stop = embedded.stop
            return
        self.url, self.name = mosquitto.url, "mosquitto"
        self._stop = mosquitto.stop

    def stop(self) -> None:
        self._stop()


def demo_config(
    workdir: Path,
    broker: Broker,
    board_port: str | None,
    path: Path = DEMO_CONFIG,
    skipped: list[str] | None = None,
) -> GatewayConfig:
    """The demo's gateway: the cameras of demo/agent.toml, our broker, a scratch outbox, the sim board.

    Cameras whose source is missing are left out and named in ``skipped``.
    """
    skipped = [] if skipped is None else skipped
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    data["device"] = {**data.get("device", {}), "id": DEVICE}
    data["uplink"] = {
        **data.get("uplink", {}),
        "url": broker.url,
        "protocol": broker.protocol,
        "topic_prefix": PREFIX,
    }
    data["outbox"] = {**data.get("outbox", {}), "path": str(workdir / "outbox.sqlite")}
    cameras = []
    for camera in data.get("cameras", []):
        source = Path(camera["source"])
        source = source if source.is_absolute() else ROOT / source
        if not source.exists():
            # the real-footage camera needs Debian's opencv-doc, which only root can install
            skipped.append(f"camera {camera.get('id')}: {source} is missing (apt-get install opencv-doc)")
            continue
        cameras.append(camera)
        camera["source"] = str(source)
        camera["models"] = [str(m if Path(m).is_absolute() else ROOT / m) for m in camera["models"]]
    data["cameras"] = cameras
    if board_port is not None:
        boards = data.get("boards") or [{"id": "pole-0042-b1"}]  # the sim board's provisioned id
        boards[0]["port"] = board_port
        data["boards"] = boards[:1]
    else:
        data.pop("boards", None)
    return parse_config(data, str(path))


async def watch(
    broker: Broker, result: DemoResult, out: TextIO, ready: asyncio.Event, stopping: asyncio.Event
) -> None:
    """Subscribe like an integrator's platform would and print every event as it arrives."""
    host, port = broker.url.removeprefix("mqtt://").rsplit(":", 1)
    version = aiomqtt.ProtocolVersion.V5 if broker.protocol == "5" else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(host, int(port), protocol=version, identifier="demo-viewer") as client:
        await client.subscribe(f"{PREFIX}/{DEVICE}/#", qos=1)
        ready.set()
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if "/evt/" in topic or topic.endswith("/telemetry"):
                try:
                    event = decode(payload)
                except EventFormatError as exc:
                    result.problems.append(f"{topic}: {exc}")
                    continue
                if result.summary.add(event):
                    out.write(describe(event) + "\n")
                    out.flush()
            elif topic.endswith("/state"):
                out.write(f"{time.strftime('%H:%M:%S')}        state   {_state(payload)}\n")
                out.flush()
            if stopping.is_set():
                return


def _state(payload: bytes) -> str:
    try:
        state = msgpack.unpackb(payload)
    except Exception:
        return f"{len(payload)} bytes"
    if isinstance(state, dict):
        return "online" if state.get("online") else "offline"
    return str(state)


async def _run(
    seconds: float, workdir: Path, out_dir: Path, out: TextIO, result: DemoResult, config_path: Path
) -> None:
    broker = Broker(workdir)
    broker.start()
    result.broker = f"{broker.name} at {broker.url}"
    board = start_board(workdir)
    result.board = board.describe() if board else "none (the firmware simulator is not installed)"
    try:
        skipped: list[str] = []
        config = demo_config(workdir, broker, board.port if board else None, config_path, skipped)
        for line in skipped:
            out.write(f"left out: {line}\n")
        result.config_file = out_dir / "gateway.toml"
        result.config_file.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
        out.write(
            f"broker: {result.broker}\nboard:  {result.board}\n"
            f"camera: {', '.join(c.source for c in config.cameras)}\n"
            f"agent:  device {DEVICE}, events on {PREFIX}/{DEVICE}/evt/#, for {seconds:.0f} s (Ctrl-C stops)\n\n"
        )
        out.flush()
        ctx = AgentContext(config=config)
        ready = asyncio.Event()
        viewer = asyncio.create_task(watch(broker, result, out, ready, ctx.stopping))
        await asyncio.wait_for(ready.wait(), 15)
        agent = asyncio.create_task(run_agent(ctx))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), seconds)
        ctx.stopping.set()
        await agent
        # Events the agent made in its last moments are in the outbox: give the viewer a moment.
        await asyncio.sleep(1.0)
        viewer.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await viewer
    finally:
        if board is not None:
            board.stop()
        broker.stop()


class DemoBoard:
    """The pole's simulated sensor board, playing the street scenario (a pollution episode, a noise
    spike, the manhole cover lifted, water rising) once a minute."""

    def __init__(self, workdir: Path) -> None:
        # Imported here: start_board runs the demo without a board where the simulator is not installed.
        from firmware.sim.board import SimulatedBoard
        from firmware.sim.scenarios import STREET_SETUP, ScenarioPlayer

        self.setup = load_setup(STREET_SETUP).document()
        self.board = SimulatedBoard(self.setup, port=workdir / "ttyBOARD")
        self.player = ScenarioPlayer(self.board.world, "street", loop=True, period_s=60)
        self.port = self.board.port

    def start(self) -> DemoBoard:
        self.board.start()
        self.player.start()
        return self

    def describe(self) -> str:
        sensors = ", ".join(s.get("id") or s["type"] for s in self.setup["sensors"])
        return f"simulated {self.setup['board_id']} on {self.port} ({sensors}, lamp)"

    def stop(self) -> None:
        self.player.stop()
        self.board.close()


def start_board(workdir: Path) -> DemoBoard | None:
    """A running simulated board, or None where the firmware simulator is not installed."""
    try:
        return DemoBoard(workdir).start()
    except ImportError:
        return None


def annotate_clips(config_path: Path, out_dir: Path, out: TextIO) -> list[Path]:
    """What each camera saw: its clip with boxes, track ids, zones and counts drawn (vision preview)."""
    config = load_config(config_path)
    written = []
    for i, camera in enumerate(config.cameras):
        target = out_dir / ("annotated.mp4" if i == 0 else f"annotated-{camera.id}.mp4")
        try:
            write_preview(
                camera,
                config.vision,
                target,
                seconds=None if i == 0 else 15.0,
                progress=terminal_progress(),
            )
        except EdgectlError as exc:
            out.write(f"annotated clip of {camera.id} not written: {exc}\n")
            continue
        written.append(target)
    return written


def run_demo(
    seconds: float, out_dir: Path, out: TextIO = sys.stdout, config_path: Path = DEMO_CONFIG
) -> DemoResult:
    """Run the demo and print what happens; returns what arrived."""
    setup_logging("WARNING", "text")
    logging.getLogger("amqtt").setLevel(logging.ERROR)
    result = DemoResult()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="street-edge-demo-") as tmp:
        try:
            asyncio.run(_run(seconds, Path(tmp), out_dir, out, result, config_path))
        except KeyboardInterrupt:
            out.write("\ninterrupted\n")
    out.write("\nwriting the annotated clip (what the camera saw, with boxes, tracks and zones) ...\n")
    out.flush()
    result.annotated = annotate_clips(result.config_file, out_dir, out) if result.config_file else []
    out.write("\nsummary: " + "\n".join(result.summary.lines()) + "\n")
    for clip in result.annotated:
        out.write(f"annotated clip: {clip}\n")
    for problem in result.problems:
        out.write(f"problem: {problem}\n")
    return result
