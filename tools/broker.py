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
import tempfile
import threading
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


def main() -> None:
    """``python -m tools.broker``: a throwaway broker for demos; prints its URL, stops on Ctrl-C."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="edge-broker-") as workdir, Broker(workdir) as broker:
        print(broker.url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
