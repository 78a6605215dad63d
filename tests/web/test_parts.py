"""The commissioning page's pieces without a browser: its config, its guard over HTTP (sessions,
rate-limited logins, bounded bodies) and the live view's privacy blur."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.commands import CommandRegistry
from agent.config import ConfigError, parse_config
from agent.config.camera import CameraConfig
from agent.vision.detections import Detections
from agent.vision.pipeline import FrameResult
from agent.vision.sources import Frame
from agent.web.app import WebState, make_app
from agent.web.auth import CHANGES_BURST, FAILURES_PER_MINUTE, PasswordFileError, Sessions, read_password
from agent.web.feed import HealthSamples
from agent.web.live import LiveView
from agent.web.zones import ZoneError, checked

PASSWORD = "a long enough password"


def test_enabled_without_a_password_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"web\.enabled needs web\.password_file"):
        parse_config({"device": {"id": "pole-1"}, "web": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"tls_cert and web\.tls_key"):
        parse_config({"device": {"id": "pole-1"}, "web": {"tls_cert": "cert.pem"}})
    config = parse_config({"device": {"id": "pole-1"}})
    assert not config.web.enabled and config.web.host == "127.0.0.1" and not config.web.unblurred


def test_password_file_must_be_readable_and_long_enough(tmp_path: Path) -> None:
    with pytest.raises(PasswordFileError, match="cannot be read"):
        read_password(tmp_path / "missing")
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(PasswordFileError, match="shorter than 8"):
        read_password(tmp_path / "short")
    (tmp_path / "ok").write_text(PASSWORD + "\n")
    assert read_password(tmp_path / "ok") == PASSWORD


def test_sessions_expire() -> None:
    sessions = Sessions(PASSWORD, lifetime_s=0.05)
    session = sessions.open()
    assert sessions.get(session.token) is session
    time.sleep(0.1)
    assert sessions.get(session.token) is None
    assert sessions.check_password(PASSWORD) and not sessions.check_password(PASSWORD + "x")


def _state(tls: bool = False) -> WebState:
    commands = CommandRegistry()

    async def lamp(args: dict[str, Any]) -> dict[str, Any]:
        return {"level": args["level"]}

    commands.register("board-lamp", lamp, mutating=True)
    ctx = SimpleNamespace(
        config=parse_config({"device": {"id": "pole-1"}}),
        boards=None,
        stopping=None,
        commands=commands,
        health=None,
    )
    return WebState(ctx, Sessions(PASSWORD, 600), tls=tls)


async def test_changes_are_rate_limited_per_session() -> None:
    async with TestClient(TestServer(make_app(_state()))) as client:
        await client.post("/login", data={"password": PASSWORD}, allow_redirects=False)
        csrf = (await (await client.get("/api/session")).json())["csrf"]
        statuses = []
        for _ in range(CHANGES_BURST + 3):
            response = await client.post(
                "/api/boards/b1/lamp", json={"level": 0.5}, headers={"X-CSRF-Token": csrf}
            )
            statuses.append(response.status)
        assert statuses[:CHANGES_BURST] == [200] * CHANGES_BURST
        assert statuses[-1] == 429


async def test_under_tls_the_cookie_is_secure(tmp_path: Path) -> None:
    from agent.web.part import _tls

    cert, key = _self_signed(tmp_path)
    config = parse_config(
        {
            "device": {"id": "pole-1"},
            "web": {"enabled": True, "password_file": "p", "tls_cert": str(cert), "tls_key": str(key)},
        }
    )
    assert _tls(SimpleNamespace(config=config)) is not None  # the pair loads
    async with TestClient(TestServer(make_app(_state(tls=True)))) as client:
        response = await client.post("/login", data={"password": PASSWORD}, allow_redirects=False)
        assert response.status == 302
        assert "Secure" in response.headers["Set-Cookie"]


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pole")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (folder / "web.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "web.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder / "web.crt", folder / "web.key"


async def test_logins_are_rate_limited_and_bodies_bounded() -> None:
    async with TestClient(TestServer(make_app(_state()))) as client:
        for _ in range(FAILURES_PER_MINUTE):
            response = await client.post("/login", data={"password": "wrong"}, allow_redirects=False)
            assert response.status == 401
        # now even the right password waits: guessing is slowed to a few tries a minute
        response = await client.post("/login", data={"password": PASSWORD}, allow_redirects=False)
        assert response.status == 429
        assert "Too many wrong passwords" in await response.text()

    async with TestClient(TestServer(make_app(_state()))) as client:
        response = await client.post("/login", data={"password": PASSWORD}, allow_redirects=False)
        assert response.status == 302 and "edge_session" in response.cookies
        morsel = response.cookies["edge_session"]
        assert morsel["httponly"] and morsel["samesite"] == "Strict"
        info = await (await client.get("/api/session")).json()
        assert info["device"] == "pole-1" and info["csrf"]
        assert PASSWORD not in str(info)
        big = b"x" * (128 * 1024)
        response = await client.post("/api/boards/b1/lamp", data=big, headers={"X-CSRF-Token": info["csrf"]})
        assert response.status == 413
        response = await client.post("/logout", headers={"X-CSRF-Token": info["csrf"]}, allow_redirects=False)
        assert response.status == 302
        assert (await client.get("/api/session")).status == 401


def test_invalid_zones_name_the_zone() -> None:
    with pytest.raises(ZoneError, match="zone gate: polygon: a zone polygon needs at least 3 corners"):
        checked([{"id": "gate", "polygon": [[0.1, 0.1], [0.2, 0.2]]}])
    with pytest.raises(ZoneError, match="zone number 1: id"):
        checked([{"id": "", "polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1]]}])
    with pytest.raises(ZoneError, match="outside the image"):
        checked([{"id": "z", "polygon": [[0.1, 0.1], [1.2, 0.2], [0.3, 0.1]]}])
    assert checked([{"id": "z", "polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1]], "area_m2": None}]) == [
        {"id": "z", "polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1]]}
    ]


def _person_frame() -> tuple[Any, Frame, FrameResult]:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)  # detail everywhere: noise
    person = Detections.of([(0.25, 0.25, 0.5, 0.75)], [0.9], [0])
    result = FrameResult(Frame(image, 1, 0.0, 0), True, [], [(person, ["person", "car"])], None, {})
    camera = SimpleNamespace(
        config=CameraConfig(id="cam-1", source="x.mp4", models=["m"]), pipeline=None, viewers=0, show=None
    )
    return camera, result.frame, result


@pytest.mark.parametrize("unblurred", [False, True])
async def test_live_view_blurs_people_unless_told_not(unblurred: bool) -> None:
    camera, frame, result = _person_frame()
    live = LiveView(camera, ThreadPoolExecutor(1), width=960, unblurred=unblurred)
    with live.watching():
        assert camera.viewers == 1 and camera.show == live.offer
        live.offer(frame, result)
        shown = await live.next(0, 1.0)
        assert shown is not None
        jpeg = await live.jpeg(shown, annotated=False)
    assert camera.viewers == 0
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    inside = image[70:170, 90:150].astype(float)  # well within the person's box
    outside = image[10:50, 200:300].astype(float)
    # pixelated and blurred: neighbouring pixels nearly equal; noise elsewhere stays noise
    inside_detail = np.abs(np.diff(inside, axis=1)).mean()
    outside_detail = np.abs(np.diff(outside, axis=1)).mean()
    assert outside_detail > 40
    if unblurred:
        assert inside_detail > 40
    else:
        assert inside_detail < 5
    assert live.encoded == 1


async def test_a_person_the_detector_just_lost_stays_blurred() -> None:
    camera, frame, result = _person_frame()
    live = LiveView(camera, ThreadPoolExecutor(1), width=960, unblurred=False)
    lost = FrameResult(frame, True, [], [(Detections.empty(), ["person", "car"])], None, {})
    with live.watching():
        live.offer(frame, result)
        live.offer(frame, lost)  # the next frame: the detector missed them
        shown = await live.next(1, 1.0)
        assert shown is not None and shown.number == 2
        jpeg = await live.jpeg(shown, annotated=False)
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(np.diff(image[70:170, 90:150].astype(float), axis=1)).mean() < 5


def test_frame_rates_come_from_counter_differences() -> None:
    samples = HealthSamples()

    def snapshot(frames: int) -> dict[str, Any]:
        running = {"state": "running", "frames": frames, "inferred": frames // 2, "infer_ms": 30.0}
        return {
            "vision": {"cameras": {"cam-1": running}},
            "outbox": {"depth": 3},
            "uplink": {"connected": True},
        }

    first = samples.take(snapshot(100))
    assert first["cameras"]["cam-1"]["fps"] is None and first["outbox_depth"] == 3
    time.sleep(0.2)
    second = samples.take(snapshot(101))
    assert 2 < second["cameras"]["cam-1"]["fps"] < 6  # one frame in about 0.2 s
    # a rebuilt pipeline counts from zero again: no negative rate
    assert samples.take(snapshot(0))["cameras"]["cam-1"]["fps"] is None
