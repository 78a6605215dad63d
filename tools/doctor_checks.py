"""The checks behind `edgectl doctor`: each looks at one thing a pole needs and says how to fix it.

Every check returns ``Finding``s and never raises for a problem it was written to find; the command
prints one line per finding. The checks use the agent's own loaders (config, model engine, video
sources), so what the doctor accepts is what the agent accepts.
"""

# Lazy imports: commands/doctor.py loads this module at every edgectl start-up, so the checks import the
# vision stack (agent.vision.engine 181 ms, .sources 148, OpenCV 127) and board_cli.probe (31) themselves.

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import aiomqtt

from agent.config import (
    BoardConfig,
    CameraConfig,
    ConfigError,
    GatewayConfig,
    UplinkConfig,
    load_config,
)
from agent.redact import redact_text, redact_url
from agent.trust.keys import TrustList
from agent.trust.packages import SignatureError, verify_package
from agent.uplink.connect import client_for

from .board_cli.ports import open_port
from .errors import EdgectlError

Status = Literal["pass", "fail", "warn", "skip"]
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}
# Where brokers publish their clock: EMQX publishes its datetime under $SYS; others may be configured.
TIME_TOPICS = ("$SYS/brokers/+/datetime", "$SYS/broker/time")


@dataclass(frozen=True)
class Finding:
    check: str  # config, model, camera, broker, clock, board, disk
    subject: str  # what was looked at: a file, a camera or board id, the broker URL
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class DoctorOptions:
    timeout_s: float = 10.0
    max_skew_s: float = 2.0
    time_topics: tuple[str, ...] = TIME_TOPICS
    skip: frozenset[str] = frozenset()
    trust: TrustList | None = None  # with keys: every model package must be signed by one of them


def check_config(path: Path) -> tuple[GatewayConfig | None, Finding]:
    if not path.exists():
        return None, Finding(
            "config",
            str(path.resolve()),
            "fail",
            "not found",
            f"write one with `edgectl config init {path}`, or name yours with --config FILE",
        )
    try:
        config = load_config(path)  # missing files are the other checks' findings, with their fixes
    except ConfigError as exc:
        problems = "; ".join(f"{where}: {what}" for where, what in exc.problems)
        return None, Finding(
            "config",
            str(path),
            "fail",
            problems,
            f"edit {path}; `edgectl config check {path}` lists each problem",
        )
    detail = (
        f"valid (device {config.device.id}, {len(config.cameras)} camera(s), {len(config.boards)} board(s))"
    )
    return config, Finding("config", str(path), "pass", detail)


def check_models(config: GatewayConfig, trust: TrustList | None = None) -> list[Finding]:
    from agent.vision.engine import ModelRefused, load_engine
    from agent.vision.part import engine_options

    options = engine_options(config.vision)
    folders = sorted({folder for cam in config.cameras for folder in cam.models}, key=str)
    findings = []
    for folder in folders:
        try:
            engine = load_engine(folder, options)
        except ModelRefused as exc:
            findings.append(
                Finding(
                    "model",
                    str(folder),
                    "fail",
                    str(exc).removeprefix(f"{folder}: "),
                    "copy the model folder again from its release (`edgectl model verify` checks it)",
                )
            )
            continue
        m = engine.manifest
        tested = ", golden image reproduced" if options.self_test and m.golden else ""
        signed = ""
        if trust is not None and trust.keys:
            try:
                signer = verify_package(Path(folder), trust, kind="model").signer
            except SignatureError as exc:
                fix = "install the package as released, or sign it: `edgectl model sign FOLDER --key KEY`"
                findings.append(Finding("model", str(folder), "fail", f"{m.id} {m.version}: {exc}", fix))
                continue
            signed = f", signed by trusted key {signer.key_id}"
        findings.append(
            Finding(
                "model",
                str(folder),
                "pass",
                f"{m.id} {m.version}: hash matches, loads in onnxruntime{tested}{signed}",
            )
        )
    return findings


