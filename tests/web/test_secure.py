"""The page over HTTPS, in the browser, on a gateway whose face model is missing.

The certificate is made here and Chromium is told to accept that one key alone (its SPKI hash), so
the browser still checks everything else about the connection. Without a face model nothing can
vouch for a frame: the live view and the zone editor's frame are withheld, pixelated whole.
"""

from __future__ import annotations

import base64
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from selenium.webdriver.common.by import By
from webbench import CAMERA, PASSWORD, Gateway, chromium, login, running_gateway, self_signed, shot, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Any, Path]]:
    tmp = tmp_path_factory.mktemp("web-tls")
    cert, key, spki = self_signed(tmp)
    web = {"tls_cert": str(cert), "tls_key": str(key)}
    camera = {"snapshots": {"face_model": str(tmp / "no-such-face-model")}}
    with running_gateway(tmp, web=web, camera=camera, board=False) as gateway:
        driver = chromium(f"--ignore-certificate-errors-spki-list={spki}")
        try:
            yield gateway, driver, cert
        finally:
            driver.quit()


def _detail(image: np.ndarray) -> float:
    return float(np.abs(np.diff(image.astype(float), axis=1)).mean())


def test_the_page_over_https_sets_a_secure_cookie(secure: tuple[Gateway, Any, Path]) -> None:
    gateway, browser, cert = secure
    assert gateway.url.startswith("https://127.0.0.1:")
    login(browser, gateway, PASSWORD)
    wait_for("the page", lambda: "demo-pole" in browser.find_element(By.ID, "device").text)
    cookie = browser.get_cookie("edge_session")
    assert cookie and cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # the same over a client that trusts only this certificate
    trusting = ssl.create_default_context(cafile=str(cert))
    request = urllib.request.Request(gateway.url + "/login", data=f"password={PASSWORD}".encode())
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=trusting))
    with opener.open(request, timeout=10) as response:
        assert response.status == 302
        assert "Secure" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]
    # and plain HTTP on the same port gets no page
    with pytest.raises(OSError):
        urllib.request.urlopen(gateway.url.replace("https://", "http://") + "/login", timeout=5).read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None

    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        return fp


def test_without_the_face_model_the_live_view_is_withheld(secure: tuple[Gateway, Any, Path]) -> None:
    gateway, browser, _ = secure
    if browser.get_cookie("edge_session") is None:
        login(browser, gateway, PASSWORD)
    browser.get(gateway.url + "/")
    img = browser.find_element(By.ID, "live-img")
    wait_for("the live image", lambda: browser.execute_script("return arguments[0].naturalWidth", img) > 0)
    shot(browser, "withheld")
    script = """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then(async r => {
            const bytes = new Uint8Array(await r.arrayBuffer());
            let text = "";
            for (const b of bytes) text += String.fromCharCode(b);
            done({privacy: r.headers.get("X-Privacy"), reason: r.headers.get("X-Privacy-Reason"),
                  jpeg: btoa(text)});
        });
    """
    got = browser.execute_async_script(script, f"/api/cameras/{CAMERA}/frame.jpg")
    assert got["privacy"] == "withheld" and "face model" in got["reason"]
    shown = cv2.imdecode(np.frombuffer(base64.b64decode(got["jpeg"]), np.uint8), cv2.IMREAD_COLOR)
    raw = cv2.VideoCapture(str(ROOT / "demo" / "clip" / "street.mp4")).read()[1]
    # the street's own detail (kerbs, windows, people) is gone from the top band, above the notice
    assert _detail(raw[:40]) > 2 and _detail(shown[:40]) < 0.5
    live = gateway.ctx.web.live[CAMERA]
    assert live.state.startswith("withheld") and live.encoded > 0
