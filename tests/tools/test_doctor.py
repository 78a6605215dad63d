"""`edgectl doctor` on a real config: real ONNX model, video file, Mosquitto over TLS, a pty board."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.publish as publish
import pytest
from synthetic_models import constant_model, write_manifest

from firmware.sim.stock_board import StockBoard
from tools.edgectl import main as edgectl
from tools.errors import FAILED


@pytest.fixture
def board(tmp_path: Path) -> Iterator[StockBoard]:
    """A simulated board with our firmware 1.4.0 installed and provisioned as board-1."""
    with StockBoard(tmp_path / "board-flash") as sim:
        (sim.flash / "fw").mkdir()
        (sim.flash / "fw" / "current").write_text("1.4.0\n")
        (sim.flash / "config.json").write_text('{"board_id": "board-1"}')
        yield sim


@pytest.fixture
def pole(tmp_path: Path, broker, pki, board: StockBoard) -> dict[str, Path | str]:
    """Everything a healthy pole has: a model folder, a camera clip, a broker with TLS, a board port."""
    model = tmp_path / "models" / "street-issues"
    constant_model(model / "model.onnx", np.zeros((1, 6, 4), np.float32))
    write_manifest(model, "model.onnx", id="street-issues", version="1.0.0", classes=["a", "b"])
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for i in range(3):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return {
        "model": model,
        "clip": clip,
        "url": broker.tls_url,
        "ca": pki.ca_file,
        "port": board.port,
        "dir": tmp_path,
    }


def write_config(pole: dict, **override: str) -> Path:
    values = {
        "model": str(pole["model"]),
        "clip": str(pole["clip"]),
        "url": pole["url"],
        "ca": str(pole["ca"]),
        "port": pole["port"],
        "outbox": str(Path(pole["dir"]) / "outbox" / "outbox.sqlite"),
        "quota": "1",
    }
    values.update(override)
    text = f"""
