"""The commissioning page's bench: the real agent (uplink, vision, boards, web) on the demo's street
clip, a real Mosquitto, the simulated board, and Debian's Chromium driven through chromedriver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from webbench import Gateway, chromium, running_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("web")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()
