"""The commissioning page in a real browser against the real agent on the demo setup.

Without a session nothing answers; a wrong password is refused; logged in, the live image loads, a
zone drawn on the canvas is saved to the config file and runs in the camera's pipeline, an invalid
zone is refused with its reason and changes nothing, events and board readings are listed, and the
lamp control dims the simulated board's lamp.
"""

from __future__ import annotations

import json
import time
import tomllib
import urllib.error
import urllib.request
from typing import Any

import cv2
import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from webbench import CAMERA, PASSWORD, Gateway, login, shot, wait_for

from agent.vision.zones import make_zones


def status_of(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.url
    except urllib.error.HTTPError as exc:
        return exc.code, url


def test_without_a_session_nothing_answers(gateway: Gateway) -> None:
    base = gateway.url
    for path in (
        "/api/session",
        f"/api/cameras/{CAMERA}/live.mjpeg",
        f"/api/cameras/{CAMERA}/frame.jpg",
        f"/api/cameras/{CAMERA}/zones",
        "/api/events",
        "/api/boards",
        "/api/health",
    ):
        assert status_of(base + path)[0] == 401, path
    zones = json.dumps({"zones": []}).encode()
    assert status_of(f"{base}/api/cameras/{CAMERA}/zones", "PUT", zones)[0] == 401
    assert status_of(f"{base}/api/boards/pole-0042-b1/lamp", "POST", b'{"level": 0}')[0] == 401
    # pages send the browser to the login form
    status, final = status_of(base + "/")
    assert status == 200 and final.endswith("/login")
    assert status_of(base + "/static/app.js")[1].endswith("/login")
    cam = gateway.ctx.vision.cameras[0]
    assert cam.viewers == 0, "a refused stream must not count as a viewer"


def test_a_wrong_password_is_refused(gateway: Gateway, browser: Any) -> None:
    login(browser, gateway, "not the password")
    assert "Wrong password" in wait_for(
        "the refusal", lambda: browser.find_element(By.CLASS_NAME, "error").text
    )
    assert not browser.get_cookies(), "a refused login must not set a session cookie"


def _click_at(browser: Any, canvas: Any, points: list[tuple[float, float]]) -> None:
    """Clicks at normalized points of the canvas (Selenium's offsets are from the element's centre)."""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    w, h = canvas.size["width"], canvas.size["height"]
    for x, y in points:
        ActionChains(browser).move_to_element_with_offset(
            canvas, int((x - 0.5) * w), int((y - 0.5) * h)
        ).click().perform()


def _zone_ids_in_file(gateway: Gateway) -> list[str]:
    data = tomllib.loads(gateway.config_file.read_text())
    (cam,) = [c for c in data["cameras"] if c["id"] == CAMERA]
    return [z["id"] for z in cam.get("zones", [])]


def _lines_in_file(gateway: Gateway) -> dict[str, list[list[float]]]:
    data = tomllib.loads(gateway.config_file.read_text())
    (cam,) = [c for c in data["cameras"] if c["id"] == CAMERA]
    return {ln["id"]: ln["points"] for ln in cam.get("lines", [])}


def _zone_outline_at(gateway: Gateway, live: Any, point: tuple[float, float]) -> bool:
    """Whether the next annotated live frame has a zone outline (draw.py's colour) at ``point``."""

    async def next_jpeg() -> bytes:
        with live.watching():
            shown = await live.next(live.latest.number if live.latest else 0, 10.0)
            assert shown is not None, "no frame came"
            return await live.jpeg(shown, annotated=True)

    image = cv2.imdecode(np.frombuffer(gateway.call(next_jpeg(), 15), np.uint8), cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    x, y = round(point[0] * w), round(point[1] * h)
    patch = image[y - 3 : y + 4, x - 3 : x + 4].astype(int)
    return bool((np.abs(patch - [255, 200, 0]).max(axis=2) < 40).any())


def _caught(live: Any) -> dict[str, int]:
    """Per zone, the objects of the editor's frame whose ground point is inside (agent/vision/zones.py)."""
    out = {}
    for zone in make_zones(live.camera.config.zones):
        n = 0
        for dets, classes in live.still.result.found:
            if len(dets):
                inside = zone.contains(dets.bottom_centers())
                n += sum(
                    bool(hit) and zone.watches(classes[int(c)])
                    for hit, c in zip(inside, dets.class_id, strict=True)
                )
        out[zone.id] = n
    return out


def _lamp_duty(gateway: Gateway) -> int:
    assert gateway.board is not None
    return gateway.board.board.hal.pwms[25].duty  # the lamp's pin in firmware/sim/street-setup.toml


def test_commissioning_in_the_browser(gateway: Gateway, browser: Any) -> None:
    cam = gateway.ctx.vision.cameras[0]
    live = gateway.ctx.web.live[CAMERA]
    login(browser, gateway, PASSWORD)
    wait_for("the page", lambda: "demo-pole" in browser.find_element(By.ID, "device").text)
    cookie = browser.get_cookie("edge_session")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # live view: the MJPEG stream's image loads and keeps changing while one viewer watches
    img = browser.find_element(By.ID, "live-img")
    wait_for("the live image", lambda: browser.execute_script("return arguments[0].naturalWidth", img) > 0)
    assert cam.viewers == 1
    before = live.encoded
    wait_for("new live frames", lambda: live.encoded >= before + 3)
    # and the browser sees it change: two looks at the image a second apart differ
    look = "const c = document.createElement('canvas'); const i = arguments[0];"
    look += "c.width = i.naturalWidth; c.height = i.naturalHeight; c.getContext('2d').drawImage(i, 0, 0);"
    look += "return c.toDataURL('image/png');"
    first = browser.execute_script(look, img)
    wait_for("the live image to change", lambda: browser.execute_script(look, img) != first, 10)
    shot(browser, "live")
    # the face model and the detector vouched for what is shown: blurred, not withheld
    privacy = "const done = arguments[arguments.length - 1];"
    privacy += "fetch(arguments[0]).then(r => done(r.headers.get('X-Privacy')));"
    assert browser.execute_async_script(privacy, f"/api/cameras/{CAMERA}/frame.jpg") == "blurred"
    assert live.state == "blurred"

    # zone editor: draw a zone on the current frame, name it, give it rules, save
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="zones"]').click()
    frame = browser.find_element(By.ID, "zone-frame")
    wait_for(
        "the zone editor's frame",
        lambda: browser.execute_script("return arguments[0].naturalWidth", frame) > 0,
    )
    wait_for("the live stream to close", lambda: cam.viewers == 0)
    canvas = browser.find_element(By.ID, "zone-canvas")
    wait_for("the canvas sized to the frame", lambda: canvas.size["width"] > 100)
    # each zone says what it catches in the shown frame, as the agent's zones decide it
    items = wait_for(
        "zones with what they catch",
        lambda: [
            li
            for li in browser.find_elements(By.CSS_SELECTOR, "#zone-list li")
            if li.get_attribute("data-caught")
        ],
    )
    shown = {li.get_attribute("data-zone"): int(li.get_attribute("data-caught")) for li in items}
    assert shown == _caught(live)
    assert not _zone_outline_at(gateway, live, (0.85, 0.72)), "no zone there yet"
    old_pipeline = cam.pipeline
    browser.find_element(By.ID, "new-zone").click()
    _click_at(browser, canvas, [(0.55, 0.55), (0.85, 0.55), (0.85, 0.9), (0.55, 0.9)])
    browser.find_element(By.ID, "finish-zone").click()
    name = browser.find_element(By.ID, "zone-id")
    name.clear()
    name.send_keys("bus-stop")
    browser.find_element(By.ID, "zone-area").send_keys("40")
    browser.find_element(By.ID, "zone-crowd-count").send_keys("5")
    browser.find_element(By.ID, "zone-pileup-more").send_keys("3")  # bikes piling up at the stop
    browser.find_element(By.ID, "zone-pileup-label").send_keys("bicycle")
    browser.find_element(By.ID, "zone-pileup-dwell").send_keys("60")
    shot(browser, "zones")
    browser.find_element(By.ID, "save-zones").click()
    message = browser.find_element(By.ID, "zone-message")
    wait_for("the save", lambda: "bus-stop" in message.text and "ok" in message.get_attribute("class"))
    assert _zone_ids_in_file(gateway) == ["kerb-no-parking", "pavement", "bus-stop"]
    assert cam.pipeline is not old_pipeline
    running = {z.id: z for z in cam.pipeline.zones}
    assert set(running) == {"kerb-no-parking", "pavement", "bus-stop"}
    corners = running["bus-stop"].polygon
    assert corners.shape == (4, 2) and abs(corners[0][0] - 0.55) < 0.03 and abs(corners[2][1] - 0.9) < 0.03
    assert running["bus-stop"].config.area_m2 == 40 and running["bus-stop"].config.crowd_alarm_count == 5
    (rule,) = running["bus-stop"].config.count_rules
    assert (rule.label, rule.more_than, rule.dwell_s) == ("bicycle", 3, 60)
    assert _zone_outline_at(gateway, live, (0.85, 0.72)), "the next live frame draws the new zone"

    # an invalid zone (two corners) is refused with its reason, and nothing changes
    saved = gateway.config_file.read_bytes()
    pipeline = cam.pipeline
    browser.find_element(By.ID, "new-zone").click()
    _click_at(browser, canvas, [(0.1, 0.1), (0.2, 0.2)])
    browser.find_element(By.ID, "finish-zone").click()
    browser.find_element(By.ID, "save-zones").click()
    wait_for("the refusal", lambda: "error" in message.get_attribute("class") and "3 corners" in message.text)
    assert gateway.config_file.read_bytes() == saved
    assert cam.pipeline is pipeline
    browser.find_element(By.ID, "delete-zone").click()  # the refused zone is still selected

    # a counting line: drawn with two clicks, named, saved; then an end dragged, then deleted
    browser.find_element(By.ID, "new-line").click()
    _click_at(browser, canvas, [(0.2, 0.7), (0.6, 0.7)])
    name = browser.find_element(By.ID, "line-id")
    name.clear()
    name.send_keys("crossing")
    browser.find_element(By.ID, "line-classes").send_keys("person")
    shot(browser, "zones")
    browser.find_element(By.ID, "save-zones").click()
    wait_for("the line saved", lambda: "counting lines: pavement-line, crossing" in message.text)
    (line,) = [ln for ln in cam.pipeline.config.lines if ln.id == "crossing"]
    assert line.classes == ["person"] and abs(line.points[1][0] - 0.6) < 0.03
    assert _lines_in_file(gateway)["crossing"][0] == pytest.approx([0.2, 0.7], abs=0.03)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    w, h = canvas.size["width"], canvas.size["height"]
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(0.1 * w), int(0.2 * h)
    ).click_and_hold().move_by_offset(
        int(0.2 * w), int(-0.3 * h)
    ).release().perform()  # its second end, (0.6, 0.7)
    browser.find_element(By.ID, "save-zones").click()
    wait_for("the moved line saved", lambda: _lines_in_file(gateway)["crossing"][1][1] < 0.5)
    wait_for("the moved line running", lambda: cam.pipeline.config.lines[-1].points[1][1] < 0.5)
    assert _lines_in_file(gateway)["crossing"][1] == pytest.approx([0.8, 0.4], abs=0.03)
    item = browser.find_element(By.CSS_SELECTOR, '#line-list li[data-line="crossing"]')
    item.click()
    browser.find_element(By.ID, "delete-zone").click()
    browser.find_element(By.ID, "save-zones").click()
    wait_for("the deletion saved", lambda: "counting lines: pavement-line." in message.text)
    assert "crossing" not in _lines_in_file(gateway)
    assert [ln.id for ln in cam.pipeline.config.lines] == ["pavement-line"]
    assert _zone_ids_in_file(gateway) == ["kerb-no-parking", "pavement", "bus-stop"]

    # events as integrators decode them, filtered by kind
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="events"]').click()
    wait_for("events listed", lambda: browser.find_elements(By.CSS_SELECTOR, "#events-table tr.event"))
    kinds = browser.find_element(By.ID, "event-kind")
    Select(kinds).select_by_visible_text("reading")
    wait_for(
        "only readings listed",
        lambda: (
            (rows := browser.find_elements(By.CSS_SELECTOR, "#events-table tr.event"))
            and all("kind-reading" in r.get_attribute("class") for r in rows)
        ),
    )
    first = browser.find_element(By.CSS_SELECTOR, "#events-table tr.event pre").text
    assert json.loads(first)["k"] == "reading" and json.loads(first)["d"] == "demo-pole"

    # boards: readings with units and age, and the lamp dimmed through the board-lamp command
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="boards"]').click()
    rows = wait_for("board readings", lambda: browser.find_elements(By.CSS_SELECTOR, ".board tr.reading"))
    assert rows[0].text.endswith(" s")  # its age
    level = browser.find_element(By.ID, "lamp-level-pole-0042-b1")
    level.clear()
    level.send_keys("0.3")
    browser.find_element(By.ID, "lamp-set-pole-0042-b1").click()
    duty = int(0.3 * 65535 + 0.5)  # as the firmware sets it
    wait_for("the lamp dimmed", lambda: _lamp_duty(gateway) == duty)
    result = browser.find_element(By.ID, "lamp-result-pole-0042-b1")
    wait_for("the lamp's reply", lambda: "lamp at 0.3" in result.text)
    shot(browser, "boards")

    # health: plots drawn from the server's samples; with no viewer, no frame is encoded
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="health"]').click()
    wait_for("health plots", lambda: browser.find_elements(By.CSS_SELECTOR, "#plots svg polyline"))
    shot(browser, "health")
    assert cam.viewers == 0
    encoded = live.encoded
    time.sleep(1.5)
    assert live.encoded == encoded


