"""The web part: the commissioning page served on the agent's own event loop (aiohttp).

Off unless ``[web] enabled``. A password file that cannot be used, or a port that is taken, is
logged and leaves the page off (or retried by the supervisor); the rest of the agent runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from .app import WebState, make_app
from .auth import PasswordFileError, Sessions, read_password
from .live import LiveView

log = logging.getLogger(__name__)

SAMPLE_S = 2.0


def _state(ctx: Any) -> WebState | None:
    return getattr(ctx, "web", None)


async def setup(ctx: Any) -> None:
    config = ctx.config.web
    if not config.enabled:
        return
    assert config.password_file is not None  # the config section requires it when enabled
    try:
        password = read_password(config.password_file)
    except PasswordFileError as exc:
        log.error("the commissioning page is off: %s", exc)
        return
    state = WebState(ctx, Sessions(password, config.session_minutes * 60), tls=config.tls_cert is not None)
    state.fps = config.live_fps
    executor = ThreadPoolExecutor(1, thread_name_prefix="web-jpeg")
    vision = getattr(ctx, "vision", None)
    for cam in vision.cameras if vision is not None else []:
        if cam.pipeline is not None:
            state.live[cam.config.id] = LiveView(cam, executor, config.live_width, config.unblurred)
    uplink = getattr(ctx, "uplink", None)
    if uplink is not None:
        uplink.outbox.add_listener(state.feed.on_commit)
    if config.unblurred:
        log.warning("web.unblurred is set: the live view and zone editor show people unblurred")
    ctx.web = state
    ctx.web_executor = executor


def _tls(ctx: Any) -> ssl.SSLContext | None:
    config = ctx.config.web
    if config.tls_cert is None:
        return None
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(config.tls_cert, config.tls_key)
    return tls


async def run(ctx: Any) -> None:
    state = _state(ctx)
    if state is None:
        await ctx.stopping.wait()
        return
    config = ctx.config.web
    runner = web.AppRunner(make_app(state), shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, ssl_context=_tls(ctx))
        await site.start()
        for address in runner.addresses:
            host, port = address[0], address[1]
            state.url = f"{'https' if state.tls else 'http'}://{host}:{port}/"
            log.info("commissioning page on %s", state.url)
        while not ctx.stopping.is_set():
            state.samples.take(ctx.health.snapshot())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.stopping.wait(), SAMPLE_S)
    finally:
        await runner.cleanup()


async def close(ctx: Any) -> None:
    state = _state(ctx)
    if state is None:
        return
    uplink = getattr(ctx, "uplink", None)
    if uplink is not None:
        uplink.outbox.remove_listener(state.feed.on_commit)
    ctx.web_executor.shutdown(wait=False, cancel_futures=True)
