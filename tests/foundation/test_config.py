"""Config validation and the `edgectl config` commands, run as a technician would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import CameraConfig, ConfigError, load_config, parse_config

EDGECTL = [sys.executable, "-m", "tools.edgectl"]
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path = ROOT, **kw) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*EDGECTL, *args], capture_output=True, text=True, cwd=cwd, env=env, **kw)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    assert run("config", "init", str(path)).returncode == 0
    return path


def test_example_config_is_valid_and_describes_a_gateway(example: Path) -> None:
    config = load_config(example)
    assert config.device.id == "pole-0042"
    assert config.uplink.protocol == "5" and config.uplink.tls and config.uplink.tls_verify
    assert config.cameras[0].zones[0].area_m2 == 60.0
    assert config.boards[0].baud == 115200
    # config check also wants the files it names: the example names the gateway's own
    result = run("config", "check", str(example), "--json")
    assert result.returncode == 1
    missing = {p["key"] for p in json.loads(result.stdout)["problems"]}
    assert missing == {"uplink.password_file", "uplink.ca_file"} | {
        f"cameras[0].models[{i}]" for i in range(2)
    }
    # with those files there (relative model paths are from the config file's folder), it is valid
    text = example.read_text()
    for name in ("mqtt-password", "ca.pem"):
        (example.parent / name).write_text("x\n")
        text = text.replace(f"/etc/edge-agent/{name}", str(example.parent / name))
    example.write_text(text)
    for model in ("street-vision", "crowd-counter"):
        (example.parent / "models" / model).mkdir(parents=True)
    elsewhere = run("config", "check", str(example), cwd=Path("/"))
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "valid" in elsewhere.stdout


def test_relative_paths_are_from_the_config_files_folder_wherever_it_runs(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "gateway.toml"
    path.write_text(
        '[device]\nid = "p1"\n[outbox]\npath = "state/outbox.sqlite"\n'
        '[[cameras]]\nid = "c"\nsource = "clips/a.mp4"\nmodels = ["models/m", "/abs/m2"]\n'
        '[[cameras]]\nid = "d"\nsource = "rtsp://192.0.2.1/s"\nmodels = ["models/m"]\n'
    )
    config = load_config(path)
    base = path.parent.resolve()
    assert config.outbox.path == base / "state" / "outbox.sqlite"
    assert config.cameras[0].source == str(base / "clips" / "a.mp4")
    assert config.cameras[0].models == [base / "models" / "m", Path("/abs/m2")]
    assert config.cameras[1].source == "rtsp://192.0.2.1/s", "URLs are not paths"
    # what the file does not set keeps its default (not rebased)
    assert (
        config.cameras[0].snapshots.face_model
        == CameraConfig.model_fields["snapshots"].default_factory().face_model
    )
    result = run("config", "check", str(path), "--json")
    problems = json.loads(result.stdout)["problems"]
    assert {
        "key": "cameras[0].models[0]",
        "problem": f"model {base / 'models' / 'm'} does not exist",
    } in problems


def test_a_misspelt_key_gets_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('[device]\nid = "p1"\nstie = "Elm St"\n[uplink]\ntelemetry_interval = 30\n')
    result = run("config", "check", str(path))
    assert result.returncode == 1
    assert "device.stie: unknown key; did you mean 'site'?" in result.stderr
    assert "uplink.telemetry_interval: unknown key; did you mean 'telemetry_interval_s'?" in result.stderr


def test_init_refuses_to_overwrite(example: Path) -> None:
    result = run("config", "init", str(example))
    assert result.returncode == 2 and "--force" in result.stderr


def test_check_names_each_wrong_key_by_dotted_path(example: Path, tmp_path: Path) -> None:
    text = example.read_text()
    text = text.replace('id = "cam-north"', 'idd = "cam-north"').replace("fps = 2 ", "fps = -3 ")
    text = text.replace("baud = 115200", 'baud = "fast"').replace('protocol = "5"', 'protocol = "4"')
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    result = run("config", "check", str(bad))
    assert result.returncode == 1
    err = result.stderr
    for path in ("cameras[0].idd", "cameras[0].id", "cameras[0].fps", "boards[0].baud", "uplink.protocol"):
        assert f"  {path}: " in err, err
    assert "unknown key" in err and "required key is missing" in err and "greater than 0" in err
    assert "Traceback" not in err


def test_syntax_error_and_missing_file_are_clear(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[device\nid = 1\n")
    result = run("config", "check", str(broken))
    assert result.returncode == 1 and "not valid TOML" in result.stderr
    result = run("config", "check", str(tmp_path / "nope.toml"))
    assert (
        result.returncode == 1
        and "nope.toml: not found; write one with `edgectl config init" in result.stderr
    )


def test_secrets_never_appear_in_check_output(tmp_path: Path) -> None:
    secret = "hunter2-Sup3rS3cret"
    path = tmp_path / "secret.toml"
    # A password written in clear is not a key the config knows: it is rejected without echoing it.
    path.write_text(f'[device]\nid = "p1"\n[uplink]\npassword = "{secret}"\nkeepalive_s = "{secret}"\n')
    result = run("config", "check", str(path))
    assert result.returncode == 1
    assert "uplink.password: unknown key" in result.stderr
    assert secret not in result.stdout + result.stderr


def test_password_comes_from_file_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    config = parse_config({"device": {"id": "p1"}, "uplink": {"password_file": str(pw)}})
    assert config.uplink.password().get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config.uplink.password())
    monkeypatch.setenv("EDGE_PW", "from-env")
    config = parse_config({"device": {"id": "p1"}, "uplink": {"password_env": "EDGE_PW"}})
    assert config.uplink.password().get_secret_value() == "from-env"
    with pytest.raises(ConfigError, match="not both"):
        parse_config({"device": {"id": "p1"}, "uplink": {"password_env": "A", "password_file": "/x"}})


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"device": {"id": "pole/1"}}, "device.id", "should match pattern"),
        ({"device": {"id": "p", "lat": 91}}, "device.lat", "less than or equal to 90"),
        ({"device": {"id": "p"}, "uplink": {"url": "http://x"}}, "uplink.url", "mqtt://"),
        ({"device": {"id": "p"}, "uplink": {"topic_prefix": "city/#"}}, "uplink.topic_prefix", "pattern"),
        ({"device": {"id": "p"}, "uplink": {"cert_file": "/c"}}, "uplink", "both cert_file and key_file"),
        ({"device": {"id": "p"}, "outbox": {"quota_mb": 0}}, "outbox.quota_mb", "greater than 0"),
        (
            {
                "device": {"id": "p"},
                "cameras": [
                    {
                        "id": "c",
                        "source": "x",
                        "models": ["m"],
                        "zones": [{"id": "z", "polygon": [[0, 0], [1, 0]]}],
                    }
                ],
            },
            "cameras[0].zones[0].polygon",
            "at least 3 corners",
        ),
        (
            {
                "device": {"id": "p"},
                "cameras": [
                    {
                        "id": "c",
                        "source": "x",
                        "models": ["m"],
                        "zones": [{"id": "z", "polygon": [[0, 0], [1.5, 0], [1, 1]]}],
                    }
                ],
            },
            "cameras[0].zones[0].polygon",
            "outside the image",
        ),
        (
            {"device": {"id": "p"}, "boards": [{"id": "b", "port": "/a"}, {"id": "b", "port": "/b"}]},
            "(top level)",
            "repeated: b",
        ),
        ({}, "device", "required key is missing"),
    ],
)
def test_validation_messages(data: dict, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    problems = dict(info.value.problems)
    assert path in problems, problems
    assert message in problems[path]