def check_camera(camera: CameraConfig, timeout_s: float) -> Finding:
    import cv2

    from agent.vision.sources import SourceError, folder_images, open_capture, source_kind

    fix = "check the camera's power, cable or network, and its source address and credentials in the config"
    try:
        kind = source_kind(camera.source)
        if kind == "folder":
            frame = cv2.imread(str(folder_images(Path(camera.source))[0]), cv2.IMREAD_COLOR)
        else:
            cap = open_capture(camera.source_url(), kind, timeout_s)
            try:
                ok, frame = cap.read()
                frame = frame if ok else None
            finally:
                cap.release()
    except (SourceError, ValueError) as exc:
        return Finding("camera", camera.id, "fail", redact_text(str(exc)), fix)
    if frame is None:
        return Finding(
            "camera", camera.id, "fail", f"{_redact(camera.source)}: opened but delivered no frame", fix
        )
    h, w = frame.shape[:2]
    return Finding("camera", camera.id, "pass", f"{_redact(camera.source)}: delivered a {w}x{h} frame")


def _redact(source: str) -> str:
    """A source address without its password (rtsp://user:pass@host/...)."""
    return redact_url(source)


def broker_failure(url: str, exc: BaseException) -> tuple[str, str]:
    """What went wrong connecting to the broker, and the fix, from the exception chain."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 5:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    text = " ".join(str(e) for e in chain)
    rc = getattr(exc, "rc", None)
    host = urlsplit(url).hostname
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"TLS verification failed: {next((str(e) for e in chain if isinstance(e, ssl.SSLError)), text)}",
            "set uplink.ca_file to the CA that signed the broker's certificate, and use the host name the "
            "certificate names in uplink.url",
        )
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return (
            f"TLS handshake failed: {text}",
            "check that the port speaks TLS (mqtts://) or plain MQTT (mqtt://)",
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return (
            f"connection refused: nothing listens at {host}:{_port(url)}",
            "check uplink.url (host and port), that the broker runs, and the firewall",
        )
    if rc is not None and str(rc) and any(w in str(rc).lower() for w in ("auth", "password", "username")):
        return (
            f"the broker refused the login ({rc})",
            "check uplink.username and the password file or variable",
        )
    if rc is not None:
        return (
            f"the broker refused the connection ({rc})",
            "ask the broker's operator why this client is refused",
        )
    if any(isinstance(e, TimeoutError) for e in chain) or "timed out" in text.lower():
        return f"no answer from {host}:{_port(url)}", "check the network route, the firewall and uplink.url"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return f"cannot resolve {host}", "check the host name in uplink.url and the gateway's DNS settings"
    return f"cannot connect: {text}", "check uplink.url and the network"


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or DEFAULT_PORTS.get(parts.scheme, 1883)


def parse_broker_time(payload: bytes) -> float | None:
    """A broker's clock from an ISO 8601 string or Unix seconds/milliseconds; None if unreadable."""
    text = payload.decode("utf-8", "replace").strip()
    try:
        value = float(text)
        return value / 1000.0 if value > 1e11 else value
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


async def probe_broker(uplink: UplinkConfig, options: DoctorOptions) -> list[Finding]:
    """Connect exactly as the agent's uplink does; then read the broker's clock where it publishes one."""
    url = uplink.url
    try:
        client = client_for(uplink, f"edgectl-doctor-{os.getpid()}")
    except (OSError, ssl.SSLError) as exc:
        return [
            Finding(
                "broker",
                url,
                "fail",
                f"TLS or password files cannot be used: {exc}",
                "check uplink.ca_file, cert_file, key_file and password_file",
            )
        ]
    except ValueError as exc:
        return [Finding("broker", url, "fail", str(exc), "fix uplink.password_file or password_env")]
    findings: list[Finding] = []
    try:
        async with asyncio.timeout(options.timeout_s + 5), client:
            if not uplink.tls:
                findings.append(
                    Finding(
                        "broker",
                        url,
                        "warn",
                        "reachable, but without TLS: events cross the network in clear",
                        "use mqtts:// outside a lab",
                    )
                )
            elif not uplink.tls_verify:
                findings.append(
                    Finding(
                        "broker",
                        url,
                        "warn",
                        "reachable, but the broker's certificate is NOT verified",
                        "set uplink.tls_verify = true and uplink.ca_file",
                    )
                )
            else:
                findings.append(
                    Finding("broker", url, "pass", "reachable, TLS certificate verified, login accepted")
                )
            if "clock" not in options.skip:
                findings.append(await _clock(client, options))
    except Exception as exc:  # aiomqtt wraps socket, TLS and CONNACK failures; each gets a sentence
        detail, fix = broker_failure(url, exc)
        findings.append(Finding("broker", url, "fail", detail, fix))
    return findings


