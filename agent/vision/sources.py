"""Camera sources through OpenCV: files, image folders, RTSP/HTTP streams and USB cameras.

A live source runs one capture thread that keeps only the newest frame: when inference is slower
than the camera, stale frames are dropped, never queued, so latency stays bounded. Lost or stalled
streams reconnect with exponential backoff and jitter. An offline source (``edge-agent run``, tests)
instead yields every sampled frame in order, timed by the video's own clock, so results repeat.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..backoff import Backoff
from ..events import now_ms
from .frames import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "tcp://", "udp://", "srt://")


class SourceError(RuntimeError):
    """A source that cannot be opened; the message names it and says what to check."""


@dataclass
class SourceCounters:
    read: int = 0  # frames decoded from the source
    sampled: int = 0  # frames kept by the fps sampler
    dropped: int = 0  # sampled frames replaced by a newer one before anyone took them
    stalls: int = 0  # no frame for stall_timeout_s
    reconnects: int = 0
    connected: bool = False
    last_error: str = ""

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def source_kind(spec: str) -> str:
    """``stream``, ``usb``, ``folder`` or ``file``; raises SourceError for a local path that is absent."""
    if spec.startswith(STREAM_SCHEMES):
        return "stream"
    if spec.startswith("usb:"):
        if not spec[4:].isdigit():
            raise SourceError(f"{spec!r}: a USB camera is written usb:N with N its index, e.g. usb:0")
        return "usb"
    path = Path(spec)
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "file"
    raise SourceError(f"{spec!r}: no such file or folder, and not an rtsp://, http:// or usb:N source")


def folder_images(folder: Path) -> list[Path]:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise SourceError(f"{folder}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def open_capture(spec: str, kind: str, timeout_s: float = 10.0) -> cv2.VideoCapture:
    if kind == "usb":
        cap = cv2.VideoCapture(int(spec[4:]))
        with contextlib.suppress(cv2.error):
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # V4L2: do not let the driver queue old frames
    else:
        ms = int(timeout_s * 1000)
        # Timeouts make a dead stream return from grab() instead of blocking the thread forever.
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        cap = cv2.VideoCapture(spec, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"{spec}: cannot open the video source (check the address, credentials and codec)")
    return cap


def offline_frames(spec: str, fps: float, loop: bool = False) -> Iterator[Frame]:
    """Every frame of a file or folder sampled at ``fps``, timed by the media's own clock."""
    kind = source_kind(spec)
    if kind == "folder":
        images = folder_images(Path(spec))
        seq = 0
        while True:
            for path in images:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    log.warning("%s: not a readable image; skipped", path)
                    continue
                t = seq / fps
                seq += 1
                yield Frame(image, seq, t, now_ms())
            if not loop:
                return
    if kind != "file":
        raise SourceError(f"{spec}: only files and folders can be read offline; streams are live")
    period = 1.0 / fps
    offset = 0.0
    seq = 0
    while True:
        cap = open_capture(spec, kind)
        native = cap.get(cv2.CAP_PROP_FPS) or 25.0
        if not 1.0 <= native <= 240.0:
            native = 25.0
        next_t, index, last_t = 0.0, 0, 0.0
        try:
            while cap.grab():
                t = offset + index / native  # frame index, not CAP_PROP_POS_MSEC: some containers lie
                index += 1
                seq += 1
                last_t = t
                if t + 1e-9 < next_t:
                    continue
                ok, image = cap.retrieve()
                if not ok:
                    continue
                next_t = t + period
                yield Frame(image, seq, t, now_ms())
        finally:
            cap.release()
        if not loop or index == 0:
            return
        offset = last_t + 1.0 / native


@dataclass
class _Slot:
    frame: Frame | None = None
    taken: bool = True


