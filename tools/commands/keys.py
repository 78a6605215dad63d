"""`edgectl keys`: the one kind of key edgectl makes, for every signature it checks.

An ed25519 private key in a PKCS#8 PEM file readable only by its owner (``openssl pkey`` reads it
too); its public key in base64 of the raw 32 bytes, one line, the form every trust list takes:
gateways' ``uplink.commands.trusted_keys`` (commands, desired config, model updates), ``updates.model_signers``,
and the trust lists of ``edgectl model verify`` and ``edgectl firmware verify``. ``model keygen`` and
``firmware keygen`` are this same command. Older operator keys (base64 of the raw private key) are
still read.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from agent.trust.keys import KeyFileError, generate_signing_key, key_id, load_signing_key, public_key_b64

from ..errors import USAGE, EdgectlError


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser(
        "keys", help="create and show signing keys (operators, model and firmware signers)"
    )
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    new = cmds.add_parser(
        "new",
        help="write a new ed25519 private key (PEM) and print its public key",
        description="Writes the private key (PKCS#8 PEM, readable only by you) and prints its public key "
        "(base64) on standard output: add it to each gateway's uplink.commands.trusted_keys (an "
        "operator's key), updates.model_signers (a model signer's) or a trust list.",
    )
    new.add_argument("path", type=Path, help="file for the private key, e.g. ~/.config/edgectl/operator.pem")
    new.add_argument("--force", action="store_true", help="overwrite an existing key file")
    new.set_defaults(func=cmd_new)
    public = cmds.add_parser("public", help="print the public key of a private key file")
    public.add_argument("path", type=Path)
    public.set_defaults(func=cmd_public)


def new_key_file(path: Path, force: bool = False) -> str:
    """Write a new key to ``path``; its public key (base64). Never overwrites unless ``force``."""
    if path.exists():
        if not force:
            raise EdgectlError(
                f"{path} exists; keys are not overwritten (pass --force to replace it: whoever trusts it loses it)",
                USAGE,
            )
        path.unlink()
    key = generate_signing_key(path)
    public = key.public_key()
    print(
        f"wrote private key {path} (key id {key_id(public)}); keep it off the gateways. Its public key, "
        "for trusted_keys, model_signers and trust lists:",
        file=sys.stderr,
    )
    return public_key_b64(public)


def read_private(path: Path) -> str:
    """The private key in ``path`` (PEM, or an older base64 key) as base64 of its raw 32 bytes."""
    try:
        key = load_signing_key(path)
    except KeyFileError as exc:
        raise EdgectlError(f"{exc}; make one with `edgectl keys new FILE`", USAGE) from None
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def cmd_new(args: argparse.Namespace) -> int:
    print(new_key_file(args.path, args.force))
    return 0


def cmd_public(args: argparse.Namespace) -> int:
    try:
        print(public_key_b64(load_signing_key(args.path).public_key()))
    except KeyFileError as exc:
        raise EdgectlError(str(exc), USAGE) from None
    return 0
