"""Broker options shared by the edgectl commands that talk MQTT (events tail, cmd send)."""

from __future__ import annotations

import argparse
import os
import ssl
from pathlib import Path
from typing import Any

import aiomqtt

from agent.uplink.connect import broker_address, tls_context

from ..errors import USAGE, EdgectlError

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
    from agent.config import ConfigError, load_config

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