@pytest.mark.parametrize("header", [None, "wrong"])
def test_changes_need_the_csrf_token(gateway: Gateway, browser: Any, header: str | None) -> None:
    """A logged-in browser's cookie alone does not change anything: the page's header is needed."""
    script = """
        const done = arguments[arguments.length - 1];
        const headers = {"Content-Type": "application/json"};
        if (arguments[0] !== null) headers["X-CSRF-Token"] = arguments[0];
        fetch("/api/boards/pole-0042-b1/lamp", {method: "POST", headers, body: '{"level": 1}'})
            .then(r => done(r.status));
    """
    assert browser.execute_async_script(script, header) == 403


def test_crossing_counts_arrive_in_the_events_list(gateway: Gateway, browser: Any) -> None:
    """The demo's counting line sends its counts every 10 s; the page lists them as decoded."""
    browser.get(gateway.url + "/")
    if browser.current_url.endswith("/login"):
        login(browser, gateway, PASSWORD)
    wait_for("the page", lambda: "demo-pole" in browser.find_element(By.ID, "device").text)
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="events"]').click()
    Select(browser.find_element(By.ID, "event-kind")).select_by_visible_text("crossing")
    rows = wait_for(
        "a crossing event listed",
        lambda: browser.find_elements(By.CSS_SELECTOR, "#events-table tr.kind-crossing pre"),
        30,
    )
    event = json.loads(rows[0].text)
    assert event["k"] == "crossing" and event["cam"] == CAMERA and event["z"] == "pavement-line"
    assert event["c"] == "person" and set(event["val"]) == {"in", "out"}
    assert event["m"][0] in {m.engine.manifest.id for m in gateway.ctx.vision.cameras[0].pipeline.detectors}


