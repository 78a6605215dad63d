"""Board firmware over the air: a signed bundle sent to the gateway over MQTT (cut and resumed) and
installed on its board through the serial protocol, with flash's guarantees. The real agent (uplink
and boards parts), the simulated board (our firmware on a pseudo-terminal), real Mosquitto and the
real `edgectl fleet firmware`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from parts_support import running_parts

from agent.boards.session import BoardSession
from agent.config import parse_config
from agent.runtime import AgentContext
from firmware.sim.board import SimulatedBoard
from firmware.sim.scenarios import STREET_SETUP
from tools.board_cli.board_setup import load_setup
from tools.broker import Broker
from tools.edgectl import main as edgectl

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
DEVICE = "pole-ota"


def _key(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert edgectl(["keys", "new", str(path)]) == 0
    return capsys.readouterr().out.strip()


@dataclass(frozen=True)
class Keys:
    """The bench's keys: the firmware signer the gateway trusts, a stranger, and the operator."""

    signer: Path
    stranger: Path
    operator: Path
    signer_public: str
    operator_public: str


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Keys:
    signer, stranger, operator = (
        tmp_path / "fw-signer.pem",
        tmp_path / "stranger.pem",
        tmp_path / "operator.pem",
    )
    signer_public = _key(signer, capsys)
    _key(stranger, capsys)
    return Keys(signer, stranger, operator, signer_public, _key(operator, capsys))


@pytest.fixture
def board(tmp_path: Path) -> Iterator[SimulatedBoard]:
    """Our firmware 1.0.0 on a simulated board, its flash in ``tmp_path/flash``."""
    with SimulatedBoard(load_setup(STREET_SETUP).document(), flash=tmp_path / "flash") as simulated:
        yield simulated


def _config(
    broker: Broker, tmp_path: Path, keys: Keys, board: SimulatedBoard, **updates: Any
) -> dict[str, Any]:
    """A gateway with the uplink and that one board, trusting the bench's signer and operator."""
    return {
        "device": {"id": DEVICE},
        "uplink": {"url": broker.url, "reconnect_min_s": 0.05, "reconnect_max_s": 0.5,
                   "commands": {"trusted_keys": [keys.operator_public]}},
        "outbox": {"path": str(tmp_path / "state" / "outbox.sqlite")},
        "updates": {"firmware_signers": [keys.signer_public], **updates},
        "boards": [{"id": board.setup["board_id"], "port": board.port}],
    }  # fmt: skip


def _bundle(tmp_path: Path, version: str, key: Path) -> Path:
    out = tmp_path / f"bundle-{version}-{key.stem}"
    code = edgectl(
        [
            "firmware",
            "build",
            str(ROOT / "firmware"),
            "--version",
            version,
            "--out",
            str(out),
            "--key",
            str(key),
        ]
    )
    assert code == 0
    return out


@contextlib.asynccontextmanager
async def _agent(data: dict[str, Any]) -> AsyncIterator[AgentContext]:
    from agent.boards import part as boards
    from agent.uplink import part as uplink

    def board_said_hello(ctx: AgentContext) -> bool:
        return next(iter(ctx.boards.sessions.values())).info is not None

    async with running_parts(
        AgentContext(config=parse_config(data)), [uplink, boards], board_said_hello
    ) as ctx:
        yield ctx


def _fleet(broker: Broker, operator: Path, bundle: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.edgectl", "fleet", "firmware", str(bundle), DEVICE, "--url", broker.url,
         "--key", str(operator), "--wait", "120", *more],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip


def _on_board(part: Path) -> tuple[list[Path], list[Path]]:
    """Files of a transfer folder on the board: verified ones, and ones still being written."""
    files = [p for p in part.rglob("*") if p.is_file()] if part.is_dir() else []
    return [p for p in files if not p.name.endswith((".tmp", ".part"))], [
        p for p in files if p.name.endswith(".tmp.part") and p.stat().st_size > 0
    ]


async def _half_written(part: Path, install: asyncio.Future[Any]) -> list[Path]:
    """Wait for the moment some files of the transfer are verified on the board and one is half
    written (where the tests cut it); the verified ones."""
    while True:
        verified, writing = _on_board(part)
        if verified and writing:
            return verified
        assert not install.done(), "the install ended before it could be cut"
        await asyncio.sleep(0.005)


