"""`edgectl firmware`: build, sign, verify and check sensor-board firmware bundles."""

# Lazy import: tools.driver_template is imported only where the SDK has added it (see register).

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from agent.trust.bundle import BundleError, DowngradeRefused, check_upgrade, load_bundle

from .. import fwcheck
from ..errors import BYTECODE, DOWNGRADE, FAILED, SIGNATURE, USAGE, EdgectlError
from ..firmware_build import DEFAULT_EXCLUDES, BuildError, BytecodeError, build_bundle
from ..fwcheck import FileReport
from ._trust import add_key_option, add_trust_options, cmd_keygen, signing_key_from_args, trust_from_args


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("firmware", help="build, sign, verify and check sensor-board firmware")
    cmds = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    build = cmds.add_parser(
        "build",
        help="compile the firmware into a bundle (mpy-cross, hashes, version, signature)",
        description="Compiles every firmware module with mpy-cross for the boards' bytecode version "
        "(boot.py and main.py stay source), writes bundle.json with the version and each file's sha256, "
        "and signs it when a signing key is given. `edgectl board flash` installs the bundle.",
    )
    build.add_argument("source", nargs="?", type=Path, default=Path("firmware"), help="default: ./firmware")
    build.add_argument(
        "--version", required=True, dest="fw_version", help="bundle version, MAJOR.MINOR.PATCH"
    )
    build.add_argument("--out", type=Path, help="bundle folder to write (default: build/firmware-VERSION)")
    build.add_argument(
        "--mpy", type=int, default=6, help="bytecode version of the boards (default 6: MicroPython ≥ 1.19)"
    )
    build.add_argument("--name", default="street-board", help="firmware name recorded in the bundle")
    build.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="also leave out these files"
    )
    build.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    add_key_option(build, "bundle")
    build.set_defaults(func=cmd_build)

    verify = cmds.add_parser(
        "verify", help="check a bundle: hashes, signature, and that it is not a downgrade"
    )
    verify.add_argument("bundle", type=Path)
    add_trust_options(verify)
    verify.add_argument("--installed", metavar="VERSION", help="version on the board, to refuse a downgrade")
    verify.add_argument(
        "--allow-downgrade", action="store_true", help="accept a bundle older than --installed"
    )
    verify.set_defaults(func=cmd_verify)

    keygen = cmds.add_parser("keygen", help="the same as `edgectl keys new` (no --force): a new signing key")
    keygen.add_argument("path", type=Path, help="private key file to create (kept secret, mode 0600)")
    keygen.set_defaults(func=cmd_keygen)

    check = cmds.add_parser(
        "check", help="type-check firmware against each MicroPython port's API and compile it with mpy-cross"
    )
    check.add_argument(
        "path", nargs="?", type=Path, default=Path("firmware"), help="file or folder (default: ./firmware)"
    )
    check.add_argument(
        "--port", choices=["esp32", "rp2"], action="append", help="port to check (default: all)"
    )
    check.set_defaults(func=cmd_check)

    # --- SDK extension point: `edgectl firmware new-driver NAME` -------------------------------------
    # The SDK adds tools/driver_template.py with register(cmds); it appears here once that module exists.
    if importlib.util.find_spec("tools.driver_template") is not None:
        from .. import driver_template  # type: ignore[attr-defined]

        driver_template.register(cmds)


def cmd_build(args: argparse.Namespace) -> int:
    key = signing_key_from_args(args, required=False)
    out = args.out or Path("build") / f"firmware-{args.fw_version}"
    try:
        bundle = build_bundle(
            args.source,
            out,
            args.fw_version,
            mpy=args.mpy,
            key=key,
            name=args.name,
            excludes=(*DEFAULT_EXCLUDES, *args.exclude),
            force=args.force,
        )
    except BytecodeError as exc:
        raise EdgectlError(str(exc), BYTECODE) from None
    except BuildError as exc:
        raise EdgectlError(str(exc), USAGE) from None
    signed = f"signed by key {bundle.key_id}" if bundle.key_id else "UNSIGNED (pass --key to sign it)"
    print(
        f"built {bundle.name} {bundle.version} for bytecode v{bundle.mpy_major}: {len(bundle.files)} file(s) "
        f"in {out}, {signed}"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    trust = trust_from_args(args)
    try:
        bundle = load_bundle(args.bundle, trust if trust.keys else None, require_signature=bool(trust.keys))
    except BundleError as exc:
        raise EdgectlError(str(exc), SIGNATURE) from None
    try:
        check_upgrade(args.installed, bundle.version, args.allow_downgrade)
    except DowngradeRefused as exc:
        raise EdgectlError(str(exc), DOWNGRADE) from None
    except BundleError as exc:
        raise EdgectlError(str(exc), USAGE) from None
    if bundle.signer is not None:
        who = f"signed by trusted key {bundle.signer.key_id}"
    elif bundle.key_id:
        who = f"signed by key {bundle.key_id} (not checked: pass --trust to check it)"
    else:
        who = "unsigned"
    print(
        f"{args.bundle}: {bundle.name} {bundle.version}, bytecode v{bundle.mpy_major}, {len(bundle.files)} file(s) intact, {who}"
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    if not args.path.exists():
        raise EdgectlError(f"{args.path}: no such firmware file or folder", USAGE)
    files = fwcheck.python_files(args.path)
    if not files:
        raise EdgectlError(f"{args.path}: no .py files to check", USAGE)
    ports = tuple(args.port) if args.port else fwcheck.PORTS
    # mypy stops at the first file it cannot parse: report syntax errors per file, check the rest.
    reports = [r for r in (_syntax(f) for f in files) if r is not None]
    parsed = [f for f in files if f not in {r.path for r in reports}]
    try:
        reports += fwcheck.check_files(parsed, ports) if parsed else []
    except fwcheck.StubsUnavailable as exc:
        raise EdgectlError(
            f"{exc}; the MicroPython stubs come from PyPI, check the network once", FAILED
        ) from None
    reports.sort(key=lambda r: files.index(r.path))
    bad = 0
    for report in reports:
        if report.ok:
            print(f"ok    {report.path}")
            continue
        bad += 1
        print(f"FAIL  {report.path}")
        for problem in report.problems:
            print(f"      {problem}")
    print(f"{len(reports) - bad} of {len(reports)} file(s) fit {', '.join(ports)}")
    return FAILED if bad else 0


def _syntax(path: Path) -> FileReport | None:
    try:
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        return FileReport(path, [f"line {exc.lineno}: syntax error: {exc.msg}"])
    return None