class LiveSource:
    """A camera read by its own thread; ``latest()`` returns the newest frame not yet taken."""

    def __init__(
        self,
        spec: str,
        fps: float,
        loop: bool = True,
        stall_timeout_s: float = 10.0,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 2.0,
        name: str = "",
        replay: bool = False,
    ) -> None:
        self.spec = spec
        self.kind = source_kind(spec)
        # Replay (files and folders): every sampled frame, timed by the media's clock, as fast as the
        # consumer takes them; the thread decodes the next frame while the current one is inferred.
        self.replay = replay and self.kind in ("file", "folder")
        self.fps = fps
        self.loop = loop
        self.stall_timeout_s = stall_timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.name = name or spec
        self.counters = SourceCounters()
        self.finished = threading.Event()  # a file or folder played once has ended
        self._slot = _Slot()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._media_offset = 0.0  # media time at the start of the current pass (looped files)
        self._last_frame_at = time.monotonic()
        self._down_since: float | None = None  # the source has failed to open since then

    def __enter__(self) -> LiveSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.stall_timeout_s + 5)

    def latest(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not returned before; waits up to ``timeout`` seconds for one."""
        with self._cond:
            if self._slot.taken:
                self._cond.wait_for(
                    lambda: not self._slot.taken or self._stop.is_set() or self.finished.is_set(), timeout
                )
            if self._slot.taken:
                return None
            self._slot.taken = True
            self._cond.notify_all()  # a replaying capture thread waits for the slot to be taken
            return self._slot.frame

    def seconds_since_frame(self) -> float:
        return time.monotonic() - self._last_frame_at

    # --- capture thread ---

    def _publish(self, image: np.ndarray, media_t: float = 0.0) -> None:
        self._seq += 1
        self._last_frame_at = time.monotonic()
        frame = Frame(image, self._seq, media_t if self.replay else self._last_frame_at, now_ms())
        with self._cond:
            if self.replay:
                self._cond.wait_for(lambda: self._slot.taken or self._stop.is_set())
            if not self._slot.taken:
                self.counters.dropped += 1
            self._slot = _Slot(frame, taken=False)
            self._cond.notify_all()

    def _run(self) -> None:
        backoff = Backoff(
            first=self.reconnect_min_s,
            most=self.reconnect_max_s,
            jitter=(0.5, 1.0),
            healthy_after_s=2 * self.reconnect_max_s,
        )
        first = True
        told = 0.0  # when the log last said it is still down
        while not self._stop.is_set():
            if not first:
                self.counters.reconnects += 1
            first = False
            started = time.monotonic()
            try:
                played_out = self._play_folder() if self.kind == "folder" else self._play_capture()
            except SourceError as exc:
                self.counters.last_error = str(exc)
                # Retried every couple of seconds while down: said once, then once a minute
                now = time.monotonic()
                if self._down_since is None:
                    self._down_since = told = now
                    log.warning("camera %s: %s", self.name, exc)
                elif now - told >= 60.0:
                    told = now
                    log.warning(
                        "camera %s: still down after %.0f s: %s", self.name, now - self._down_since, exc
                    )
                else:
                    log.debug("camera %s: %s", self.name, exc)
                played_out = False
            except Exception as exc:  # OpenCV raises cv2.error for broken streams; keep trying
                self.counters.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("camera %s: capture failed", self.name)
                played_out = False
            self.counters.connected = False
            if played_out and not self.loop:
                self.finished.set()
                with self._cond:
                    self._cond.notify_all()
                return
            if played_out:
                backoff.reset()
                continue
            backoff.ran(time.monotonic() - started)  # it ran for a while: a new failure, not a crash loop
            wait = backoff.next()
            log.debug("camera %s: reconnecting in %.1f s", self.name, wait)
            self._stop.wait(wait)

    def _play_capture(self) -> bool:
        """Read until the source ends (True, files) or fails or stalls (False)."""
        cap = open_capture(self.spec, self.kind, self.stall_timeout_s)
        self.counters.connected = True
        if self._down_since is not None:
            log.info(
                "camera %s: connected again after %.1f s down", self.name, time.monotonic() - self._down_since
            )
            self._down_since = None
        self.counters.last_error = ""
        period = 1.0 / self.fps
        native = cap.get(cv2.CAP_PROP_FPS) or 25.0
        native = native if 1.0 <= native <= 240.0 else 25.0
        # Files are played at their own speed so they behave like the camera they stand in for.
        pace = 1.0 / native if self.kind == "file" and not self.replay else 0.0
        next_at = 0.0 if self.replay else time.monotonic()
        index = 0
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                if not cap.grab():
                    if self.kind == "file":
                        self._media_offset += index / native
                        return True
                    self.counters.stalls += 1
                    self.counters.last_error = "stream stopped delivering frames"
                    return False
                self.counters.read += 1
                media_t = self._media_offset + index / native
                index += 1
                now = media_t if self.replay else t0
                if now + 1e-9 >= next_at:
                    ok, image = cap.retrieve()
                    if ok:
                        next_at = max(next_at + period, now - period) if not self.replay else now + period
                        self.counters.sampled += 1
                        self._publish(image, media_t)
                if pace:
                    self._stop.wait(max(0.0, pace - (time.monotonic() - t0)))
            return False
        finally:
            cap.release()

    def _play_folder(self) -> bool:
        images = folder_images(Path(self.spec))
        self.counters.connected = True
        period = 1.0 / self.fps
        for path in images:
            if self._stop.is_set():
                return False
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            self.counters.read += 1
            if image is None:
                log.warning("%s: not a readable image; skipped", path)
                continue
            self.counters.sampled += 1
            self._publish(image, self._media_offset)
            self._media_offset += period
            if not self.replay:
                self._stop.wait(period)
        return True
