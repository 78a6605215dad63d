"""Broker options shared by the edgectl commands that talk MQTT (events tail, cmd send)."""

from __future__ import annotations

import argparse
import os
import ssl
from typing import Any

import aiomqtt

from agent.uplink.connect import broker_address, tls_context

from ..errors import USAGE, EdgectlError


def add_broker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default="mqtt://127.0.0.1:1883", help="broker: mqtt://host:1883 or mqtts://host:8883"
    )
    parser.add_argument("--ca-file", help="CA to verify the broker (default: the system CAs)")
    parser.add_argument("--cert-file", help="client certificate for mutual TLS")
    parser.add_argument("--key-file", help="client key for mutual TLS")
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the broker's certificate (lab only)"
    )
    parser.add_argument("--username")
    parser.add_argument(
        "--password-env", metavar="VAR", help="read the password from this environment variable"
    )
    parser.add_argument("--client-id", help="MQTT client id (default: generated)")


def client_from_args(args: argparse.Namespace, **options: Any) -> aiomqtt.Client:
    """An MQTT 5 client for the broker options; user mistakes become EdgectlError."""
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
