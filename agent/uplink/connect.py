"""How to reach the broker: address, TLS context and credentials from the uplink config."""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
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


class RefusingAwareClient(aiomqtt.Client):
    """An aiomqtt client that does not take a refusing MQTT 5 PUBACK for a delivery.

    aiomqtt completes ``publish`` on any PUBACK, even one whose reason code says the broker refused
    the message (not authorized, quota exceeded); the outbox would then delete an event nobody has.
    Here a refusal ends the connection instead: the publish never completes, the session ends, and
    the event is sent again after the reconnect backoff, until an operator fixes the broker.
    """

    refused: str | None = None  # the broker's last refusal, for health and logs

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
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
) -> aiomqtt.Client:
    """An aiomqtt client for this uplink config (not connected yet: use ``async with``)."""
    address = broker_address(config.url)
    password = config.password()
    context = None
    if address.tls:
        context = tls_context(
            str(config.ca_file) if config.ca_file else None,
            str(config.cert_file) if config.cert_file else None,
            str(config.key_file) if config.key_file else None,
            config.tls_verify,
        )
    return RefusingAwareClient(
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
    )
