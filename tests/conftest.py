"""Session-wide fixtures: real services the tests run against (a Mosquitto broker, ...)."""

from __future__ import annotations

import asyncio
import inspect
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


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests on a fresh event loop, with a liveness bound."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    # the test's own parameters, by its signature (pytest's funcargs also hold autouse fixtures)
    names = inspect.signature(pyfuncitem.obj).parameters
    kwargs = {name: pyfuncitem.funcargs[name] for name in names if name in pyfuncitem.funcargs}
    asyncio.run(asyncio.wait_for(pyfuncitem.obj(**kwargs), 120))
    return True
