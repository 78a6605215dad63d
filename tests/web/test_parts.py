"""The commissioning page's pieces without a browser: its config, its guard over HTTP (sessions,
rate-limited logins, bounded bodies) and the live view's privacy blur."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from webbench import self_signed

from agent.commands import CommandRegistry
from agent.config import ConfigError, parse_config
from agent.config.camera import CameraConfig
from agent.vision.camera import Camera
from agent.vision.detections import Detections
from agent.vision.engine import ModelEngine, load_engine
from agent.vision.frames import Frame
from agent.vision.pipeline import CameraPipeline, FrameResult
from agent.web.app import WebState, make_app
from agent.web.auth import CHANGES_BURST, FAILURES_PER_MINUTE, PasswordFileError, Sessions, read_password
from agent.web.feed import HealthSamples
from agent.web.live import LiveView
from agent.web.zones import ZoneError, checked, checked_lines, checked_masks
from models.pipeline.footage import OPENCV_DATA

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

    cert, key, _ = self_signed(tmp_path)
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
    with pytest.raises(ZoneError, match="line gate: points: a counting line needs exactly 2 points, not 3"):
        checked_lines([{"id": "gate", "points": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1]]}])
    with pytest.raises(ZoneError, match="line number 2: id"):
        checked_lines([{"id": "a", "points": [[0.1, 0.1], [0.5, 0.5]]}, {"points": [[0.1, 0.1], [0.5, 0.5]]}])
    assert checked_lines([{"id": "a", "points": [[0.1, 0.1], [0.5, 0.5]], "classes": None}]) == [
        {"id": "a", "points": [[0.1, 0.1], [0.5, 0.5]]}
    ]
    assert checked([{"id": "z", "polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1]], "area_m2": None}]) == [
        {"id": "z", "polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1]]}
    ]


def test_invalid_masks_name_the_mask() -> None:
    """A mask is checked as a zone is, by its own model, so the page's message names it."""
    square = [[0.1, 0.1], [0.3, 0.1], [0.3, 0.3]]
    with pytest.raises(ZoneError, match="mask sign: polygon: a mask polygon needs at least 3 corners"):
        checked_masks([{"id": "sign", "polygon": [[0.1, 0.1], [0.2, 0.2]]}])
    with pytest.raises(ZoneError, match="mask number 2: id"):
        checked_masks([{"id": "a", "polygon": square}, {"id": "", "polygon": square}])
    with pytest.raises(ZoneError, match=r"mask sign: polygon: corner \(1.5, 0.1\) is outside the image"):
        checked_masks([{"id": "sign", "polygon": [[1.5, 0.1], [0.3, 0.1], [0.3, 0.3]]}])
    with pytest.raises(ZoneError, match="mask sign: colour: Extra inputs are not permitted"):
        checked_masks([{"id": "sign", "polygon": square, "colour": "grey"}])
    with pytest.raises(ZoneError, match="mask sign: at most 64 corners"):
        checked_masks([{"id": "sign", "polygon": [[0.5, 0.5]] * 65}])
    with pytest.raises(ZoneError, match="'masks' must be a list of masks"):
        checked_masks({"id": "sign"})
    with pytest.raises(ZoneError, match="at most 64 masks per camera"):
        checked_masks([{"id": f"m{i}", "polygon": square} for i in range(65)])
    assert checked_masks([{"id": "sign", "polygon": square, "classes": ["illegal_ad"]}]) == [
        {"id": "sign", "polygon": square, "classes": ["illegal_ad"]}
    ]


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def nanodet() -> ModelEngine:
    return load_engine(ROOT / "models" / "nanodet-coco")


def _camera(nanodet: ModelEngine | None, camera: dict[str, Any] | None = None, **snapshots: Any) -> Camera:
    """A real camera with nanodet-coco's pipeline (or none) and the shipped face model by default."""
    config = CameraConfig(id="cam-1", source="x.mp4", models=["m"], snapshots=snapshots, **(camera or {}))
    return Camera(config, CameraPipeline(config, [nanodet]) if nanodet is not None else None)


def _noise_frame(found: list[Any], inferred: bool = True) -> tuple[Frame, FrameResult]:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)  # detail everywhere: noise
    frame = Frame(image, 1, 0.0, 0)
    return frame, FrameResult(frame, inferred, [], found, None, {})


PERSON = [(Detections.of([(0.25, 0.25, 0.5, 0.75)], [0.9], [0]), ["person", "car"])]


def _detail(image: np.ndarray) -> float:
    """Mean difference of neighbouring pixels: noise is far above 40, a pixelated blur below 5."""
    return float(np.abs(np.diff(image.astype(float), axis=1)).mean())


async def _shown(live: LiveView, *offers: tuple[Frame, FrameResult]) -> tuple[np.ndarray, str, str]:
    with live.watching():
        assert live.camera.viewers == 1 and live.camera.show == live.offer
        for frame, result in offers:
            live.offer(frame, result)
        shown = await live.next(len(offers) - 1, 1.0)
        assert shown is not None and shown.number == len(offers)
        jpeg = await live.jpeg(shown, annotated=False)
    assert live.camera.viewers == 0
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), shown.privacy, shown.reason