[device]
id = "pole-0042"
[uplink]
url = "{values["url"]}"
ca_file = "{values["ca"]}"
[outbox]
path = "{values["outbox"]}"
quota_mb = {values["quota"]}
[[cameras]]
id = "cam-north"
source = "{values["clip"]}"
models = ["{values["model"]}"]
[[boards]]
id = "board-1"
port = "{values["port"]}"
"""
    path = Path(pole["dir"]) / "config.toml"
    path.write_text(text)
    return path


def doctor(config: Path, *extra: str) -> tuple[int, list[dict]]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = edgectl(["doctor", "--config", str(config), "--json", "--timeout", "5", *extra])
    return code, json.loads(out.getvalue())


def by_check(findings: list[dict]) -> dict[str, dict]:
    return {f["check"]: f for f in findings}


def test_a_healthy_pole_passes(pole: dict, capsys) -> None:
    config = write_config(pole)
    code, findings = doctor(config)
    status = {f["check"]: f["status"] for f in findings}
    assert status == {
        "config": "pass",
        "model": "pass",
        "camera": "pass",
        "broker": "pass",
        "clock": "skip",  # Mosquitto does not publish its time
        "board": "pass",
        "disk": "pass",
    }, findings
    assert code == 0
    assert "TLS certificate verified" in by_check(findings)["broker"]["detail"]
    assert "64x48 frame" in by_check(findings)["camera"]["detail"]
    # The human form: one line per check, a summary.
    assert edgectl(["doctor", "--config", str(config), "--timeout", "5", "--skip", "model"]) == 0
    out = capsys.readouterr().out
    assert "PASS  broker" in out and "SKIP  clock" in out and "0 failed" in out


def test_each_kind_of_failure_is_reported_with_its_fix(pole: dict, pki, closed_port: int) -> None:
    (pole["model"] / "model.onnx").write_bytes((pole["model"] / "model.onnx").read_bytes()[:-8])
    config = write_config(
        pole,
        clip=str(Path(pole["dir"]) / "no-such-clip.mp4"),
        port="/dev/ttyUSB-unplugged",
        quota="1e12",  # a petabyte outbox quota: no disk has room for it
        url=f"mqtts://localhost:{closed_port}",
    )
    code, findings = doctor(config, "--skip", "clock")
    found = by_check(findings)
    assert code == FAILED
    assert {f["status"] for f in findings if f["check"] != "config"} == {"fail"}
    assert "does not match the manifest" in found["model"]["detail"]
    assert "no such file" in found["camera"]["detail"]
    assert "connection refused" in found["broker"]["detail"]
    assert "no such serial port" in found["board"]["detail"]
    assert "quota" in found["disk"]["detail"] and "outbox.quota_mb" in found["disk"]["fix"]
    assert all(f["fix"] for f in findings if f["status"] == "fail")


def test_broker_with_a_certificate_from_another_ca(pole: dict, pki) -> None:
    config = write_config(pole, ca=str(pki.other_ca_file))
    code, findings = doctor(config, "--skip", "model", "--skip", "camera")
    broker = by_check(findings)["broker"]
    assert code == FAILED and broker["status"] == "fail"
    assert "TLS verification failed" in broker["detail"] and "ca_file" in broker["fix"]


def test_plain_mqtt_is_a_warning_not_a_failure(pole: dict, broker) -> None:
    config = write_config(pole, url=broker.url)
    code, findings = doctor(config, "--skip", "model", "--skip", "camera")
    assert code == 0 and by_check(findings)["broker"]["status"] == "warn"


def test_clock_skew_against_a_broker_that_publishes_its_time(pole: dict, broker) -> None:
    topic = f"test/{os.getpid()}/broker-time"
    host, port = "127.0.0.1", broker.port
    config = write_config(pole)
    skewed = time.time() - 300  # the broker says it is 5 minutes earlier: our clock is ahead
    publish.single(topic, f"{skewed:.3f}", retain=True, hostname=host, port=port)
    try:
        code, findings = doctor(config, "--skip", "model", "--skip", "camera", "--time-topic", topic)
        clock = by_check(findings)["clock"]
        assert code == FAILED and clock["status"] == "fail"
        assert "ahead of the broker" in clock["detail"] and "NTP" in clock["fix"]
        publish.single(
            topic, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), retain=True, hostname=host, port=port
        )
        code, findings = doctor(config, "--skip", "model", "--skip", "camera", "--time-topic", topic)
        assert code == 0 and by_check(findings)["clock"]["status"] == "pass"
    finally:
        publish.single(topic, b"", retain=True, hostname=host, port=port)


def test_an_invalid_config_stops_at_the_config_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[device]\nid = "pole 42"\n[uplink]\nurl = "http://x"\n')
    assert edgectl(["doctor", "--config", str(bad)]) == FAILED
    out = capsys.readouterr().out
    assert out.startswith("FAIL  config") and "device.id" in out and "uplink.url" in out
    assert "1 failed" in out


def test_a_camera_password_never_reaches_the_report(pole: dict, closed_port: int) -> None:
    config = write_config(pole, clip=f"rtsp://admin:s3cret@127.0.0.1:{closed_port}/stream1")
    code, findings = doctor(config, "--skip", "model", "--skip", "broker")
    camera = by_check(findings)["camera"]
    assert code == FAILED and camera["status"] == "fail"
    assert "admin:***@" in camera["detail"] and "s3cret" not in json.dumps(findings)


def test_a_refused_login_names_the_credentials(pole: dict, locked_broker) -> None:
    config = write_config(pole, url=locked_broker.url)
    code, findings = doctor(config, "--skip", "model", "--skip", "camera")
    broker = by_check(findings)["broker"]
    assert code == FAILED and broker["status"] == "fail"
    assert "refused the login" in broker["detail"] and "uplink.username" in broker["fix"]


def test_a_board_port_held_by_the_running_agent_is_skipped_not_failed(pole: dict) -> None:
    from tools.board_cli.ports import open_port

    held = open_port(pole["port"])  # as the agent holds it
    try:
        code, findings = doctor(write_config(pole), "--skip", "model", "--skip", "camera", "--skip", "broker")
    finally:
        held.close()
    board = by_check(findings)["board"]
    assert code == 0 and board["status"] == "skip" and "in use" in board["detail"]


def test_board_answers_are_checked_against_the_config(pole: dict, board: StockBoard) -> None:
    config = write_config(pole)
    skip = ("--skip", "model", "--skip", "camera", "--skip", "broker", "--skip", "disk")
    code, findings = doctor(config, *skip)
    found = by_check(findings)["board"]
    assert code == 0 and found["status"] == "pass" and "firmware 1.4.0, board board-1" in found["detail"]
    (board.flash / "config.json").write_text('{"board_id": "board-7"}')
    code, findings = doctor(config, *skip)
    found = by_check(findings)["board"]
    assert code == 0 and found["status"] == "warn" and "provisioned as board-7" in found["detail"]
    assert "--board-id board-1" in found["fix"]
    (board.flash / "fw" / "current").unlink()
    code, findings = doctor(config, *skip)
    found = by_check(findings)["board"]
    assert code == FAILED and "our firmware is not installed" in found["detail"]


def test_with_a_trust_list_models_must_be_signed(pole: dict, tmp_path: Path) -> None:
    from agent.trust.keys import generate_signing_key, public_key_b64
    from agent.trust.packages import sign_package

    key = generate_signing_key(tmp_path / "ops.pem")
    public = public_key_b64(key.public_key())
    config = write_config(pole)
    skip = ("--skip", "camera", "--skip", "broker", "--skip", "board", "--skip", "disk")
    code, findings = doctor(config, *skip, "--trust-key", public)
    assert code == FAILED and "not signed" in by_check(findings)["model"]["detail"]
    sign_package(pole["model"], key, "model", "street-issues", "1.0.0")
    code, findings = doctor(config, *skip, "--trust-key", public)
    assert code == 0 and "signed by trusted key" in by_check(findings)["model"]["detail"]


def test_relative_model_paths_are_from_the_config_and_a_missing_config_points_at_init(
    pole: dict, tmp_path: Path
) -> None:
    """The same config passes wherever doctor runs, and says which absolute path it tried."""
    config = write_config(pole, model=os.path.relpath(pole["model"], Path(pole["dir"])))
    assert config.parent == Path(pole["dir"]), "the model is given relative to the config's folder"
    here = os.getcwd()
    try:
        os.chdir(tmp_path)  # anywhere else
        skips = [a for c in ("clock", "camera", "broker", "board", "disk") for a in ("--skip", c)]
        code, findings = doctor(config, *skips)
    finally:
        os.chdir(here)
    (model,) = [f for f in findings if f["check"] == "model"]
    assert model["status"] == "pass" and model["subject"] == str(Path(pole["model"]).resolve()), model
    code, findings = doctor(tmp_path / "absent.toml")
    (finding,) = findings
    assert code == FAILED and finding["detail"] == "not found" and "edgectl config init" in finding["fix"]
