"""The commissioning page's routes: login, the page itself, its JSON API and the MJPEG streams.

Every route but the login form answers 401 (API, streams) or redirects to the login (pages) without
a session; every state-changing request also needs the session's CSRF token in a header.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web

from ..commands import CommandError
from .auth import CHANGES_PER_S, COOKIE, CSRF_HEADER, Session, Sessions
from .feed import Feed, HealthSamples
from .live import LiveView, Shown
from .zones import ZoneError, save_zones

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # the largest request: a camera's zones as JSON
PUBLIC = {"/login", "/static/style.css"}
STATIC = {"index.html", "login.html", "app.js", "style.css"}
FRAME_WAIT_S = 5.0
PRIVACY_HEADER = "X-Privacy"  # blurred, unblurred or withheld: what the frame shows
STREAM_IDLE_S = 2.0  # a stream re-checks for a stop this often while its camera sends nothing


@dataclass
class WebState:
    ctx: Any
    sessions: Sessions
    tls: bool
    live: dict[str, LiveView] = field(default_factory=dict)
    feed: Feed = field(default_factory=Feed)
    samples: HealthSamples = field(default_factory=HealthSamples)
    fps: float = 4.0
    url: str = ""  # where it listens, once started
    saving: asyncio.Lock = field(default_factory=asyncio.Lock)


STATE = web.AppKey("state", WebState)


def _asset(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _session(request: web.Request) -> Session | None:
    return request.app[STATE].sessions.get(request.cookies.get(COOKIE))


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Nothing without a session; nothing changed without its CSRF token."""
    if request.path in PUBLIC:
        return await handler(request)
    session = _session(request)
    if session is None:
        if request.path.startswith("/api/"):
            return _error(401, "not logged in: log in at /login first")
        raise web.HTTPFound("/login")
    if request.method not in ("GET", "HEAD"):
        if not hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(), session.csrf.encode()):
            return _error(403, f"missing or wrong {CSRF_HEADER} header: reload the page")
        if not session.may_change():
            return _error(429, f"more than {CHANGES_PER_S:g} changes a second: wait a moment")
    return await handler(request)


async def login_page(request: web.Request) -> web.Response:
    return web.Response(body=_asset("login.html"), content_type="text/html")


def _login_form(message: str, status: int) -> web.Response:
    page = _asset("login.html").replace(b"<!--message-->", f'<p class="error">{message}</p>'.encode())
    return web.Response(body=page, content_type="text/html", status=status)


