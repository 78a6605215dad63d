"""Broker options shared by the edgectl commands that talk MQTT (events tail, cmd send)."""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
from pathlib import Path
from typing import Any

import aiomqtt
import msgpack
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import topics
from agent.config import ConfigError, load_config
from agent.trust.commands import command_payload
from agent.uplink.connect import broker_address, tls_context

from ..errors import BROKER, FAILED, USAGE, EdgectlError

DEFAULT_URL = "mqtt://127.0.0.1:1883"


def add_broker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help="gateway config: connect as the gateway does (url, user, password, TLS files); "
        "the options below override it",
    )
    parser.add_argument(
        "--url", help=f"broker: mqtt://host:1883 or mqtts://host:8883 (default {DEFAULT_URL})"
    )
    parser.add_argument("--ca-file", help="CA to verify the broker (default: the system CAs)")
    parser.add_argument("--cert-file", help="client certificate for mutual TLS")
    parser.add_argument("--key-file", help="client key for mutual TLS")
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the broker's certificate (lab only)"
    )
    parser.add_argument("--username")
    password = parser.add_mutually_exclusive_group()
    password.add_argument(
        "--password-env", metavar="VAR", help="read the password from this environment variable"
    )
    password.add_argument(
        "--password-file", type=Path, metavar="FILE", help="read the password from this file"
    )
    parser.add_argument("--client-id", help="MQTT client id (default: generated)")


def _from_config(args: argparse.Namespace) -> None:
    """Fill the options not given on the command line from the gateway config's uplink section."""
    if getattr(args, "config", None) is None:
        args.url = args.url or DEFAULT_URL
        return

    try:
        uplink = load_config(args.config).uplink
    except ConfigError as exc:
        raise EdgectlError(
            f"{exc.source}: invalid config; `edgectl config check {args.config}` names why", USAGE
        ) from None
    except OSError as exc:
        raise EdgectlError(f"{args.config}: cannot read it: {exc.strerror}", USAGE) from None
    args.url = args.url or uplink.url
    args.username = args.username or uplink.username
    if not args.password_env and not args.password_file:
        args.password_env, args.password_file = uplink.password_env, uplink.password_file
    for name in ("ca_file", "cert_file", "key_file"):
        if getattr(args, name) is None and getattr(uplink, name) is not None:
            setattr(args, name, str(getattr(uplink, name)))
    args.insecure = args.insecure or not uplink.tls_verify


def broker_error(args: argparse.Namespace, exc: aiomqtt.MqttError) -> EdgectlError:
    """A failure talking to the broker, as edgectl reports it: which broker, and what to check."""
    return EdgectlError(f"broker {args.url}: {exc}; check the URL, TLS files and credentials", BROKER)


def client_from_args(args: argparse.Namespace, **options: Any) -> aiomqtt.Client:
    """An MQTT 5 client for the broker options; user mistakes become EdgectlError."""
    _from_config(args)
    try:
        address = broker_address(args.url)
    except ValueError as exc:
        raise EdgectlError(str(exc), USAGE) from None
    context = None
    if address.tls:
        try:
            context = tls_context(args.ca_file, args.cert_file, args.key_file, verify=not args.insecure)
        except (OSError, ssl.SSLError) as exc:
            raise EdgectlError(f"cannot load the TLS files: {exc}", USAGE) from None
    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            raise EdgectlError(f"environment variable {args.password_env} is not set", USAGE)
    elif getattr(args, "password_file", None):
        try:
            password = Path(args.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise EdgectlError(
                f"cannot read the password file {args.password_file}: {exc.strerror}", USAGE
            ) from None
    return aiomqtt.Client(
        address.host,
        address.port,
        identifier=args.client_id,
        username=args.username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=context,
        transport="websockets" if address.websocket else "tcp",
        websocket_path=address.path if address.websocket else None,
        **options,
    )


class Requester:
    """Commands to one device over one open connection, each reply matched by its correlation data.

    The response topic is in the device's own reply space, the only place its replies may go by
    default (uplink.commands.reply_topics).
    """

    def __init__(
        self, client: aiomqtt.Client, prefix: str, device: str, key: str | None, wait: float
    ) -> None:
        self.client, self.prefix, self.device, self.key, self.wait = client, prefix, device, key, wait
        self.reply_topic = topics.reply(prefix, device, f"edgectl-{os.urandom(6).hex()}")

    async def reply(self, name: str, cmd_args: dict[str, Any]) -> dict[str, Any]:
        """The device's whole reply (``ok``, then ``result`` or ``error`` and ``message``)."""
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = correlation = os.urandom(8)
        props.MessageExpiryInterval = max(1, int(self.wait))  # the broker drops it if the device is away
        payload = command_payload(self.device, name, cmd_args, self.key)
        await self.client.publish(
            topics.command(self.prefix, self.device, name), payload, qos=1, properties=props
        )
        try:
            async with asyncio.timeout(self.wait):
                async for message in self.client.messages:
                    if getattr(message.properties, "CorrelationData", None) == correlation:
                        assert isinstance(message.payload, bytes)
                        return msgpack.unpackb(message.payload, raw=False)
        except TimeoutError:
            raise EdgectlError(
                f"no reply from {self.device} to {name} within {self.wait:g} s; is it online (edgectl events tail)?",
                BROKER,
            ) from None
        raise EdgectlError("the broker closed the connection before the reply came", BROKER)

    async def result(self, name: str, cmd_args: dict[str, Any]) -> dict[str, Any]:
        """The command's result; EdgectlError naming the device's reason when it refuses."""
        reply = await self.reply(name, cmd_args)
        if not reply.get("ok"):
            raise EdgectlError(
                f"{self.device} refused {name}: {reply.get('error')}: {reply.get('message')}", FAILED
            )
        return reply["result"]