async def _measures(session: BoardSession, why: str) -> None:
    """The board sends a new reading (it reports every report_interval_s, 5 s in its setup)."""
    readings = session.stats.readings
    for _ in range(200):
        if session.stats.readings > readings:
            break
        await asyncio.sleep(0.1)
    assert session.stats.readings > readings, why


@pytest.mark.timeout(600)
def test_board_firmware_over_the_air_resumes_installs_reboots_and_refuses_what_it_must(
    mosquitto: Broker, tmp_path: Path, keys: Keys, board: SimulatedBoard
) -> None:
    good = _bundle(tmp_path, "1.2.0", keys.signer)
    forged = _bundle(tmp_path, "1.3.0", keys.stranger)
    older = _bundle(tmp_path, "1.1.0", keys.signer)
    board_id, flash, operator = board.setup["board_id"], board.flash, keys.operator

    async def go() -> None:
        async with _agent(_config(mosquitto, tmp_path, keys, board)) as ctx:
            session = ctx.boards.sessions[board_id]
            assert session.info.firmware == "1.0.0"
            cut = await asyncio.to_thread(
                _fleet, mosquitto, operator, good, "--chunk-kib", "4", "--stop-after", "2"
            )
            assert cut.returncode == 1 and "stopped after 2 chunks" in cut.stderr, cut.stderr
            assert not (flash / "fw" / "1.2.0").exists(), "nothing reaches the board before the install"
            assert session.info.firmware == "1.0.0" and board.boots == 1
            done = await asyncio.to_thread(_fleet, mosquitto, operator, good, "--chunk-kib", "4")
            assert done.returncode == 0, done.stdout + done.stderr
            assert "2 already on the device" in done.stderr, "the second run resumes the transfer"
            assert f"board {board_id} runs 1.2.0 (was 1.0.0)" in done.stdout
            assert session.info.firmware == "1.2.0" and board.boots == 2, "rebooted once, into 1.2.0"
            assert (flash / "fw" / "current").read_text() == "1.2.0\n"
            await _measures(session, "the new firmware measures")

            refused = await asyncio.to_thread(_fleet, mosquitto, operator, forged)
            assert refused.returncode == 1 and "bad-signature" in refused.stderr, refused.stderr
            downgrade = await asyncio.to_thread(_fleet, mosquitto, operator, older)
            assert downgrade.returncode == 1 and "downgrade" in downgrade.stderr, downgrade.stderr
            assert session.info.firmware == "1.2.0" and board.boots == 2, "refusals never touch the board"

    asyncio.run(go())


@pytest.mark.timeout(600)
def test_a_board_cut_off_in_the_middle_of_the_serial_transfer_keeps_its_firmware_and_resumes(
    mosquitto: Broker, tmp_path: Path, keys: Keys, board: SimulatedBoard
) -> None:
    good = _bundle(tmp_path, "1.2.0", keys.signer)
    total = len(list(p for p in good.rglob("*") if p.is_file()))
    board_id, flash, operator = board.setup["board_id"], board.flash, keys.operator
    part = flash / "fw" / "1.2.0.part"

    async def go() -> None:
        async with _agent(_config(mosquitto, tmp_path, keys, board)) as ctx:
            session = ctx.boards.sessions[board_id]
            first = asyncio.ensure_future(asyncio.to_thread(_fleet, mosquitto, operator, good))
            # the cable is pulled while a file is half written, with some files already verified
            verified = await _half_written(part, first)
            board.unplug()
            cut = await first
            assert cut.returncode == 1 and "install-failed" in cut.stderr, cut.stdout + cut.stderr
            assert "it keeps firmware 1.0.0" in cut.stderr
            assert f"{DEVICE:<20} FAILED" in cut.stdout
            assert board.boots == 1, "the board was not rebooted"
            assert not (flash / "fw" / "current").exists() and not (flash / "fw" / "1.2.0").exists()
            assert board.installed_version() == "1.0.0", "its next boot would run the old firmware"
            kept, _ = _on_board(part)
            assert len(kept) >= len(verified)

            board.plug()  # the cable is back: the same firmware, still running, says HELLO again
            for _ in range(300):
                if session.connected.is_set() and session.info is not None:
                    break
                await asyncio.sleep(0.1)
            assert session.connected.is_set() and session.info.firmware == "1.0.0"
            await _measures(session, "the old firmware goes on measuring")

            done = await asyncio.to_thread(_fleet, mosquitto, operator, good)
            assert done.returncode == 0, done.stdout + done.stderr
            line = f"board {board_id} runs 1.2.0 (was 1.0.0), {len(kept)} files already on the board"
            assert line in done.stdout, done.stdout
            assert session.info.firmware == "1.2.0" and board.boots == 2, "rebooted once, into 1.2.0"
            assert (flash / "fw" / "current").read_text() == "1.2.0\n"
            assert len(_on_board(flash / "fw" / "1.2.0")[0]) == total

    asyncio.run(go())


