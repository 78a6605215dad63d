"""Session-wide fixtures: real services the tests run against (a Mosquitto broker, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.broker import Broker


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One real mosquitto for the whole session, on a free loopback port. Do not stop it in a test:
    use ``own_mosquitto`` for a broker a test may stop, kill and restart."""
    broker = Broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A mosquitto of this test alone; ``stop()``/``kill()`` and ``start()`` keep its port."""
    broker = Broker(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()