async def _clock(client: object, options: DoctorOptions) -> Finding:
    assert isinstance(client, aiomqtt.Client)
    for topic in options.time_topics:
        await client.subscribe(topic)
    try:
        async with asyncio.timeout(min(options.timeout_s, 3.0)):
            async for message in client.messages:
                if not isinstance(message.payload, bytes | bytearray):
                    continue
                broker_time = parse_broker_time(bytes(message.payload))
                if broker_time is None:
                    continue
                skew = time.time() - broker_time
                detail = (
                    f"gateway clock is {abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} the broker"
                )
                if abs(skew) > options.max_skew_s:
                    return Finding(
                        "clock",
                        str(message.topic),
                        "fail",
                        detail,
                        "enable time sync (chrony or systemd-timesyncd with a reachable NTP server)",
                    )
                return Finding("clock", str(message.topic), "pass", detail)
    except TimeoutError:
        pass
    return Finding("clock", "broker", "skip", "the broker publishes no time; skew against it is unknown")


def check_board(board: BoardConfig, timeout_s: float) -> Finding:
    try:
        port = open_port(board.port, board.baud)
    except EdgectlError as exc:
        if "in use by another program" in exc.message:
            # On a running gateway the agent holds its boards' ports: that is not a fault.
            detail = (
                f"{board.port} is in use, usually by the running edge-agent (its health reports the board)"
            )
            return Finding("board", board.id, "skip", detail)
        return Finding(
            "board", board.id, "fail", exc.message, "plug the board in, or fix boards.port in the config"
        )
    port.close()
    from .board_cli.probe import probe

    answer = probe(board.port, board.baud, hello_timeout_s=min(timeout_s, 1.5))
    if not answer.answered:
        return Finding(
            "board",
            board.id,
            "fail",
            f"{board.port} opens but no board answers ({answer.detail})",
            "check the cable and the baud rate; press the board's RESET button; flash it with `edgectl board flash`",
        )
    if not answer.firmware:
        return Finding(
            "board",
            board.id,
            "fail",
            f"{answer.summary()}: our firmware is not installed",
            "run `edgectl board flash`",
        )
    if answer.board_id != board.id:
        return Finding(
            "board",
            board.id,
            "warn",
            f"{answer.summary()}: provisioned as {answer.board_id or '(nothing)'}, the config calls it {board.id}",
            f"run `edgectl board provision SETUP --port {board.port} --board-id {board.id}`",
        )
    return Finding("board", board.id, "pass", f"{board.port}: {answer.summary()}")


def check_disk(config: GatewayConfig) -> Finding:
    path = config.outbox.path
    quota = int(config.outbox.quota_mb * 1e6)
    used = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    anchor = path.parent
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not os.access(anchor, os.W_OK):
        return Finding(
            "disk",
            str(path),
            "fail",
            f"{anchor} is not writable by this user",
            "create the outbox folder and give it to the agent's user",
        )
    free = shutil.disk_usage(anchor).free
    need = max(quota - used, 0)
    detail = f"{free / 1e6:,.0f} MB free on {anchor}; the outbox uses {used / 1e6:,.1f} of its {quota / 1e6:,.0f} MB quota"
    if free < need:
        return Finding("disk", str(path), "fail", detail, "free disk space or lower outbox.quota_mb")
    return Finding("disk", str(path), "pass", detail)


def run_checks(config_path: Path, options: DoctorOptions, report: Callable[[Finding], None]) -> list[Finding]:
    """Run every check not skipped, reporting each finding as soon as it is known."""
    # A camera that cannot be opened is reported by the finding; FFmpeg's own log lines are noise here.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    findings: list[Finding] = []

    def add(items: list[Finding]) -> None:
        for item in items:
            findings.append(item)
            report(item)

    config, finding = check_config(config_path)
    add([finding])
    if config is None:
        return findings
    if "model" not in options.skip:
        add(check_models(config, options.trust))
    if "camera" not in options.skip:
        add([check_camera(cam, options.timeout_s) for cam in config.cameras])
    if "broker" not in options.skip:
        add(asyncio.run(probe_broker(config.uplink, options)))
    if "board" not in options.skip:
        add([check_board(board, options.timeout_s) for board in config.boards])
    if "disk" not in options.skip:
        try:
            add([check_disk(config)])
        except OSError as exc:
            add(
                [
                    Finding(
                        "disk",
                        str(config.outbox.path),
                        "fail",
                        f"cannot inspect: {exc}",
                        "check the outbox path",
                    )
                ]
            )
    return findings