def _masks_in_file(gateway: Gateway) -> dict[str, dict[str, Any]]:
    data = tomllib.loads(gateway.config_file.read_text())
    (cam,) = [c for c in data["cameras"] if c["id"] == CAMERA]
    return {m["id"]: m for m in cam.get("masks", [])}


def _running_masks(gateway: Gateway) -> dict[str, tuple[list[list[float]], list[str]]]:
    pipeline = gateway.ctx.vision.cameras[0].pipeline
    return {z.id: (z.polygon.tolist(), sorted(c)) for z, c in pipeline.masks.areas}


def test_a_mask_drawn_in_the_browser_runs_at_once(gateway: Gateway, browser: Any) -> None:
    """A mask over a sign is drawn, named, given its classes and saved like a zone: the config file
    has it and the running pipeline drops detections there; dragged, it moves in both; a two-corner
    mask and repeated mask ids are refused by name with nothing changed; deleted, it is gone."""
    cam = gateway.ctx.vision.cameras[0]
    browser.get(gateway.url + "/")
    if browser.current_url.endswith("/login"):
        login(browser, gateway, PASSWORD)
    wait_for("the page", lambda: "demo-pole" in browser.find_element(By.ID, "device").text)
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="zones"]').click()
    frame = browser.find_element(By.ID, "zone-frame")
    wait_for(
        "the editor's frame", lambda: browser.execute_script("return arguments[0].naturalWidth", frame) > 0
    )
    canvas = browser.find_element(By.ID, "zone-canvas")
    wait_for("the canvas sized to the frame", lambda: canvas.size["width"] > 100)
    zones = _zone_ids_in_file(gateway)
    assert _masks_in_file(gateway) == {} and cam.pipeline.masks.areas == []

    # drawn in the frame's top left, clear of the demo's zones and line
    old_pipeline = cam.pipeline
    browser.find_element(By.ID, "new-mask").click()
    _click_at(browser, canvas, [(0.05, 0.05), (0.28, 0.05), (0.28, 0.25), (0.05, 0.25)])
    finish = browser.find_element(By.ID, "finish-zone")
    assert finish.text == "Finish mask"
    finish.click()
    name = browser.find_element(By.ID, "mask-id")
    assert name.get_attribute("value") == "mask-1"
    name.clear()
    name.send_keys("shop-sign")
    browser.find_element(By.ID, "mask-classes").send_keys("illegal_ad, street_stall")
    browser.find_element(By.ID, "save-zones").click()
    message = browser.find_element(By.ID, "zone-message")
    wait_for(
        "the save", lambda: "masks: shop-sign;" in message.text and "ok" in message.get_attribute("class")
    )
    saved = _masks_in_file(gateway)["shop-sign"]
    assert saved["classes"] == ["illegal_ad", "street_stall"]
    assert saved["polygon"][0] == pytest.approx([0.05, 0.05], abs=0.03)
    assert saved["polygon"][2] == pytest.approx([0.28, 0.25], abs=0.03)
    assert cam.pipeline is not old_pipeline
    (corners, classes) = _running_masks(gateway)["shop-sign"]
    assert classes == ["illegal_ad", "street_stall"] and corners[2] == pytest.approx([0.28, 0.25], abs=0.03)
    assert _zone_ids_in_file(gateway) == zones, "the zones stay as they were"
    item = browser.find_element(By.CSS_SELECTOR, '#mask-list li[data-mask="shop-sign"]')
    assert item.text == "shop-sign: mask of illegal_ad, street_stall"
    shot(browser, "masks")

    # dragged by its inside: the file and the running pipeline follow
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    w, h = canvas.size["width"], canvas.size["height"]
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(-0.35 * w), int(-0.35 * h)
    ).click_and_hold().move_by_offset(int(0.1 * w), int(0.05 * h)).release().perform()  # from (0.15, 0.15)
    browser.find_element(By.ID, "save-zones").click()
    wait_for("the moved mask saved", lambda: _masks_in_file(gateway)["shop-sign"]["polygon"][0][0] > 0.1)
    assert _masks_in_file(gateway)["shop-sign"]["polygon"][0] == pytest.approx([0.15, 0.1], abs=0.03)
    assert _running_masks(gateway)["shop-sign"][0][0] == pytest.approx([0.15, 0.1], abs=0.03)

    # a two-corner mask is refused by name, and nothing changes
    before, pipeline = gateway.config_file.read_bytes(), cam.pipeline
    browser.find_element(By.ID, "new-mask").click()
    _click_at(browser, canvas, [(0.6, 0.1), (0.7, 0.2)])
    browser.find_element(By.ID, "finish-zone").click()
    browser.find_element(By.ID, "save-zones").click()
    wait_for(
        "the refusal",
        lambda: (
            "error" in message.get_attribute("class")
            and "mask mask-2: polygon: a mask polygon needs at least 3 corners" in message.text
        ),
    )
    assert gateway.config_file.read_bytes() == before and cam.pipeline is pipeline
    browser.find_element(By.ID, "delete-zone").click()  # the refused mask is still selected

    # repeated mask ids pass each mask's own check but not the whole config's: refused by name
    put = """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: "PUT", headers: {"Content-Type": "application/json",
            "X-CSRF-Token": session.csrf}, body: JSON.stringify(arguments[1])})
            .then(async (r) => done([r.status, await r.json()]));
    """
    square = [[0.6, 0.1], [0.7, 0.1], [0.7, 0.2]]
    body = {"zones": [], "masks": [{"id": "twice", "polygon": square}, {"id": "twice", "polygon": square}]}
    status, reply = browser.execute_async_script(put, f"/api/cameras/{CAMERA}/zones", body)
    assert status == 400 and "mask ids must be unique, repeated: twice" in reply["error"], reply
    assert gateway.config_file.read_bytes() == before and cam.pipeline is pipeline

    # deleted from the list: gone from the file and the running pipeline
    browser.find_element(By.CSS_SELECTOR, '#mask-list li[data-mask="shop-sign"]').click()
    browser.find_element(By.ID, "delete-zone").click()
    browser.find_element(By.ID, "save-zones").click()
    wait_for("the deletion saved", lambda: "masks: none;" in message.text)
    assert _masks_in_file(gateway) == {} and cam.pipeline.masks.areas == []
    assert _zone_ids_in_file(gateway) == zones