async def login(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    peer = request.remote or "?"
    if not state.sessions.may_try(peer):
        log.warning("web: login attempts from %s paused after repeated wrong passwords", peer)
        return _login_form("Too many wrong passwords: wait a minute, then try again.", 429)
    form = await request.post()
    password = form.get("password")
    if not isinstance(password, str) or not state.sessions.check_password(password):
        state.sessions.failed(peer)
        log.warning("web: wrong password from %s", peer)
        return _login_form("Wrong password.", 401)
    session = state.sessions.open()
    log.info("web: login from %s", peer)
    response = web.HTTPFound("/")
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=int(state.sessions.lifetime_s),
        httponly=True,
        samesite="Strict",
        secure=state.tls,
        path="/",
    )
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    request.app[STATE].sessions.close(request.cookies.get(COOKIE))
    response = web.HTTPFound("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def page(request: web.Request) -> web.Response:
    return web.Response(body=_asset("index.html"), content_type="text/html")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        return _error(404, f"no asset {name}")
    kinds = {"js": "text/javascript", "css": "text/css", "html": "text/html"}
    return web.Response(body=_asset(name), content_type=kinds[name.rsplit(".", 1)[1]])


async def session_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ctx = state.ctx
    session = _session(request)
    assert session is not None  # the guard let the request through
    boards = getattr(ctx, "boards", None)
    return web.json_response(
        {
            "device": ctx.config.device.id,
            "cameras": sorted(state.live),
            "boards": sorted(boards.sessions) if boards is not None else [],
            "csrf": session.csrf,
            "unblurred": ctx.config.web.unblurred,
        }
    )


def _live(request: web.Request) -> LiveView:
    camera = request.match_info["camera"]
    live = request.app[STATE].live.get(camera)
    if live is None:
        raise web.HTTPNotFound(
            text=f'{{"error": "no running camera {camera!r}"}}', content_type="application/json"
        )
    return live


async def stream(request: web.Request) -> web.StreamResponse:
    """MJPEG (multipart/x-mixed-replace) of the annotated frames, at most web.live_fps."""
    state = request.app[STATE]
    live = _live(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "multipart/x-mixed-replace; boundary=frame",
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    if live.unblurred:
        log.warning(
            "web: unblurred live view of camera %s opened from %s", live.camera.config.id, request.remote
        )
    period = 1.0 / state.fps
    shown_number = 0
    with live.watching():
        while not state.ctx.stopping.is_set():
            started = asyncio.get_running_loop().time()
            shown = await live.next(shown_number, STREAM_IDLE_S)
            if shown is None:
                continue
            shown_number = shown.number
            jpeg = await live.jpeg(shown, annotated=True)
            head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
            head += f"{PRIVACY_HEADER}: {shown.privacy}\r\n\r\n"
            try:
                await response.write(head.encode() + jpeg + b"\r\n")
            except (ConnectionResetError, RuntimeError):
                break  # the viewer went away
            wait = period - (asyncio.get_running_loop().time() - started)
            if wait > 0:
                await asyncio.sleep(wait)
    return response


async def frame(request: web.Request) -> web.Response:
    """The camera's current frame, blurred but not annotated: the zone editor's background."""
    live = _live(request)
    with live.watching():
        shown = await live.next(live.latest.number if live.latest else 0, FRAME_WAIT_S)
    shown = shown or live.latest
    if shown is None:
        return _error(503, f"camera {live.camera.config.id} sent no frame within {FRAME_WAIT_S:.0f} s")
    live.still = shown
    jpeg = await live.jpeg(shown, annotated=False)
    return web.Response(
        body=jpeg,
        content_type="image/jpeg",
        headers={"Cache-Control": "no-store", PRIVACY_HEADER: shown.privacy, **_reason(shown)},
    )


def _reason(shown: Shown) -> dict[str, str]:
    # header values are one line of Latin-1: the reason's own text is the log's, this is a hint
    text = shown.reason.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")
    return {f"{PRIVACY_HEADER}-Reason": text[:200]} if text else {}


async def detections(request: web.Request) -> web.Response:
    """What the pipeline found in the frame the zone editor shows (the last frame.jpg)."""
    live = _live(request)
    shown = live.still
    if shown is None:
        return _error(503, f"load /api/cameras/{live.camera.config.id}/frame.jpg first")
    objects = []
    for dets, classes in shown.result.found:
        for i in range(len(dets)):
            cid = int(dets.class_id[i])
            objects.append(
                {
                    "label": classes[cid] if cid < len(classes) else str(cid),
                    "box": [float(v) for v in dets.xyxy[i]],  # unrounded: border cases as the agent
                    "confidence": round(float(dets.confidence[i]), 3),
                    "track": int(dets.tracker_id[i]),
                }
            )
    return web.json_response({"frame": shown.number, "objects": objects})


async def get_zones(request: web.Request) -> web.Response:
    live = _live(request)
    config = live.camera.config
    zones = [z.model_dump(mode="json", exclude_none=True) for z in config.zones]
    lines = [ln.model_dump(mode="json", exclude_none=True) for ln in config.lines]
    masks = [m.model_dump(mode="json", exclude_none=True) for m in config.masks]
    return web.json_response({"camera": config.id, "zones": zones, "lines": lines, "masks": masks})


async def put_zones(request: web.Request) -> web.Response:
    live = _live(request)
    try:
        body = await request.json()
    except ValueError:
        return _error(400, 'the body must be JSON: {"zones": [...], "lines": [...], "masks": [...]}')
    if not isinstance(body, dict) or "zones" not in body:
        return _error(400, "the body must be a map with 'zones', a list of zones (and 'lines', 'masks')")
    try:
        state = request.app[STATE]
        camera = live.camera.config.id
        reply = await save_zones(
            state.ctx, camera, body["zones"], state.saving, body.get("lines"), body.get("masks")
        )
    except ZoneError as exc:
        return _error(400, str(exc))
    return web.json_response(reply)


async def boards(request: web.Request) -> web.Response:
    state = request.app[STATE]
    link = state.ctx.health.snapshot().get("boards") or {}
    return web.json_response({"boards": state.feed.boards(link)})


async def lamp(request: web.Request) -> web.Response:
    state = request.app[STATE]
    board = request.match_info["board"]
    try:
        body = await request.json()
    except ValueError:
        return _error(400, 'the body must be JSON: {"level": 0.5}')
    level = body.get("level") if isinstance(body, dict) else None
    try:
        command = state.ctx.commands.get("board-lamp")
        result = await command.handler({"board": board, "level": level})
    except CommandError as exc:
        return _error(400, exc.message)
    log.info("web: lamp of board %s set to %s from %s", board, level, request.remote)
    return web.json_response(result)


async def events(request: web.Request) -> web.Response:
    kind = request.query.get("kind") or None
    try:
        limit = min(300, max(1, int(request.query.get("limit", "100"))))
    except ValueError:
        return _error(400, "limit must be a whole number")
    return web.json_response({"events": request.app[STATE].feed.last_events(kind, limit)})


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"samples": list(state.samples.samples)})


def make_app(state: WebState) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app[STATE] = state
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/session", session_info)
    app.router.add_get("/api/cameras/{camera}/live.mjpeg", stream)
    app.router.add_get("/api/cameras/{camera}/frame.jpg", frame)
    app.router.add_get("/api/cameras/{camera}/detections", detections)
    app.router.add_get("/api/cameras/{camera}/zones", get_zones)
    app.router.add_put("/api/cameras/{camera}/zones", put_zones)
    app.router.add_get("/api/boards", boards)
    app.router.add_post("/api/boards/{board}/lamp", lamp)
    app.router.add_get("/api/events", events)
    app.router.add_get("/api/health", health)
    return app
