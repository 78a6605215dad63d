"""`edgectl keys`: operator keys that sign commands which change a device."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agent.uplink.signing import KeyFormatError, new_key, public_of

from ..errors import USAGE, EdgectlError


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("keys", help="create operator keys for signed commands")
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    new = cmds.add_parser(
        "new",
        help="write a new ed25519 private key and print its public key",
        description="Writes the private key (base64, readable only by you) and prints the public key to "
        "add to each gateway's uplink.commands.trusted_keys.",
    )
    new.add_argument("path", type=Path, help="file for the private key, e.g. ~/.config/edgectl/operator.key")
    new.add_argument("--force", action="store_true", help="overwrite an existing key file")
    new.set_defaults(func=cmd_new)
    public = cmds.add_parser("public", help="print the public key of a private key file")
    public.add_argument("path", type=Path)
    public.set_defaults(func=cmd_public)


def read_private(path: Path) -> str:
    try:
        text = path.read_text().strip()
        public_of(text)
    except OSError as exc:
        raise EdgectlError(f"cannot read the key {path}: {exc.strerror}", USAGE) from None
    except KeyFormatError as exc:
        raise EdgectlError(f"{path} is not an edgectl private key: {exc}", USAGE) from None
    return text


def cmd_new(args: argparse.Namespace) -> int:
    if args.path.exists() and not args.force:
        raise EdgectlError(
            f"{args.path} exists; pass --force to replace it (devices trusting it lose it)", USAGE
        )
    private, public = new_key()
    args.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(args.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(private + "\n")
    print(public)
    return 0


def cmd_public(args: argparse.Namespace) -> int:
    print(public_of(read_private(args.path)))
    return 0
