"""Fixtures for the edgectl tests: a real Mosquitto (plain and TLS) and a test certificate authority.

The broker is ``tools/broker.py``'s launcher with a TLS listener whose certificate the test CA
(``tests/pki_support.py``) signed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pki_support import make_test_pki

from tools.broker import Broker, BrokerTLS


@dataclass(frozen=True)
class BrokerPKI:
    ca_file: Path
    cert_file: Path
    key_file: Path
    other_ca_file: Path  # a CA that did not sign the broker's certificate


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> BrokerPKI:
    folder = tmp_path_factory.mktemp("pki")
    ours, other = make_test_pki(folder / "ours"), make_test_pki(folder / "other")
    return BrokerPKI(ours.ca_file, ours.server_cert, ours.server_key, other.ca_file)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, pki: BrokerPKI) -> Iterator[Broker]:
    """A real mosquitto with a plain and a TLS listener (certificate for localhost from ``pki``)."""
    server = Broker(
        tmp_path_factory.mktemp("mosquitto-tls"), tls=BrokerTLS(pki.ca_file, pki.cert_file, pki.key_file)
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return _free_port()


class LockedBroker(Broker):
    """A mosquitto that refuses every login (no anonymous clients, no password file entries)."""

    def _config(self) -> Path:
        path = super()._config()
        path.write_text(path.read_text().replace("allow_anonymous true", "allow_anonymous false"))
        return path


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[Broker]:
    server = LockedBroker(tmp_path / "locked")
    server.start()
    yield server
    server.stop()
