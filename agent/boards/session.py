"""One sensor board on one serial port: handshake, time sync, readings and alarms into events, board
commands, link statistics. Reconnects by itself when the board is unplugged and replugged.

Alarms are acknowledged to the board only after the outbox has made their event durable, so an alarm
is never lost between the board and the outbox: until then the board keeps retransmitting it. A
retransmitted alarm that was already committed (its ACK was corrupted on the way back) is recognised
by the board's boot nonce and alarm id, and only acknowledged again.

The protocol itself (framing, request ids, HELLO, file transfer) is BoardClient's (client.py), which
edgectl speaks through too; the session decides what the board's frames mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from firmware.streetfw import wire

from ..backoff import Backoff
from ..clock import clock_synchronized
from ..config.board import BoardConfig
from ..events import (
    ALARM,
    END,
    READING,
    SENSOR_FAULT,
    START,
    THRESHOLD_SUFFIX,
    Event,
    now_ms,
    threshold_alarm_code,
)
from ..logs import untrusted
from ..sink import EventSink
from .client import BoardClient, BoardError, Frame
from .link import LinkClosed, SerialLink

log = logging.getLogger(__name__)

# Ten short tries rather than five long ones (same 10 s in all): on a line with a bit-error rate of
# 1e-3 a HELLO exchange gets through about one time in four.
HELLO_TIMEOUT_S = 1.0
HELLO_TRIES = 10
# Per sensor. A describe is a small frame the board answers in milliseconds, so on a noisy line many
# quick tries beat a few patient ones (a retry reuses the id: the board answers it from its cache).
DESCRIBE_TRIES = 12
DESCRIBE_TIMEOUT_S = 0.5
PING_INTERVAL_S = 5.0
SILENCE_S = 20.0  # nothing from the board for this long: the link is considered dead and reopened
COMMAND_TIMEOUT_S = 2.0
COMMAND_TRIES = 3
EARLY_MAX = 256  # frames kept while waiting for a connection's HELLO
SEEN_ALARMS = 512  # (boot, alarm id, phase) remembered to recognise retransmissions
SEVERITIES = ("info", "warning", "critical")
# Frames waiting for the outbox. A board that sends faster than the outbox commits (a flood, a
# bug) loses its oldest readings, counted in health; alarms and replies go first and are bounded
# too: an alarm dropped here was not acknowledged, so the board sends it again.
READING_BACKLOG = 512
URGENT_BACKLOG = 1024
MAP_BODIES = {wire.READING, wire.ALARM, wire.RESULT, wire.PONG, wire.HELLO, wire.LOG}


def alarm_event_id(board: str, boot: int, alarm_id: int, phase: str) -> bytes:
    """The event id of a board alarm's start or end, derived from what identifies it on the board, so
    an end refers to its start across agent restarts, and a start sent twice (its ACK lost while the
    agent restarted) carries the same id both times: consumers deduplicate on event ids."""
    key = f"{board}\x00{boot}\x00{alarm_id}\x00{phase}".encode()
    return hashlib.sha256(b"board-alarm\x00" + key).digest()[:16]


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def alarm_fields(
    key: str, value: Any, threshold: Any, sensor_units: dict[str, Any]
) -> tuple[str, dict[str, float] | None, dict[str, str] | None]:
    """Code, ``val`` and ``u`` of a board alarm, as docs/events.md lists them.

    A threshold alarm is ``<quantity>_high`` with the value and ``<quantity>_threshold``, both in the
    quantity's unit; ``sensor_fault`` carries the consecutive failed reads as ``failed_reads``.
    """
    number, th = _number(value), _number(threshold)
    if key == SENSOR_FAULT:
        return SENSOR_FAULT, ({"failed_reads": number} if number is not None else None), None
    values: dict[str, float] = {}
    units: dict[str, str] = {}
    unit = sensor_units.get(key)
    for name, v in ((key, number), (key + THRESHOLD_SUFFIX, th)):
        if v is not None:
            values[name] = v
            if unit is not None:
                units[name] = str(unit)
    return threshold_alarm_code(key), values or None, units or None


@dataclass
class LinkStats:
    connected: bool = False
    connects: int = 0
    frames_good: int = 0
    frames_corrupt: int = 0
    frames_rejected: int = 0  # valid frames with a body that makes no sense
    readings: int = 0
    alarms: int = 0
    alarm_retransmits: int = 0  # alarms received again (their ACK was lost)
    readings_dropped: int = 0  # readings that came faster than the outbox could take them
    frames_dropped: int = 0  # other frames dropped for the same reason (alarms are sent again)
    command_retries: int = 0
    rtt_ms: float | None = None
    rtt_max_ms: float | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    last_error: str = ""
    board_log: str = ""  # the board's latest warning or error log line, for `edgectl board monitor`


@dataclass
class BoardInfo:
    """What the board said about itself in its HELLO."""

    board_id: str
    firmware: str
    boot: int
    sensors: dict[str, dict[str, Any]]
    caps: list[str]
    lamp: float | None
    errors: list[str]
    mpy: int | str | None = None  # its MicroPython's bytecode version (sys.implementation._mpy)


class BoardSession:
    def __init__(self, config: BoardConfig, sink: EventSink) -> None:
        self.config = config
        self.sink = sink
        self.stats = LinkStats()
        self.info: BoardInfo | None = None
        self._early: list[Frame] = []
        self._link: SerialLink | None = None
        self._client = BoardClient(
            f"board {config.id}",
            on_frames=self._queue,
            on_retry=self._retried,
            timeout_s=COMMAND_TIMEOUT_S,
            tries=COMMAND_TRIES,
        )
        self._seen: OrderedDict[tuple[int, int, str], bytes] = OrderedDict()
        self._pings: dict[int, float] = {}
        self.connected = asyncio.Event()
        self._backlog: deque[Frame] = deque()
        self._urgent: deque[Frame] = deque()
        self._work = asyncio.Event()

    # -- the connection loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        backoff = Backoff(first=0.5, most=10.0, jitter=(0.8, 1.2), healthy_after_s=30.0)
        while True:
            try:
                link = await SerialLink.open(self.config.port, self.config.baud)
            except (OSError, ValueError) as exc:
                self._note_error(f"cannot open {self.config.port}: {exc}")
            else:
                started = time.monotonic()
                try:
                    await self._serve(link)
                except (LinkClosed, TimeoutError, BoardError) as exc:
                    self._note_error(str(exc) or type(exc).__name__)
                except Exception as exc:  # a bug must not end the session: log it and reconnect
                    log.exception("board %s: session failed", self.config.id)
                    self._note_error(f"session failed: {exc!r}")
                finally:
                    self._disconnected(link)
                backoff.ran(time.monotonic() - started)
            await asyncio.sleep(backoff.next())

    def _note_error(self, message: str) -> None:
        if message != self.stats.last_error:
            log.warning("board %s: %s", self.config.id, message)
        self.stats.last_error = message

    def _disconnected(self, link: SerialLink) -> None:
        self.stats.bytes_in += link.bytes_in
        self.stats.bytes_out += link.bytes_out
        link.close()
        self._link = None
        self.stats.connected = False
        self.connected.clear()
        self._early.clear()
        self._backlog.clear()
        self._urgent.clear()
        self._client.detach(BoardError(f"board {self.config.id} disconnected"))

    async def _serve(self, link: SerialLink) -> None:
        self._link = link
        self._client.attach(link)
        reader = asyncio.create_task(self._client.receive())
        worker = asyncio.create_task(self._process())
        try:
            await self._handshake()
            self.stats.connected = True
            self.stats.connects += 1
            self.stats.last_error = ""
            self.connected.set()
            await self._describe_sensors()
            info = self.info
            assert info is not None
            early, self._early = self._early, []
            for frame in early:
                await self._handle(*frame)
            log.info(
                "board %s connected on %s: firmware %s, sensors %s",
                self.config.id,
                self.config.port,
                info.firmware,
                ", ".join(info.sensors) or "none",
            )
            await self._keepalive(reader)
        finally:
            for task in (reader, worker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, LinkClosed):
                    await task

    async def _handshake(self) -> None:
        # brief: the board names its sensors only; their details come by "describe" below
        brief = {"gw": self.config.id, "proto": wire.PROTOCOL, "brief": True}
        if await self._client.hello(brief, HELLO_TIMEOUT_S, HELLO_TRIES) is None:
            raise TimeoutError(f"no HELLO from the board on {self.config.port} (is our firmware running?)")
        try:
            await self.sync_time()
        except BoardError as exc:  # the link works; the clock is set again at the next sync
            self._note_error(str(exc))

    async def _describe_sensors(self) -> None:
        """Each sensor's type, units, interval and thresholds, asked one by one after a brief HELLO."""
        info = self.info
        assert info is not None
        for name, known in list(info.sensors.items()):
            if "u" in known:
                continue  # a full HELLO (older firmware) already said
            try:
                details = await self.request(
                    wire.CMD,
                    {"op": "describe", "a": {"sensor": name}},
                    timeout=DESCRIBE_TIMEOUT_S,
                    tries=DESCRIBE_TRIES,
                )
            except BoardError as exc:
                if "unknown command" in str(exc):
                    await self._full_hello()
                    return
                self._note_error(f"sensor {name}: no description ({exc}); its readings carry no units")
                continue
            if isinstance(details, dict):
                info.sensors[name] = {**details, "n": name}

    async def _full_hello(self) -> None:
        """Firmware without "describe": the whole HELLO, as before."""
        await self._client.hello({"gw": self.config.id, "proto": wire.PROTOCOL}, HELLO_TIMEOUT_S, HELLO_TRIES)

    async def _keepalive(self, reader: asyncio.Task[None]) -> None:
        next_sync = time.monotonic() + self.config.time_sync_interval_s
        while True:
            done, _ = await asyncio.wait({reader}, timeout=PING_INTERVAL_S)
            if done:
                reader.result()  # raises LinkClosed
                raise LinkClosed("reader stopped")
            if time.monotonic() - self._client.last_rx > SILENCE_S:
                raise TimeoutError(f"the board has been silent for {SILENCE_S:.0f} s")
            stamp = random.randrange(1 << 30)
            self._pings[stamp] = time.monotonic()
            while len(self._pings) > 8:
                self._pings.pop(next(iter(self._pings)))
            self._send(wire.PING, {"t": stamp})
            if self.info is not None and any("u" not in d for d in self.info.sensors.values()):
                await self._describe_sensors()  # a description lost to noise at connect: ask again
            if time.monotonic() >= next_sync:
                next_sync = time.monotonic() + self.config.time_sync_interval_s
                with contextlib.suppress(BoardError):
                    await self.sync_time()

    def _queue(self, frames: list[Frame]) -> None:
        """Frames as fast as they come (replies are the client's): they wait for ``_process`` in two
        queues."""
        deframer = self._client.deframer
        self.stats.frames_good = deframer.good
        if deframer.corrupt != self.stats.frames_corrupt:
            self.stats.frames_corrupt = deframer.corrupt
            log.debug("board %s: corrupt frame: %s", self.config.id, deframer.last_error)
        for frame in frames:
            if frame[0] == wire.READING:
                if len(self._backlog) >= READING_BACKLOG:
                    self._backlog.popleft()
                    self.stats.readings_dropped += 1
                self._backlog.append(frame)
            else:
                if len(self._urgent) >= URGENT_BACKLOG:
                    self._urgent.popleft()
                    self.stats.frames_dropped += 1
                self._urgent.append(frame)
        if frames:
            self._work.set()

    def _retried(self) -> None:
        self.stats.command_retries += 1

    async def _process(self) -> None:
        """Frames into events and replies: alarms and replies before any waiting reading."""
        while True:
            await self._work.wait()
            self._work.clear()
            while self._urgent or self._backlog:
                ftype, seq, body = self._urgent.popleft() if self._urgent else self._backlog.popleft()
                try:
                    await self._handle(ftype, seq, body)
                except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                    self.stats.frames_rejected += 1
                    log.warning(
                        "board %s: %s frame rejected: %s",
                        self.config.id,
                        wire.NAMES.get(ftype, ftype),
                        untrusted(exc),
                    )

    def backlog(self) -> int:
        """Frames received and not yet handled."""
        return len(self._backlog) + len(self._urgent)

    # -- frames from the board -------------------------------------------------------------------------
    def _send(self, ftype: int, body: Any) -> int:
        return self._client.send(ftype, body)

    async def _handle(self, ftype: int, seq: int, body: Any) -> None:
        if ftype in MAP_BODIES and not isinstance(body, dict):
            raise ValueError(f"the body must be a map, not {type(body).__name__}")
        if ftype in (wire.READING, wire.ALARM) and not self._client.greeted:
            # Sent before this connection's HELLO (buffered in the line while the agent was away):
            # kept until the HELLO says which sensors and units they belong to.
            if len(self._early) < EARLY_MAX:
                self._early.append((ftype, seq, body))
            return
        if ftype == wire.READING:
            await self._reading(body)
        elif ftype == wire.ALARM:
            await self._alarm(seq, body)
        elif ftype in (wire.RESULT, wire.ACK):  # the client keeps every reply with a usable id
            raise ValueError(f"no request can have the id {untrusted(body, 40)}")
        elif ftype == wire.PONG:
            sent = self._pings.pop(body["t"], None)
            if sent is not None:
                rtt = (time.monotonic() - sent) * 1000
                self.stats.rtt_ms = round(rtt, 2)
                self.stats.rtt_max_ms = round(max(rtt, self.stats.rtt_max_ms or 0.0), 2)
        elif ftype == wire.HELLO:
            self._on_hello(body)
        elif ftype == wire.LOG:
            level = {"error": logging.ERROR, "warning": logging.WARNING}.get(body.get("l"), logging.INFO)
            message = untrusted(body.get("m"), 500)
            log.log(level, "board %s says: %s", self.config.id, message)
            if level >= logging.WARNING:
                self.stats.board_log = f"{logging.getLevelName(level).lower()}: {message[:200]}"

    def _on_hello(self, body: dict[str, Any]) -> None:
        sensors_in = body.get("sensors", [])
        if not isinstance(sensors_in, list) or not all(isinstance(x, dict) and "n" in x for x in sensors_in):
            raise ValueError("HELLO sensors must be a list of maps with a name 'n'")
        for key in ("caps", "errors"):
            if not isinstance(body.get(key, []), list):
                raise ValueError(f"HELLO {key} must be a list")
        proto, boot = body.get("proto", 0), body["boot"]
        for name, value in (("proto", proto), ("boot", boot)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"HELLO {name} must be an integer, got {untrusted(value, 40)}")
        lamp = body.get("lamp")
        if lamp is not None and (not isinstance(lamp, int | float) or isinstance(lamp, bool)):
            raise ValueError("HELLO lamp must be a number")
        info = BoardInfo(
            board_id=str(body["id"]),
            firmware=str(body["fw"]),
            boot=boot,
            sensors={str(s["n"]): s for s in sensors_in},
            caps=[str(c) for c in body.get("caps", [])],
            lamp=lamp,
            errors=[str(e) for e in body.get("errors", [])],
            mpy=body.get("mpy") if isinstance(body.get("mpy"), int | str) else None,
        )
        if proto != wire.PROTOCOL:
            raise ValueError(f"board speaks protocol {proto}, the agent {wire.PROTOCOL}")
        if info.board_id != self.config.id:
            log.warning(
                "board on %s says it is %s, the config calls it %r (provision it with --board-id %s)",
                self.config.port,
                untrusted(info.board_id, 80),
                self.config.id,
                self.config.id,
            )
        for error in info.errors:
            log.error("board %s: %s", self.config.id, untrusted(error))
        self.info = info
        self._client.said_hello(body)

    def _captured(self, body: dict[str, Any]) -> tuple[int, bool]:
        """The sample's wall-clock time: the board's own once we set its clock, else now minus its age."""
        t = body.get("t")
        if isinstance(t, int) and not isinstance(t, bool):
            if t < 0:
                raise ValueError("capture time 't' must not be negative")
            return t, clock_synchronized()
        age = body.get("age", 0)
        if not isinstance(age, int) or age < 0:
            raise ValueError("age must be a non-negative integer")
        return now_ms() - age, clock_synchronized()

    def _units(self, sensor: str, keys: Any) -> dict[str, str] | None:
        info = self.info.sensors.get(sensor) if self.info else None
        units = (info or {}).get("u") or {}
        picked = {k: str(units[k]) for k in keys if k in units}
        return picked or None

    async def _reading(self, body: dict[str, Any]) -> None:
        sensor = body["s"]
        values = body["v"]
        if not isinstance(sensor, str) or not sensor or not isinstance(values, dict) or not values:
            raise ValueError("a reading needs a sensor name and a map of values")
        clean = {}
        for key, value in values.items():
            if (
                not isinstance(key, str)
                or not key
                or isinstance(value, bool)
                or not isinstance(value, int | float)
            ):
                raise ValueError(f"value {key!r} of {sensor} is not a number")
            if not math.isfinite(value):
                # NaN or infinity: the sensor produced no number; a reading is never half-true
                raise ValueError(f"value {key!r} of {sensor} is not finite ({value})")
            clean[key] = float(value)
        captured, synced = self._captured(body)
        await self.sink.submit(
            Event(
                kind=READING,
                captured_ms=captured,
                clock_synced=synced,
                board=self.config.id,
                sensor=sensor,
                values=clean,
                units=self._units(sensor, clean),
            )
        )
        self.stats.readings += 1

    async def _alarm(self, seq: int, body: dict[str, Any]) -> None:
        if self.info is None:
            raise ValueError("an alarm before HELLO")
        alarm_id, phase, sensor, key = body["a"], body["ph"], body["s"], body["k"]
        if phase not in (START, END) or not isinstance(alarm_id, int) or isinstance(alarm_id, bool):
            raise ValueError(f"alarm phase {phase!r} / id {alarm_id!r}")
        if not isinstance(key, str) or not key or not isinstance(sensor, str) or not sensor:
            raise ValueError("an alarm needs a quantity 'k' and a sensor 's', both non-empty strings")
        seen = (self.info.boot, alarm_id, phase)
        if seen in self._seen:
            self.stats.alarm_retransmits += 1
            self._send(wire.ACK, seq)
            return
        severity = body.get("sev") if body.get("sev") in SEVERITIES else "warning"
        info = self.info.sensors.get(str(sensor)) or {}
        label, values, units = alarm_fields(key, body.get("v"), body.get("th"), info.get("u") or {})
        captured, synced = self._captured(body)
        start_id = alarm_event_id(self.config.id, self.info.boot, alarm_id, START)
        event = await self.sink.submit(
            Event(
                kind=ALARM,
                captured_ms=captured,
                clock_synced=synced,
                event_id=alarm_event_id(self.config.id, self.info.boot, alarm_id, phase),
                phase=phase,
                ref=start_id if phase == END else None,
                label=label,
                severity=severity,
                board=self.config.id,
                sensor=str(sensor),
                values=values,
                units=units,
            )
        )
        # Durable now: only now may the board forget it.
        self._seen[seen] = event.event_id
        while len(self._seen) > SEEN_ALARMS:
            self._seen.popitem(last=False)
        self.stats.alarms += 1
        with contextlib.suppress(BoardError, LinkClosed):
            self._send(wire.ACK, seq)

    # -- requests to the board -------------------------------------------------------------------------
    async def sync_time(self) -> None:
        """Set the board's clock to the gateway's."""
        if not await self._client.acknowledged(
            wire.TIME, lambda: {"t": now_ms()}, COMMAND_TIMEOUT_S, COMMAND_TRIES
        ):
            raise BoardError(f"board {self.config.id} did not acknowledge the time")

    def _connected_client(self) -> BoardClient:
        if not self.connected.is_set():
            raise BoardError(
                f"board {self.config.id} is not connected ({self.stats.last_error or 'starting'})"
            )
        return self._client

    async def request(
        self, ftype: int, body: dict[str, Any], timeout: float = COMMAND_TIMEOUT_S, tries: int = COMMAND_TRIES
    ) -> Any:
        """A request (CMD or file frame) answered by its RESULT; see BoardClient.request."""
        return await self._connected_client().request(ftype, body, timeout, tries)

    async def command(self, op: str, **args: Any) -> Any:
        return await self.request(wire.CMD, {"op": op, "a": args})

    async def send_file(
        self, path: str, data: bytes, chunk: int = 512, progress: Callable[[int], None] | None = None
    ) -> None:
        """Write a file on the board, verified by the board before it lands; see BoardClient.send_file."""
        await self._connected_client().send_file(path, data, progress, chunk)

    def health(self) -> dict[str, Any]:
        out = asdict(self.stats)
        out["backlog"] = self.backlog()
        if self._link is not None:
            out["bytes_in"] += self._link.bytes_in
            out["bytes_out"] += self._link.bytes_out
            out["read_pauses"] = self._link.pauses
        if self.info is not None:
            out["firmware"] = self.info.firmware
            out["board_id"] = self.info.board_id
        return out
