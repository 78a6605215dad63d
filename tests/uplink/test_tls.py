"""TLS to a real mosquitto with a test CA: verified connections work, unverifiable ones are refused."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

from pki_support import make_test_pki
from uplink_support import gateway_config, reading

from agent.uplink.outbox import Outbox
from agent.uplink.publisher import Publisher
from tools.broker import Broker, BrokerTLS

ROOT = Path(__file__).resolve().parents[2]


async def _deliver(config, outbox_path: Path, seconds: float) -> tuple[int, Publisher]:
    """Submit one event and let the publisher try for ``seconds``; returns the outbox depth after."""
    outbox = await Outbox.open(outbox_path, config.device.id, 10**9)
    await outbox.submit(reading())
    publisher = Publisher(config.uplink, config.device.id, outbox)
    task = asyncio.create_task(publisher.run())
    deadline = asyncio.get_running_loop().time() + seconds
    while outbox.stats.depth and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await outbox.close()
    return outbox.stats.depth, publisher


def test_tls_verifies_the_broker_and_refuses_a_wrong_ca_or_hostname(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki")
    stranger = make_test_pki(tmp_path / "other-pki")
    broker = Broker(tmp_path / "broker", tls=BrokerTLS(pki.ca_file, pki.server_cert, pki.server_key))
    broker.start()
    try:
        good = gateway_config(broker.tls_url, tmp_path / "a.sqlite", ca_file=str(pki.ca_file))
        depth, _ = asyncio.run(_deliver(good, tmp_path / "a.sqlite", 20))
        assert depth == 0, "delivered over TLS with the right CA"

        wrong_ca = gateway_config(broker.tls_url, tmp_path / "b.sqlite", ca_file=str(stranger.ca_file))
        depth, publisher = asyncio.run(_deliver(wrong_ca, tmp_path / "b.sqlite", 1.5))
        assert depth == 1 and publisher.stats.published == 0
        assert "certificate verify failed" in (publisher.stats.last_error or "")

        # The certificate names "localhost"; reaching the same broker by address must not verify.
        by_address = broker.tls_url.replace("localhost", "127.0.0.1")
        wrong_name = gateway_config(by_address, tmp_path / "c.sqlite", ca_file=str(pki.ca_file))
        depth, publisher = asyncio.run(_deliver(wrong_name, tmp_path / "c.sqlite", 1.5))
        assert depth == 1 and publisher.stats.published == 0
        assert "certificate verify failed" in (publisher.stats.last_error or "")
        assert "127.0.0.1" in (publisher.stats.last_error or "") or "mismatch" in (
            publisher.stats.last_error or ""
        )
    finally:
        broker.stop()


def test_mutual_tls_needs_the_device_certificate(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki")
    tls = BrokerTLS(pki.ca_file, pki.server_cert, pki.server_key, require_client_cert=True)
    broker = Broker(tmp_path / "broker", tls=tls)
    broker.start()
    try:
        anonymous = gateway_config(broker.tls_url, tmp_path / "a.sqlite", ca_file=str(pki.ca_file))
        depth, publisher = asyncio.run(_deliver(anonymous, tmp_path / "a.sqlite", 1.5))
        assert depth == 1 and publisher.stats.published == 0

        device = gateway_config(
            broker.tls_url,
            tmp_path / "b.sqlite",
            ca_file=str(pki.ca_file),
            cert_file=str(pki.client_cert),
            key_file=str(pki.client_key),
        )
        depth, publisher = asyncio.run(_deliver(device, tmp_path / "b.sqlite", 20))
        assert depth == 0 and publisher.stats.published == 1
    finally:
        broker.stop()


def test_edgectl_tail_verifies_the_broker_too(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki")
    broker = Broker(tmp_path / "broker", tls=BrokerTLS(pki.ca_file, pki.server_cert, pki.server_key))
    broker.start()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    base = [
        sys.executable,
        "-m",
        "tools.edgectl",
        "events",
        "tail",
        "--url",
        broker.tls_url,
        "--timeout",
        "1",
    ]
    try:
        refused = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60)
        verified = subprocess.run(
            [*base, "--ca-file", str(pki.ca_file)], capture_output=True, text=True, env=env, timeout=60
        )
    finally:
        broker.stop()
    assert refused.returncode == 5, refused.stderr
    assert "certificate verify failed" in refused.stderr and "check the URL, TLS files" in refused.stderr
    assert verified.returncode == 0 and "following" in verified.stderr, verified.stderr
