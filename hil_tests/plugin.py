"""The HIL bench as pytest options and fixtures: what exists (board, broker, camera), and a summary
table of measured figures for QA's release record.

``--board sim`` (default) runs the real firmware on a simulated board behind a pseudo-terminal;
``--board /dev/ttyUSB0`` uses a dev board on that port, flashed by the suite. ``--broker URL`` uses a
broker already running; by default a Mosquitto is started for the session. ``--camera SOURCE`` picks
the clip or stream; by default the bundled street clip.
"""

from __future__ import annotations

import json
import re
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
        help="board setup of the bench board (default: firmware/sim/street-setup.toml for --target esp32, "
        "street-setup-rp2040.toml for rp2040)",
    )
    group.addoption(
        "--target",
        choices=sorted(TARGET_SETUPS),
        default=None,
        help="board family of the bench: its default --board-setup and the tests marked for it "
        "(default: the family the --board-setup names, else esp32)",
    )
    group.addoption(
        "--baud",
        type=int,
        default=115200,
        help="line rate of the board's serial port (the simulated board paces its bytes at it)",
    )
    group.addoption(
        "--operator",
        action="store_true",
        help="a person is at the bench: physical actions (unplugging) are prompted instead of skipped",
    )


# Markers in the conventions of pytest-embedded (a test names the targets it runs on) and labgrid
# (a test names the bench feature it needs); tests without them run everywhere.
MARKERS = {
    "sim": "needs the simulated board (its world, line or internals); skipped with --board PORT",
    "hardware": "needs a real board on --board PORT; skipped on the simulated board",
    "esp32": "runs only with --target esp32",
    "rp2040": "runs only with --target rp2040",
}
TARGET_SETUPS = {
    "esp32": ROOT / "firmware" / "sim" / "street-setup.toml",
    "rp2040": ROOT / "firmware" / "sim" / "street-setup-rp2040.toml",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    board = config.getoption("--board")
    if board != "sim" and config.getoption("numprocesses", None):  # pytest-xdist's -n
        raise pytest.UsageError(
            f"--board {board}: one real board cannot serve parallel workers; run without -n "
            "(`.venv/bin/pytest hil_tests --board PORT`, as docs/hil.md says)"
        )


def bench_target(config: pytest.Config) -> str:
    """The board family: --target, else the one the --board-setup file names, else esp32."""
    target = config.getoption("--target")
    setup = config.getoption("--board-setup")
    if target is None and setup:
        import tomllib

        try:
            target = str(tomllib.loads(Path(setup).read_text(encoding="utf-8")).get("board", "esp32"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise pytest.UsageError(f"--board-setup {setup}: cannot read it: {exc}") from None
    return target or "esp32"


def bench_setup_file(config: pytest.Config) -> Path:
    return Path(config.getoption("--board-setup") or TARGET_SETUPS[bench_target(config)])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_sim = config.getoption("--board") == "sim"
    target = bench_target(config)
    for item in items:
        if item.get_closest_marker("sim") and not on_sim:
            item.add_marker(pytest.mark.skip(reason="needs the simulated board (--board sim)"))
        if item.get_closest_marker("hardware") and on_sim:
            item.add_marker(pytest.mark.skip(reason="needs a real board (--board PORT)"))
        targets = [name for name in ("esp32", "rp2040") if item.get_closest_marker(name)]
        if targets and target not in targets:
            item.add_marker(pytest.mark.skip(reason=f"runs on {', '.join(targets)}, the bench is {target}"))


@dataclass
class Measurement:
    test: str
    outcome: str = "?"
    figures: dict[str, str] = field(default_factory=dict)


_RECORD: dict[str, Measurement] = {}
FIGURES_SECTION = "hil figures"  # a report section: "Captured hil figures teardown"


@pytest.fixture
def report(request: pytest.FixtureRequest, record_property):
    """``report(name, value, unit, note)`` records a measured figure: for the summary table as text, and
    as a number in JUnit XML, named with its unit (``sample_to_mqtt_median_ms``) so CI can trend it."""
    entry = _RECORD.setdefault(request.node.nodeid, Measurement(request.node.nodeid))

    def _report(name: str, value: float, unit: str = "", note: str = "") -> None:
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        entry.figures[name] = " ".join(part for part in (shown, unit, note) if part)
        record_property(junit_name(name, unit), value)  # per test case: junit_family xunit1

    yield _report
    # the text rides on the teardown report too, so the summary has it when an xdist worker ran the test
    if entry.figures:
        request.node.add_report_section("teardown", FIGURES_SECTION, json.dumps(entry.figures))


def junit_name(name: str, unit: str = "") -> str:
    """A property name CI tools can trend: lower case, words joined by _, the unit last."""
    words = re.sub(r"[^a-z0-9]+", "_", name.lower().replace("->", " to ")).strip("_")
    return f"{words}_{unit}" if unit else words


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for title, content in report.sections:
        if title == f"Captured {FIGURES_SECTION} teardown":
            _RECORD.setdefault(report.nodeid, Measurement(report.nodeid)).figures = json.loads(content)
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        entry = _RECORD.setdefault(report.nodeid, Measurement(report.nodeid))
        # As pytest words it: a failure while setting up the bench is an error, not a failed test.
        entry.outcome = "error" if report.when == "setup" and report.failed else report.outcome


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


@pytest.fixture(scope="session")
def bench_port(request: pytest.FixtureRequest) -> str | None:
    """A real board's port, checked and flashed with this checkout's firmware once per session; None on
    the simulator. A port that is missing or answers nothing ends the session with one error that
    names the port and the cause, instead of a failure per test."""
    import os
    import subprocess

    from firmware.streetfw import VERSION

    port = request.config.getoption("--board")
    if port == "sim":
        return None
    if not os.path.exists(port):
        pytest.exit(
            f"--board {port}: no such serial port; plug the board in (a data cable) and find its port "
            "with `edgectl board list`, or run on the simulated board with --board sim",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    baud = str(request.config.getoption("--baud"))
    # This checkout's firmware, even over a newer one a previous run left (the flash test bumps it).
    flash = ["board", "flash", str(ROOT / "firmware"), "--version", VERSION, "--port", port, "--baud", baud]
    done = subprocess.run(
        [sys.executable, "-m", "tools.edgectl", *flash, "--quiet", "--allow-downgrade"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1].removeprefix("edgectl: ")
        pytest.exit(f"--board {port}: flashing the bench board failed: {why}", returncode=done.returncode)
    return port


@pytest.fixture(scope="session")
def bench_setup(request: pytest.FixtureRequest) -> tuple[Path, dict]:
    """The board setup of the bench (file, document), checked once: a bad file or one for another board
    family than --target ends the session with the reason."""
    from tools.board_cli.board_setup import SetupError, load_setup

    setup_file = bench_setup_file(request.config)
    target = bench_target(request.config)
    try:
        loaded = load_setup(setup_file)
    except SetupError as exc:
        pytest.exit(f"--board-setup: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    if loaded.board != target:
        pytest.exit(
            f"--board-setup {setup_file} is for {loaded.board} boards, the bench is --target {target}",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    return setup_file, loaded.document()


@pytest.fixture
def board(
    request: pytest.FixtureRequest, bench_setup: tuple[Path, dict], bench_port: str | None, tmp_path: Path
):
    """The bench's sensor board (see hil_tests.bench.BenchBoard); ``--board sim`` runs our firmware on a
    simulated board; ``--board PORT`` is the dev board on that port, flashed once per session and
    provisioned with the bench setup before each test."""
    import subprocess

    from hil_tests.bench import BenchBoard

    setup_file, setup = bench_setup
    baud = int(request.config.getoption("--baud"))
    if bench_port is None:
        from firmware.sim.board import SimulatedBoard

        ber = float(request.config.getoption("--sim-ber"))
        sim = SimulatedBoard(
            setup, port=tmp_path / "ttyBOARD", baud=baud, ber=ber, seed=5, flash=tmp_path / "flash"
        ).start()
        bench = BenchBoard(sim.port, setup, sim=sim, baud=baud)
    else:
        provision = ["board", "provision", str(setup_file), "--port", bench_port, "--baud", str(baud)]
        done = subprocess.run(
            [sys.executable, "-m", "tools.edgectl", *provision], capture_output=True, text=True, cwd=ROOT
        )
        assert done.returncode == 0, f"provisioning {bench_port} failed: {done.stderr.strip()}"
        bench = BenchBoard(bench_port, setup, operator=interactive(request.config), baud=baud)
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
