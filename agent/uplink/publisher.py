"""The publisher: moves events from the outbox to the broker, and keeps the connection up.

Per connection: a retained birth on ``{prefix}/{device}/state`` (a retained last will says offline),
then two streams share a window of QoS 1 publishes in flight. *Live* events (committed while
connected) go first; the *backlog* (everything waiting when the connection came up) is replayed in
sequence order at ``replay_rate``, so hours of backlog never hold a fresh alarm back. An event
leaves the outbox only after its PUBACK; whatever was in flight when the link broke is sent again
(at least once: consumers dedup on device and sequence).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import msgpack
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import __version__, topics
from agent.backoff import Backoff
from agent.config import UplinkConfig
from agent.events import encode_state, now_ms, state_to_wire
from agent.trust.keys import DeviceKey

from .chain import signed_state
from .connect import client_for
from .outbox import Outbox, Stored

log = logging.getLogger(__name__)

MSGPACK = "application/msgpack"


def msgpack_properties(protocol: str) -> Properties | None:
    """MQTT 5 properties saying what the payload is (docs/asyncapi.yaml's default content type)."""
    if protocol != "5":
        return None  # MQTT 3.1.1 has no properties
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = MSGPACK
    props.PayloadFormatIndicator = 0  # bytes, not UTF-8 text
    return props


LIVE_QUEUE_MAX = 20_000  # beyond this, live events wait in the outbox with the backlog
BACKLOG_PAGE = 1000  # events read from the outbox per query
PUBACK_TIMEOUT_S = 30.0  # a publish not acknowledged by then means the link is dead
STOP_TIMEOUT_S = 3.0  # time allowed to tell the broker we go offline on a clean stop
STABLE_AFTER_S = 10.0  # a connection that lasted this long resets the reconnect backoff

MessageHandler = Callable[[aiomqtt.Client, aiomqtt.Message], Awaitable[None]]


def state_payload(device: str, online: bool, **more: object) -> bytes:
    return encode_state(device, online, **more)


@dataclass(slots=True)
class UplinkStats:
    connected: bool = False
    reconnects: int = 0  # connections lost or refused since start
    published: int = 0  # events acknowledged by the broker since start
    last_error: str | None = None
    window: int = 0  # publishes in flight allowed on this connection (config and broker's limit)
    # Commit-to-PUBACK time of recent live events, ms: how late a fresh alarm reaches the broker.
    live_lag_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=1000))

    def as_health(self) -> dict[str, object]:
        return {
            "connected": self.connected,
            "reconnects": self.reconnects,
            "published": self.published,
            "last_error": self.last_error,
            "window": self.window,
            "live_lag_ms_max": round(max(self.live_lag_ms), 1) if self.live_lag_ms else None,
        }