@pytest.mark.parametrize("unblurred", [False, True])
async def test_live_view_blurs_people_unless_told_not(nanodet: ModelEngine, unblurred: bool) -> None:
    live = LiveView(_camera(nanodet), ThreadPoolExecutor(1), width=960, unblurred=unblurred)
    image, privacy, _ = await _shown(live, _noise_frame(PERSON))
    inside = _detail(image[70:170, 90:150])  # well within the person's box
    assert _detail(image[10:50, 200:300]) > 40  # noise elsewhere stays noise
    if unblurred:
        assert inside > 40 and privacy == "unblurred"
    else:
        assert inside < 5 and privacy == "blurred"
    assert live.encoded == 1


async def test_a_person_the_detector_just_lost_stays_blurred(nanodet: ModelEngine) -> None:
    live = LiveView(_camera(nanodet), ThreadPoolExecutor(1), width=960, unblurred=False)
    lost = _noise_frame([(Detections.empty(), ["person", "car"])])
    image, privacy, _ = await _shown(live, _noise_frame(PERSON), lost)  # the next frame: missed
    assert privacy == "blurred" and _detail(image[70:170, 90:150]) < 5


def _street_frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(OPENCV_DATA / "vtest.avi"))
    for _ in range(200):  # a few seconds in: people on the square
        ok, image = cap.read()
        assert ok, "OpenCV's vtest.avi is missing: install Debian's opencv-doc (scripts/setup.sh)"
    cap.release()
    return image


@pytest.mark.parametrize(
    ("inferred", "camera"),
    [
        (False, {}),  # the motion gate let the frame through uninferred: its detections are stale
        (True, {"model_labels": {"nanodet-coco": ["vehicle"]}}),  # the camera's rules take no people
        (True, {"tracker": {"high_confidence": 0.9}}),  # weak people are not tracked, so not given
    ],
)
async def test_people_the_pipeline_cannot_vouch_for_are_found_by_the_detector_here(
    nanodet: ModelEngine, inferred: bool, camera: dict[str, Any]
) -> None:
    """No people are given with the frame, and the pipeline's detections cannot vouch for it; the
    live view runs the detector on the frame itself and blurs whom it finds."""
    image = _street_frame()
    dets = nanodet.infer(image, nanodet.preprocessor())
    assert isinstance(dets, Detections)
    people = [dets.xyxy[i] for i in range(len(dets)) if int(dets.class_id[i]) == 0]
    assert len(people) >= 3, "the detector must see people on the square, or this test proves nothing"
    frame = Frame(image, 1, 0.0, 0)
    stale = FrameResult(frame, inferred, [], [(Detections.empty(), nanodet.manifest.labels)], None, {})
    live = LiveView(_camera(nanodet, camera), ThreadPoolExecutor(1), width=960, unblurred=False)
    out, privacy, _ = await _shown(live, (frame, stale))
    assert privacy == "blurred"
    h, w = out.shape[:2]
    for x1, y1, x2, y2 in people:
        a, b, c, d = int(x1 * w), int(y1 * h), int(x2 * w), int(y2 * h)
        before = _detail(image[b:d, a:c])
        assert _detail(out[b:d, a:c]) < before / 2, (x1, y1, x2, y2)
    # the pavement far from anyone keeps its detail
    assert abs(_detail(out[-40:, :80]) - _detail(image[-40:, :80])) < 3


async def test_an_inferred_frame_is_vouched_for_by_its_own_detections(nanodet: ModelEngine) -> None:
    """The pipeline inferred this frame with people kept and tracked: the detector does not run
    again, so what it was given decides (here: nobody, on a frame full of people)."""
    image = _street_frame()
    frame = Frame(image, 1, 0.0, 0)
    given = FrameResult(frame, True, [], [(Detections.empty(), nanodet.manifest.labels)], None, {})
    live = LiveView(_camera(nanodet), ThreadPoolExecutor(1), width=960, unblurred=False)
    runs = nanodet.stats.runs
    _, privacy, _ = await _shown(live, (frame, given))
    assert privacy == "blurred" and nanodet.stats.runs == runs


@pytest.mark.parametrize("problem", ["missing", "broken"])
async def test_without_a_working_face_model_the_frame_is_withheld(
    nanodet: ModelEngine, tmp_path: Path, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    face_model = tmp_path / "blazeface.onnx"
    if problem == "broken":
        face_model.write_bytes(b"not an onnx file")
    live = LiveView(_camera(nanodet, face_model=face_model), ThreadPoolExecutor(1), 960, False)
    with caplog.at_level(logging.WARNING, "agent.web.live"):
        image, privacy, reason = await _shown(live, _noise_frame(PERSON))
    assert privacy == "withheld" and "face model" in reason
    assert _detail(image[10:50, 200:300]) < 5, "the whole frame is pixelated, not only the person"
    assert "live view is withheld" in caplog.text and str(face_model) in caplog.text


async def test_a_camera_no_model_of_which_detects_people_is_withheld() -> None:
    live = LiveView(_camera(None), ThreadPoolExecutor(1), width=960, unblurred=False)
    image, privacy, reason = await _shown(live, _noise_frame(PERSON))
    assert privacy == "withheld" and "detects people" in reason
    assert _detail(image[10:50, 200:300]) < 5
    # an explicit setting (logged at start) shows it all the same
    live = LiveView(_camera(None), ThreadPoolExecutor(1), width=960, unblurred=True)
    image, privacy, _ = await _shown(live, _noise_frame(PERSON))
    assert privacy == "unblurred" and _detail(image[10:50, 200:300]) > 40


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
