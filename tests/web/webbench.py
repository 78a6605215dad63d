"""What the web tests share: the running gateway (the real agent on the demo's street clip, a real
Mosquitto, the simulated board), Debian's Chromium through chromedriver, and their handles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from selenium.webdriver.common.by import By

from agent.runtime import AgentContext, run_agent
from tools.demo import DEMO_CONFIG, DemoBoard, demo_config, start_board
from tools.demo import Broker as DemoBroker

PASSWORD = "correct horse battery staple"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CAMERA = "cam-1"


@dataclass
class Gateway:
    ctx: AgentContext
    url: str
    config_file: Path
    board: DemoBoard | None  # None: a gateway without the simulated board
    loop: asyncio.AbstractEventLoop
    broker: DemoBroker

    def call(self, coro: Any, timeout: float = 10) -> Any:
        """Run a coroutine on the agent's loop (its objects belong to that thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def self_signed(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path, str]:
    """A certificate for ``host`` and its key, made here; returns their files and the base64 sha256
    of the public key, which Chromium's --ignore-certificate-errors-spki-list accepts alone."""
    import base64
    import datetime
    import hashlib
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), False)
        .sign(key, hashes.SHA256())
    )
    (folder / "web.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "web.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return folder / "web.crt", folder / "web.key", base64.b64encode(hashlib.sha256(spki).digest()).decode()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception as exc:  # the page is still changing: a stale element, a missing one
            value, last = None, exc
        else:
            last = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))
        time.sleep(0.2)


def login(browser: Any, gateway: Gateway, password: str) -> None:
    browser.get(gateway.url + "/login")
    field = browser.find_element(By.ID, "password")
    field.clear()
    field.send_keys(password)
    browser.find_element(By.ID, "login-button").click()


@contextlib.contextmanager
def running_gateway(
    tmp: Path,
    web: dict[str, Any] | None = None,
    camera: dict[str, Any] | None = None,
    board: bool = True,
    uplink: dict[str, Any] | None = None,
) -> Iterator[Gateway]:
    """The demo agent with its first camera looping, the page on a free port; ``web``, ``camera``
    and ``uplink`` are laid over its [web] section, its camera and its [uplink] section."""
    data = tomllib.loads(DEMO_CONFIG.read_text())
    data["uplink"] = {**data["uplink"], **(uplink or {})}
    # the rendered street clip only (two cameras would take both cores), looping so frames keep coming
    data["cameras"] = [{**data["cameras"][0], "loop": True, **(camera or {})}]
    (tmp / "password").write_text(PASSWORD + "\n")
    data["web"] = {"enabled": True, "port": 0, "password_file": str(tmp / "password"), **(web or {})}
    demo_file = tmp / "demo.toml"
    demo_file.write_text(tomli_w.dumps(data))
    broker = DemoBroker(tmp)
    broker.start()
    assert broker.name == "mosquitto", broker.name
    sim = start_board(tmp) if board else None
    assert sim is not None or not board, "the firmware simulator is part of the repository"
    config = demo_config(tmp, broker, sim.port if sim else None, demo_file)
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
        yield Gateway(ctx, ctx.web.url.rstrip("/"), config_file, sim, loop, broker)
    finally:
        loop.call_soon_threadsafe(ctx.stopping.set)
        thread.join(30)
        if sim is not None:
            sim.stop()
        broker.stop()


def chromium(*args: str) -> Any:
    """Debian's Chromium, headless, through chromedriver; ``args`` besides the usual ones."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()) and not shutil.which("chromedriver"):
        pytest.fail("the web tests need Debian's chromium and chromium-driver: run scripts/setup.sh --tests")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000", *args):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    return driver


def shot(browser: Any, name: str) -> None:
    """With WEB_SCREENSHOTS=<folder>, keep a screenshot of the page (the docs' pictures come from here)."""
    folder = os.environ.get("WEB_SCREENSHOTS")
    if folder:
        size = browser.get_window_size()
        # the whole page, from its top: a window as tall as the page for the moment of the shot
        height = browser.execute_script("window.scrollTo(0, 0); return document.body.scrollHeight")
        browser.set_window_size(size["width"], max(size["height"], height + 120))
        browser.save_screenshot(str(Path(folder) / f"web-{name}.png"))
        browser.set_window_size(size["width"], size["height"])