class _ReplayBudget:
    """Token bucket for backlog events: ``rate`` per second, bursts of a tenth of a second."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate / 10)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def wait_s(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class Publisher:
    """Delivers the outbox to the broker until cancelled; reconnects forever with backoff and jitter."""

    def __init__(
        self,
        config: UplinkConfig,
        device: str,
        outbox: Outbox,
        on_message: MessageHandler | None = None,
        subscriptions: tuple[str, ...] = (),
        key: DeviceKey | None = None,
        birth: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.device = device
        self.outbox = outbox
        self.key = key  # signs the birth message
        self.birth = birth or (lambda: {"agent": __version__})
        self.on_message = on_message
        self.subscriptions = subscriptions
        self.stats = UplinkStats()
        self.client: aiomqtt.Client | None = None
        self._live: collections.deque[tuple[Stored, float]] = collections.deque()
        self._backlog: collections.deque[Stored] = collections.deque()
        self._cursor = 0  # last backlog seq taken this connection
        self._backlog_end = 0  # the backlog is every waiting event up to this seq
        self._wake = asyncio.Event()
        self._budget = _ReplayBudget(config.replay_rate)
        self._handlers: set[asyncio.Task[None]] = set()
        self._props = msgpack_properties(config.protocol)
        outbox.add_listener(self._committed)

    def set_replay_rate(self, rate: float) -> None:
        self._budget = _ReplayBudget(rate)

    # ----- connection -----------------------------------------------------------------------

    async def run(self) -> None:
        backoff = Backoff(
            first=self.config.reconnect_min_s,
            most=self.config.reconnect_max_s,
            jitter=(0.5, 1.0),
            healthy_after_s=STABLE_AFTER_S,
        )
        prefix = self.config.topic_prefix
        while True:
            will = aiomqtt.Will(
                topics.state(prefix, self.device),
                state_payload(self.device, False, clean=False),
                qos=1,
                retain=True,
                properties=self._will_props(),
            )
            client: aiomqtt.Client | None = None
            connected_at = math.inf
            try:
                # Inside the try: a missing password variable or TLS file is a failure to connect,
                # reported in health and retried, not a crash of the uplink.
                client = client_for(self.config, self.config.client_id or f"edge-{self.device}", will)
                # One warning per publish beyond this would flood the log with a full window in flight.
                client.pending_calls_threshold = self.config.inflight + 16
                async with client:
                    self.client = client
                    connected_at = time.monotonic()
                    log.info("uplink connected to %s", self.config.url)
                    try:
                        await self._session(client)
                    except asyncio.CancelledError:
                        await self._say_offline(client)
                        raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of a connection means: back off, then reconnect
                self.stats.last_error = getattr(client, "refused", None) or _describe(exc)
                backoff.ran(time.monotonic() - connected_at)  # it worked for a while: a new failure
                log.warning(
                    "uplink to %s lost: %s; retrying in about %.1f s",
                    self.config.url,
                    self.stats.last_error,
                    backoff.delay,
                )
            finally:
                self._session_ended()
            self.stats.reconnects += 1
            await asyncio.sleep(backoff.next())

    async def announce(self) -> None:
        """Publish the birth message again (what it lists changed: a model was updated)."""
        client = self.client
        if client is None or not self.stats.connected:
            return  # the next connection's birth message carries it
        with contextlib.suppress(Exception):
            await self._state(client, self._birth_payload())

    async def _state(self, client: aiomqtt.Client, payload: bytes, **kw: float) -> None:
        """The retained state message: birth, goodbye."""
        await client.publish(
            topics.state(self.config.topic_prefix, self.device),
            payload,
            qos=1,
            retain=True,
            properties=self._props,
            **kw,
        )

    def _birth_payload(self) -> bytes:
        state = state_to_wire(self.device, True, now_ms(), **self.birth())
        if self.key is not None:
            state = signed_state(state, self.key)
        return msgpack.packb(state, use_bin_type=True)

    def _will_props(self) -> Properties | None:
        if self._props is None:
            return None
        props = Properties(PacketTypes.WILLMESSAGE)  # the will has its own property set
        props.ContentType = MSGPACK
        props.PayloadFormatIndicator = 0
        return props

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(Exception):
            await self._state(client, state_payload(self.device, False, clean=True), timeout=STOP_TIMEOUT_S)

    async def _session(self, client: aiomqtt.Client) -> None:
        await self._state(client, self._birth_payload())
        for subscription in self.subscriptions:
            await client.subscribe(subscription, qos=1)
        # Deletes acknowledged in the last connection are committed first, so they are not resent.
        await self.outbox.flushed()
        self._live.clear()
        self._backlog.clear()
        self._cursor = 0
        self._backlog_end = self.outbox.last_seq
        self.stats.connected = True
        self.stats.last_error = None  # health must not report an old failure while connected
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._send_loop(client, tasks))
            tasks.create_task(self._receive_loop(client))

    def _session_ended(self) -> None:
        self.stats.connected = False
        self.client = None
        self._live.clear()
        self._backlog.clear()

    async def _receive_loop(self, client: aiomqtt.Client) -> None:
        # The iterator also ends the session: it raises MqttError when the connection drops.
        async for message in client.messages:
            if self.on_message is not None:
                # Outside the session's task group: a command (a model swap, say) runs to its end
                # even if the link drops meanwhile; only its reply is then lost.
                task = asyncio.get_running_loop().create_task(self._handle(client, message))
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        assert self.on_message is not None
        try:
            await self.on_message(client, message)
        except aiomqtt.MqttError as exc:
            log.warning("the reply to %s was lost with the connection: %s", message.topic, exc)
        except Exception:
            log.exception("handling a message on %s failed", message.topic)

    # ----- sending --------------------------------------------------------------------------

    def _committed(self, rows: list[Stored]) -> None:
        if not self.stats.connected:
            return  # the next connection replays them as backlog
        if len(self._live) + len(rows) > LIVE_QUEUE_MAX:
            # The broker takes less than the producers make: let these wait in the outbox.
            self._live.clear()
            self._backlog_end = rows[-1].seq
        else:
            now = time.monotonic()
            self._live.extend((row, now) for row in rows)
        self._wake.set()

    async def _send_loop(self, client: aiomqtt.Client, tasks: asyncio.TaskGroup) -> None:
        # Minus one slot for the birth, command replies and the like, which share the broker's limit.
        limit = getattr(client, "receive_maximum", self.config.inflight) - 1
        self.stats.window = max(1, min(self.config.inflight, limit))
        window = asyncio.Semaphore(self.stats.window)
        while True:
            # Take a slot before choosing, so a live event that arrives meanwhile goes next.
            await window.acquire()
            item, committed = await self._next()
            tasks.create_task(self._send(client, item, committed, window))

    async def _send(
        self, client: aiomqtt.Client, item: Stored, committed: float | None, window: asyncio.Semaphore
    ) -> None:
        try:
            await client.publish(
                topics.event(self.config.topic_prefix, self.device, item.kind),
                item.payload,
                qos=1,
                properties=self._props,
                timeout=PUBACK_TIMEOUT_S,
            )
        finally:
            window.release()
        self.outbox.ack(item.seq)
        self.stats.published += 1
        if committed is not None:
            self.stats.live_lag_ms.append((time.monotonic() - committed) * 1000)

    async def _next(self) -> tuple[Stored, float | None]:
        """The next event to send and, for a live one, when it was committed."""
        while True:
            while self._live:
                item, committed = self._live.popleft()
                if item.seq > self._backlog_end:
                    return item, committed
            wait: float | None = None
            if self._cursor < self._backlog_end:
                if not self._backlog:
                    page = await self.outbox.read(self._cursor, self._backlog_end, BACKLOG_PAGE)
                    if not page:
                        self._cursor = self._backlog_end
                        continue
                    self._backlog.extend(page)
                    continue  # live events may have arrived during the read
                wait = self._budget.wait_s()
                if wait <= 0:
                    self._budget.take()
                    item = self._backlog.popleft()
                    self._cursor = item.seq
                    return item, None
            self._wake.clear()
            if self._live:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    @property
    def backlog_remaining(self) -> int:
        """Backlog events not yet sent in this connection (an estimate for health and tests)."""
        return max(0, self._backlog_end - self._cursor)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause):
        text = f"{text} ({cause})"
    return text
