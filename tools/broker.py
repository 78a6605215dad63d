"""A real Mosquitto broker on a free loopback port, for tests, the demo and the HIL suite.

    broker = Broker(workdir)          # or Broker(workdir, tls=BrokerTLS(ca, cert, key))
    broker.start()                    # waits until it accepts connections
    broker.url                        # "mqtt://127.0.0.1:PORT" (and tls_url, ws_url when asked for)
    broker.stop(); broker.start()     # restart on the SAME port(s): clients reconnect
    broker.kill()                     # SIGKILL, like a crashed broker

By default it keeps nothing across a restart, as a crashed broker; with ``persistent=True`` a clean
``stop()`` saves sessions and queued messages to ``workdir`` and ``start()`` loads them again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


class BrokerError(RuntimeError):
    """Mosquitto is missing or would not start; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class BrokerTLS:
    """Files for a TLS listener; with ``require_client_cert`` clients need a cert signed by ``ca_file``."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_client_cert: bool = False


def find_mosquitto() -> str:
    found = shutil.which("mosquitto") or next((p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)
    if found is None:
        raise BrokerError("mosquitto is not installed; install it with `apt-get install mosquitto`")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """One mosquitto process; ``start``/``stop`` may be repeated and keep the ports."""

    def __init__(
        self,
        workdir: str | Path,
        tls: BrokerTLS | None = None,
        persistent: bool = False,
        extra_config: tuple[str, ...] = (),
        websockets: bool = False,
    ) -> None:
        self.workdir = Path(workdir)
        self.persistent = persistent
        self.extra_config = extra_config  # more mosquitto.conf lines, e.g. an acl_file
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.ws_port = free_port() if websockets else None
        self.host = "127.0.0.1"
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_file = self.workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        if self.tls_port is None:
            raise BrokerError("this broker has no TLS listener; pass tls=BrokerTLS(...)")
        # "localhost", not the address: the test server certificate names localhost.
        return f"mqtts://localhost:{self.tls_port}"

    @property
    def ws_url(self) -> str:
        if self.ws_port is None:
            raise BrokerError("this broker has no websocket listener; pass websockets=True")
        return f"ws://{self.host}:{self.ws_port}/mqtt"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _config(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            f"persistence {'true' if self.persistent else 'false'}",
            f"persistence_location {self.workdir}/",
            # Let a client keep many QoS 1 messages in flight (MQTT 5 Receive Maximum).
            "max_inflight_messages 0",
            "max_queued_messages 1000000",
            "log_type error",
            "log_type warning",
            "log_type notice",
            f"log_dest file {self.log_file}",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # as root, mosquitto would switch to a user that cannot read workdir
        if self.tls is not None:
            lines += [
                f"listener {self.tls_port} {self.host}",
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                f"require_certificate {'true' if self.tls.require_client_cert else 'false'}",
            ]
        if self.ws_port is not None:
            lines += [f"listener {self.ws_port} {self.host}", "protocol websockets"]
        lines += self.extra_config
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until every listener accepts connections."""
        if self.running:
            return
        self._proc = subprocess.Popen(
            [find_mosquitto(), "-c", str(self._config())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        for port in (self.port, self.tls_port, self.ws_port):
            if port is None:
                continue
            while True:
                if self._proc.poll() is not None:
                    err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                    log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
                    raise BrokerError(f"mosquitto exited at start: {err.strip()} {log[-2000:]}".strip())
                with contextlib.suppress(OSError), socket.create_connection((self.host, port), 0.2):
                    break
                if time.monotonic() > deadline:
                    self.kill()
                    raise BrokerError(f"mosquitto did not listen on port {port} within {timeout} s")
                time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop it cleanly (SIGTERM); clients see the connection close."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Stop it as a crash would (SIGKILL)."""
        self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: int, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True, slots=True)
class TestPKI:
    """A throwaway CA with a server certificate for ``localhost`` and one client certificate."""

    ca_file: Path
    ca_key_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_test_pki(folder: str | Path, server_names: tuple[str, ...] = ("localhost",)) -> TestPKI:
    """Generate a test CA, a server cert naming ``server_names`` (DNS) and a client cert, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return path

    def write_cert(cert: x509.Certificate, path: Path) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("edge test CA"))
        .issuer_name(name("edge test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        cn: str, usage: x509.ObjectIdentifier, names: tuple[str, ...]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
        return builder.sign(ca_key, hashes.SHA256()), key

    server, server_key = leaf(server_names[0], ExtendedKeyUsageOID.SERVER_AUTH, server_names)
    client, client_key = leaf("pole-test", ExtendedKeyUsageOID.CLIENT_AUTH, ())
    return TestPKI(
        ca_file=write_cert(ca, folder / "ca.pem"),
        ca_key_file=write_key(ca_key, folder / "ca.key"),
        server_cert=write_cert(server, folder / "server.pem"),
        server_key=write_key(server_key, folder / "server.key"),
        client_cert=write_cert(client, folder / "client.pem"),
        client_key=write_key(client_key, folder / "client.key"),
    )


def main() -> None:
    """``python -m tools.broker``: a throwaway broker for demos; prints its URL, stops on Ctrl-C."""
    import tempfile
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="edge-broker-") as workdir, Broker(workdir) as broker:
        print(broker.url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
