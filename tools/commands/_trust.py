"""Signing keys, trust lists and model package signatures for edgectl (logic in agent/trust/).

``register_sign(cmds)`` adds ``keygen``, ``sign`` and ``verify`` to the ``edgectl model`` group; the
helpers for reading keys and trust lists are shared with ``edgectl firmware``.
"""

# Lazy import: agent.vision.manifest (5.5 ms over `edgectl --help`'s 0.39 s) is imported by the model
# checks that use it; firmware and keys commands do not.

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust.keys import KeyFileError, TrustedKey, TrustList, key_id, load_signing_key
from agent.trust.packages import SignatureError, sign_package, verify_package

from ..errors import MODEL, SIGNATURE, USAGE, EdgectlError
from .keys import new_key_file

if TYPE_CHECKING:
    from agent.vision.manifest import ModelManifest

KEY_ENV = "EDGECTL_SIGNING_KEY"  # path of the private key used when --key is not given
TRUST_ENV = "EDGECTL_TRUST"  # path of the trust list used when --trust is not given


def add_key_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--key", type=Path, help=f"ed25519 private key (PEM) that signs the {what} (default: ${KEY_ENV})"
    )


def add_trust_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust",
        type=Path,
        action="append",
        default=[],
        help=f"trust list file, one base64 public key per line (repeatable; default: ${TRUST_ENV})",
    )
    parser.add_argument(
        "--trust-key", action="append", default=[], metavar="BASE64", help="a trusted public key (repeatable)"
    )


def signing_key_from_args(args: argparse.Namespace, required: bool) -> Ed25519PrivateKey | None:
    path = args.key or (Path(os.environ[KEY_ENV]) if os.environ.get(KEY_ENV) else None)
    if path is None:
        if required:
            raise EdgectlError(f"no signing key: pass --key KEYFILE or set {KEY_ENV}", USAGE)
        return None
    try:
        return load_signing_key(path)
    except KeyFileError as exc:
        raise EdgectlError(f"{exc}; create a key with `edgectl keys new KEYFILE`", USAGE) from None


def trust_from_args(args: argparse.Namespace) -> TrustList:
    files = list(args.trust) or ([Path(os.environ[TRUST_ENV])] if os.environ.get(TRUST_ENV) else [])
    keys: list[TrustedKey] = []
    try:
        for path in files:
            keys.extend(TrustList.from_file(path).keys)
        keys.extend(TrustList.from_strings(args.trust_key).keys)
    except KeyFileError as exc:
        raise EdgectlError(str(exc), USAGE) from None
    return TrustList(tuple(keys))


def register_sign(cmds: argparse._SubParsersAction) -> None:
    """Add keygen, sign and verify to a command group (edgectl model)."""
    keygen = cmds.add_parser("keygen", help="the same as `edgectl keys new` (no --force): a new signing key")
    keygen.add_argument("path", type=Path, help="private key file to create (kept secret, mode 0600)")
    keygen.set_defaults(func=cmd_keygen)
    sign = cmds.add_parser(
        "sign",
        help="sign a model folder (writes signature.json over every file)",
        description="Writes signature.json into the model folder: the sha256 of every file, signed with "
        "your ed25519 key. Gateways accept the package through the model-update command only if the key "
        "is in their trust list and no file changed.",
    )
    sign.add_argument("path", type=Path, help="model folder with manifest.json")
    add_key_option(sign, "model package")
    sign.set_defaults(func=cmd_sign)
    verify = cmds.add_parser("verify", help="check a model folder's signature, hashes and manifest")
    verify.add_argument("path", type=Path, help="model folder with manifest.json and signature.json")
    add_trust_options(verify)
    verify.set_defaults(func=cmd_verify)


def cmd_keygen(args: argparse.Namespace) -> int:
    """``model keygen`` and ``firmware keygen``: the same key as ``edgectl keys new``."""
    print(new_key_file(args.path))
    return 0


def _manifest(folder: Path) -> ModelManifest:
    from agent.vision.manifest import ManifestError, load_manifest

    if not folder.is_dir():
        raise EdgectlError(f"{folder}: no such model folder", USAGE)
    try:
        return load_manifest(folder)
    except ManifestError as exc:
        raise EdgectlError(str(exc), MODEL) from None


def cmd_sign(args: argparse.Namespace) -> int:
    from agent.vision.manifest import ManifestError, verify_model_file

    key = signing_key_from_args(args, required=True)
    assert key is not None
    manifest = _manifest(args.path)
    try:  # never sign a package whose model file does not match its own manifest
        verify_model_file(args.path, manifest)
    except ManifestError as exc:
        raise EdgectlError(str(exc), MODEL) from None
    target = sign_package(args.path, key, "model", manifest.id, manifest.version)
    print(f"signed {manifest.id} {manifest.version} with key {key_id(key.public_key())}: wrote {target}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    trust = trust_from_args(args)
    if not trust.keys:
        raise EdgectlError(
            f"no trusted keys: pass --trust FILE or --trust-key BASE64, or set {TRUST_ENV}", USAGE
        )
    manifest = _manifest(args.path)
    try:
        signed = verify_package(args.path, trust, kind="model")
    except SignatureError as exc:
        raise EdgectlError(f"{args.path}: {exc}", SIGNATURE) from None
    if (signed.name, signed.version) != (manifest.id, manifest.version):
        raise EdgectlError(
            f"{args.path}: signed as {signed.name} {signed.version} but the manifest says "
            f"{manifest.id} {manifest.version}",
            SIGNATURE,
        )
    label = f" ({signed.signer.label})" if signed.signer.label else ""
    print(
        f"{args.path}: {manifest.id} {manifest.version}, {len(signed.files)} file(s) intact, "
        f"signed by trusted key {signed.signer.key_id}{label}"
    )
    return 0
