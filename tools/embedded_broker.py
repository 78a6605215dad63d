"""An MQTT 3.1.1 broker in pure Python (amqtt), for the demo on a machine without Mosquitto.

Mosquitto is the broker we test against and recommend; this one exists so that the README's demo needs
nothing outside pip. It runs in its own process (``python -m tools.embedded_broker --port N``) so that
its event loop and logging stay apart from the demo's, and it prints ``ready`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EmbeddedBroker:
    """A running amqtt broker process on loopback; ``stop()`` ends it."""

    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    # The agent must speak MQTT 3.1.1 to it: amqtt does not implement MQTT 5.
    protocol = "3.1.1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(port: int | None = None, timeout_s: float = 15.0) -> EmbeddedBroker:
    """Start the broker in a child process and wait until it accepts connections."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.embedded_broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the embedded MQTT broker (amqtt) exited at start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return EmbeddedBroker(port, process)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the embedded MQTT broker did not listen on port {port} within {timeout_s:.0f} s")


async def _serve(port: int) -> None:
    from amqtt.broker import Broker  # an optional dependency, needed only in the broker's own process

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        # Loopback only and for the demo: anonymous clients, no $SYS chatter.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
