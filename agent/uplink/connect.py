"""How to reach the broker: address, TLS context and credentials from the uplink config."""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config import UplinkConfig

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    websocket: bool
    path: str


def broker_address(url: str) -> BrokerAddress:
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"broker URL {url!r} must look like mqtt://host:1883 or mqtts://host:8883")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme in ("mqtts", "wss"),
        websocket=parts.scheme in ("ws", "wss"),
        path=parts.path or "/mqtt",
    )


def tls_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None, verify: bool = True
) -> ssl.SSLContext:
    """Server verification on (hostname and chain), the system CAs unless ``ca_file`` is given."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


class UplinkClient(aiomqtt.Client):
    """aiomqtt with two things the outbox needs that aiomqtt leaves out.

    - A refusing MQTT 5 PUBACK (not authorized, quota exceeded) is not a delivery: aiomqtt would
      complete ``publish`` on it and the outbox would delete an event nobody has. Here a refusal of
      an event ends the connection instead; the event is sent again after the reconnect backoff. A
      refused command reply (``publish_reply``: a sender named a response topic the broker does not
      let us publish to) is only logged: it must not cost the session.
    - The broker's Receive Maximum (CONNACK) is kept, so the publisher never has more QoS 1
      messages in flight than the broker accepts (paho does not enforce it).
    """

    refused: str | None = None  # the broker's last refusal, for health and logs
    receive_maximum: int = 65535
    replies_refused: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reply_mids: set[int] = set()
        self._next_is_reply = False
        paho_publish = self._client.publish

        def publish(*a: Any, **kw: Any) -> Any:
            info = paho_publish(*a, **kw)
            if self._next_is_reply:
                self._next_is_reply = False
                self._reply_mids.add(info.mid)
            return info

        self._client.publish = publish  # type: ignore[method-assign]

    async def publish_reply(self, topic: str, payload: bytes, properties: Properties | None) -> None:
        """Publish a command reply; the broker refusing it does not end the session."""
        # aiomqtt calls paho's publish before its first await, so the flag marks exactly this one
        self._next_is_reply = True
        try:
            await self.publish(topic, payload, qos=1, properties=properties)
        finally:
            self._next_is_reply = False

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None
    ) -> None:
        maximum = getattr(properties, "ReceiveMaximum", None) if properties is not None else None
        if maximum:
            self.receive_maximum = int(maximum)
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        if mid in self._reply_mids:
            self._reply_mids.discard(mid)
            if getattr(reason_code, "is_failure", False):
                self.replies_refused += 1
                log.warning("the broker refused a command reply (%s); the session goes on", reason_code)
        elif getattr(reason_code, "is_failure", False):
            self.refused = f"the broker refused a publish: {reason_code}"
            log.error("%s; reconnecting, the event stays in the outbox", self.refused)
            self._client.disconnect()
            return
        super()._on_publish(client, userdata, mid, reason_code, properties)


def protocol(version: str) -> aiomqtt.ProtocolVersion:
    return aiomqtt.ProtocolVersion.V5 if version == "5" else aiomqtt.ProtocolVersion.V311


def client_for(
    config: UplinkConfig,
    identifier: str,
    will: aiomqtt.Will | None = None,
    properties: Properties | None = None,
) -> UplinkClient:
    """An aiomqtt client for this uplink config (not connected yet: use ``async with``)."""
    address = broker_address(config.url)
    password = config.password()
    context = None
    if address.tls and not config.tls_verify:
        log.warning(
            "uplink.tls_verify is off: the broker's certificate is not checked, so anyone on the path "
            "can pose as the broker; switch it on outside a lab"
        )
    if address.tls:
        context = tls_context(
            str(config.ca_file) if config.ca_file else None,
            str(config.cert_file) if config.cert_file else None,
            str(config.key_file) if config.key_file else None,
            config.tls_verify,
        )
    # A persistent session lets the broker keep commands sent during a short outage (each command's
    # message expiry still drops a stale one); events never rely on it: the outbox holds them.
    persistent = config.session_expiry_s > 0
    session: dict[str, Any] = {}
    if config.protocol == "5":
        session["clean_start"] = not persistent
        properties = properties or Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = config.session_expiry_s
    else:
        session["clean_session"] = not persistent
    return UplinkClient(
        address.host,
        address.port,
        username=config.username,
        password=password.get_secret_value() if password is not None else None,
        identifier=identifier,
        protocol=protocol(config.protocol),
        will=will,
        keepalive=config.keepalive_s,
        transport="websockets" if address.websocket else "tcp",
        websocket_path=address.path if address.websocket else None,
        tls_context=context,
        max_inflight_messages=config.inflight,
        properties=properties,
        timeout=10,
        **session,
    )
