"""The HIL bench as pytest options and fixtures: what exists (board, broker, camera), and a summary
table of measured figures for QA's release record.

``--board sim`` (default) runs the real firmware on a simulated board behind a pseudo-terminal;
``--board /dev/ttyUSB0`` uses a dev board on that port, flashed by the suite. ``--broker URL`` uses a
broker already running; by default a Mosquitto is started for the session. ``--camera SOURCE`` picks
the clip or stream; by default the bundled street clip.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = ROOT / "demo" / "clip" / "street.mp4"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "hardware-in-the-loop bench")
    group.addoption("--board", default="sim", help="'sim' (default) or the serial port of a dev board")
    group.addoption("--broker", default=None, help="MQTT URL of a running broker (default: start Mosquitto)")
    group.addoption(
        "--camera", default=None, help=f"camera source (default: {DEFAULT_CLIP.relative_to(ROOT)})"
    )
    group.addoption(
        "--sim-ber",
        default="1e-4",
        help="bit-error rate on the simulated board's line, as in a noisy street cabinet (default 1e-4)",
    )
    group.addoption(
        "--board-setup",
        default=None,
        help="board setup to provision on a real board (default: firmware/sim/street-setup.toml, ESP32 pins)",
    )
    group.addoption(
        "--operator",
        action="store_true",
        help="a person is at the bench: physical actions (unplugging) are prompted instead of skipped",
    )


@dataclass
class Measurement:
    test: str
    outcome: str = "?"
    figures: dict[str, str] = field(default_factory=dict)


_RECORD: dict[str, Measurement] = {}


@pytest.fixture
def report(request: pytest.FixtureRequest, record_property):
    """``report(name, value, unit)`` records a measured figure for the summary table and JUnit XML."""
    entry = _RECORD.setdefault(request.node.nodeid, Measurement(request.node.nodeid))

    def _report(name: str, value: float, unit: str = "") -> None:
        text = f"{value:.1f} {unit}".strip() if isinstance(value, float) else f"{value} {unit}".strip()
        entry.figures[name] = text
        record_property(name, text)

    return _report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        entry = _RECORD.setdefault(report.nodeid, Measurement(report.nodeid))
        entry.outcome = report.outcome


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    rows = [m for m in _RECORD.values() if m.test.startswith("hil_tests/")]
    if not rows:
        return
    board = config.getoption("--board")
    tr = terminalreporter
    tr.section(f"HIL summary (board: {board})")
    width = max(len(m.test.removeprefix("hil_tests/")) for m in rows)
    tr.write_line(f"{'test':<{width}}  {'result':<8}  measured")
    for m in rows:
        figures = ", ".join(f"{k} {v}" for k, v in m.figures.items()) or "-"
        tr.write_line(f"{m.test.removeprefix('hil_tests/'):<{width}}  {m.outcome:<8}  {figures}")


def interactive(config: pytest.Config) -> bool:
    return bool(config.getoption("--operator")) and sys.stdin.isatty()


# --- fixtures: the bench's parts ---


@pytest.fixture(scope="session")
def bench_broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The broker of the run: ``--broker URL``, or a Mosquitto of our own that tests may restart."""
    from hil_tests.bench import BrokerHandle

    url = request.config.getoption("--broker")
    if url:
        yield BrokerHandle(url)
        return
    from tools.broker import Broker

    # Persistent, as a city platform's broker is: a subscriber's session and its queued QoS 1 messages
    # survive the restarts the tests make, so what the listener sees does not depend on whether it or
    # the agent reconnects first.
    broker = Broker(tmp_path_factory.mktemp("hil-broker"), persistent=True)
    broker.start()

    def restart() -> None:
        broker.stop()
        broker.start()

    yield BrokerHandle(broker.url, restart=restart, stop=broker.stop, start=broker.start)
    broker.stop()


@pytest.fixture
def camera_source(request: pytest.FixtureRequest) -> str:
    """``clip`` for the bundled clip (whose issues are known), else the ``--camera`` source."""
    return request.config.getoption("--camera") or "clip"


@pytest.fixture
def listen(bench_broker):
    """``listen(device)`` subscribes to a device's topics the way a city platform does."""
    from hil_tests.bench import Listener

    started = []

    def _listen(device: str):
        listener = Listener(bench_broker, device).start()
        started.append(listener)
        return listener

    yield _listen
    for listener in started:
        listener.stop()


@pytest.fixture
def board(request: pytest.FixtureRequest, tmp_path: Path):
    """The bench's sensor board (see hil_tests.bench.BenchBoard); ``--board sim`` runs our firmware on a
    simulated board; ``--board PORT`` flashes and provisions the dev board on that port first."""
    from firmware.sim.scenarios import STREET_SETUP
    from hil_tests.bench import BenchBoard
    from tools.board_cli.board_setup import load_setup

    setup_file = Path(request.config.getoption("--board-setup") or STREET_SETUP)
    setup = load_setup(setup_file).document()
    choice = request.config.getoption("--board")
    ber = float(request.config.getoption("--sim-ber"))
    if choice == "sim":
        from firmware.sim.board import SimulatedBoard

        sim = SimulatedBoard(
            setup, port=tmp_path / "ttyBOARD", ber=ber, seed=5, flash=tmp_path / "flash"
        ).start()
        bench = BenchBoard(sim.port, setup, sim=sim)
    else:
        from firmware.streetfw import VERSION
        from tools.edgectl import main as edgectl

        fw = str(ROOT / "firmware")
        # This checkout's firmware, even over a newer one a previous run left (the flash test bumps it).
        flash = ["board", "flash", fw, "--version", VERSION, "--port", choice, "--quiet", "--allow-downgrade"]
        assert edgectl(flash) == 0
        assert edgectl(["board", "provision", str(setup_file), "--port", choice]) == 0
        bench = BenchBoard(choice, setup, operator=interactive(request.config))
    yield bench
    bench.close()


@pytest.fixture
def agents(tmp_path: Path):
    """``agents(config)`` starts an ``edge-agent`` process; every one still running is stopped after."""
    from hil_tests.bench import AgentProcess

    started = []

    def _start(config: dict, name: str = "agent"):
        workdir = tmp_path / name
        workdir.mkdir(exist_ok=True)
        agent = AgentProcess(config, workdir).start()
        started.append(agent)
        return agent

    yield _start
    for agent in started:
        agent.stop()