@pytest.mark.timeout(600)
def test_a_gateway_stopped_in_the_middle_of_the_serial_transfer_leaves_the_board_as_it_was(
    mosquitto: Broker, tmp_path: Path, keys: Keys, board: SimulatedBoard
) -> None:
    good = _bundle(tmp_path, "1.2.0", keys.signer)
    config = _config(mosquitto, tmp_path, keys, board)
    board_id, flash, operator = board.setup["board_id"], board.flash, keys.operator
    part = flash / "fw" / "1.2.0.part"

    async def stopped() -> tuple[subprocess.CompletedProcess[str], list[Path]]:
        async with _agent(config):
            first = asyncio.ensure_future(
                asyncio.to_thread(_fleet, mosquitto, operator, good, "--wait", "15")
            )
            verified = await _half_written(part, first)
        # the agent has stopped (as systemd stops it) with the install half done
        return await first, verified

    started = time.monotonic()
    cut, verified = asyncio.run(stopped())
    assert time.monotonic() - started < 40, "stopping did not wait for the install"
    assert cut.returncode == 1 and f"{DEVICE:<20} FAILED" in cut.stdout, cut.stdout + cut.stderr
    assert board.boots == 1 and board.installed_version() == "1.0.0"
    assert not (flash / "fw" / "current").exists() and not (flash / "fw" / "1.2.0").exists()
    kept, _ = _on_board(part)
    assert len(kept) >= len(verified)

    async def restarted() -> None:
        async with _agent(config) as ctx:
            session = ctx.boards.sessions[board_id]
            assert session.info.firmware == "1.0.0", "the old firmware still runs"
            done = await asyncio.to_thread(_fleet, mosquitto, operator, good)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "already on the device" in done.stderr, "the staged package survived the restart"
            assert f"runs 1.2.0 (was 1.0.0), {len(kept)} files already on the board" in done.stdout
            assert session.info.firmware == "1.2.0" and board.boots == 2

    asyncio.run(restarted())


@pytest.mark.timeout(300)
def test_board_firmware_fetched_over_https_is_installed_and_a_forged_one_refused(
    mosquitto: Broker, tmp_path: Path, keys: Keys, board: SimulatedBoard
) -> None:
    from https_support import PackageServer, server_tls
    from pki_support import make_ca

    from tools.commands.fleet import pack

    good = _bundle(tmp_path, "1.2.0", keys.signer)
    forged = _bundle(tmp_path, "1.3.0", keys.stranger)
    server = PackageServer({"good.tar": pack(good, "bundle.json"), "forged.tar": pack(forged, "bundle.json")})
    ca_path, ca_key, ca_cert = make_ca(tmp_path, "city-ca")
    config = _config(mosquitto, tmp_path, keys, board, fetch_ca_file=str(ca_path))
    board_id, operator = board.setup["board_id"], keys.operator

    async def go() -> None:
        (port,) = await server.start([server_tls(tmp_path, ca_key, ca_cert, "pkg")])
        url = f"https://127.0.0.1:{port}/pkg"
        try:
            async with _agent(config) as ctx:
                session = ctx.boards.sessions[board_id]
                refused = await asyncio.to_thread(
                    _fleet, mosquitto, operator, forged, "--from-url", f"{url}/forged.tar"
                )
                assert refused.returncode == 1 and "bad-signature" in refused.stderr, refused.stderr
                assert session.info.firmware == "1.0.0" and board.boots == 1
                done = await asyncio.to_thread(
                    _fleet, mosquitto, operator, good, "--from-url", f"{url}/good.tar"
                )
                assert done.returncode == 0, done.stdout + done.stderr
                assert f"board {board_id} runs 1.2.0 (was 1.0.0)" in done.stdout
                assert session.info.firmware == "1.2.0" and board.boots == 2
                assert server.ranges == [None, None], "each package fetched once, whole"
                assert ctx.uploads.transfers == {}, "nothing left staged"
        finally:
            await server.runner.cleanup()

    asyncio.run(go())
