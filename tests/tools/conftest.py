"""Fixtures for the edgectl tests: a real Mosquitto (plain and TLS) and a test certificate authority.

The broker is ``tools/broker.py``'s launcher with a TLS listener whose certificate the test CA signed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tools.broker import Broker, BrokerTLS


@dataclass(frozen=True)
class TestPKI:
    ca_file: Path
    cert_file: Path
    key_file: Path
    other_ca_file: Path  # a CA that did not sign the broker's certificate


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _ca("edgectl test CA")
    _, other_cert = _ca("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (folder / "other-ca.pem").write_bytes(other_cert.public_bytes(pem))
    (folder / "broker.pem").write_bytes(cert.public_bytes(pem))
    (folder / "broker.key").write_bytes(_pem_key(key))
    return TestPKI(folder / "ca.pem", folder / "broker.pem", folder / "broker.key", folder / "other-ca.pem")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, pki: TestPKI) -> Iterator[Broker]:
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
