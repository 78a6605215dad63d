"""The commissioning page's bench: the real agent (uplink, vision, boards, web) on the demo's street
clip, a real Mosquitto, the simulated board, and Debian's Chromium driven through chromedriver."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from webbench import CHROMEDRIVER, CHROMIUM, PASSWORD, Gateway

from agent.runtime import AgentContext, run_agent
from tools.demo import DEMO_CONFIG, demo_config, start_board
from tools.demo import Broker as DemoBroker


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("web")
    data = tomllib.loads(DEMO_CONFIG.read_text())
    # the rendered street clip only (two cameras would take both cores), looping so frames keep coming
    data["cameras"] = [{**data["cameras"][0], "loop": True}]
    (tmp / "password").write_text(PASSWORD + "\n")
    data["web"] = {"enabled": True, "port": 0, "password_file": str(tmp / "password")}
    demo_file = tmp / "demo.toml"
    demo_file.write_text(tomli_w.dumps(data))
    broker = DemoBroker(tmp)
    broker.start()
    assert broker.name == "mosquitto", broker.name
    board = start_board(tmp)
    assert board is not None, "the firmware simulator is part of the repository"
    config = demo_config(tmp, broker, board.port, demo_file)
    config_file = tmp / "gateway.toml"
    config_file.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
    ctx = AgentContext(config=config, config_path=config_file)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(run_agent(ctx),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not getattr(getattr(ctx, "web", None), "url", ""):
            assert thread.is_alive(), "the agent stopped while starting"
            assert time.monotonic() < deadline, "the commissioning page did not start within 60 s"
            time.sleep(0.2)
        yield Gateway(ctx, ctx.web.url.rstrip("/"), config_file, board, loop)
    finally:
        loop.call_soon_threadsafe(ctx.stopping.set)
        thread.join(30)
        board.stop()
        broker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()) and not shutil.which("chromedriver"):
        pytest.fail("the web tests need Debian's chromium and chromium-driver: run scripts/setup.sh --tests")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
