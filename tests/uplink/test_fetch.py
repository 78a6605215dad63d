"""Packages fetched from an HTTPS URL named in the signed install command: a local aiohttp HTTPS server
with a CA made here, the real agent, real Mosquitto and the real `edgectl fleet model --from-url`.
The certificate is verified, redirects must stay on TLS, no more than the signed size is read, a cut
download resumes with a Range request, and the package gets every check an uploaded one gets."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from https_support import PackageServer, server_tls
from pki_support import make_ca
from test_model_update import DEVICE, ENV, _agent, _config, _fleet, _package, _running

from agent.trust.keys import new_key
from tools.broker import Broker
from tools.commands.fleet import pack


def _send(broker: Broker, operator: Path, args: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.edgectl", "cmd", "send", DEVICE, "model-install", "--url", broker.url,
         "--key", str(operator), "--args", json.dumps({"camera": "cam-1", **args})],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip


@pytest.mark.timeout(600)
def test_a_model_fetched_over_https_is_verified_capped_resumed_and_checked(
    mosquitto: Broker, tmp_path: Path
) -> None:
    signer = tmp_path / "model-signer.pem"
    first = _package(tmp_path / "pkg-first", signer, "2.0.1")
    second = _package(tmp_path / "pkg-second", signer, "2.0.2")
    stranger = _package(tmp_path / "pkg-stranger", tmp_path / "stranger.pem", "2.0.3")
    files = {"first.tar": pack(first), "second.tar": pack(second), "stranger.tar": pack(stranger)}
    ca_path, ca_key, ca_cert = make_ca(tmp_path, "city-ca")
    _, other_key, other_cert = make_ca(tmp_path, "other-ca")
    private, public = new_key()
    operator = tmp_path / "operator.key"
    operator.write_text(private + "\n")
    config = _config(mosquitto, tmp_path, public, signer, fetch_ca_file=str(ca_path))
    server = PackageServer(files)

    def digest(name: str) -> str:
        return hashlib.sha256(files[name]).hexdigest()

    async def go() -> None:
        trusted, untrusted = await server.start(
            [
                server_tls(tmp_path, ca_key, ca_cert, "pkg"),
                server_tls(tmp_path, other_key, other_cert, "bad"),
            ]
        )
        url = f"https://127.0.0.1:{trusted}"
        try:
            async with _agent(config) as ctx:
                # a server whose certificate no trusted CA signed: refused before a byte is taken
                refused = await asyncio.to_thread(
                    _fleet,
                    mosquitto,
                    operator,
                    first,
                    "--from-url",
                    f"https://127.0.0.1:{untrusted}/pkg/first.tar",
                )
                assert refused.returncode == 1 and "fetch-failed" in refused.stderr, refused.stderr
                assert "certificate is not trusted" in refused.stderr and "fetch_ca_file" in refused.stderr
                assert server.ranges == [], "no request reached the application over a refused handshake"

                # cut halfway, then fetched again from where it stopped
                cut = await asyncio.to_thread(
                    _fleet, mosquitto, operator, first, "--from-url", f"{url}/cut/first.tar"
                )
                assert cut.returncode == 1 and "fetch-failed" in cut.stderr, cut.stderr
                assert "send the command again to resume" in cut.stderr
                assert _running(ctx) == [("street-issues", "2.0.0")]
                done = await asyncio.to_thread(
                    _fleet, mosquitto, operator, first, "--from-url", f"{url}/cut/first.tar"
                )
                assert done.returncode == 0, done.stdout + done.stderr
                assert (
                    f"{DEVICE:<20} ok       street-issues 2.0.1 on cam-1 (was street-issues 2.0.0)"
                    in done.stdout
                )
                assert _running(ctx) == [("street-issues", "2.0.1")]
                assert server.ranges[0] is None and server.ranges[1] is not None, server.ranges
                resumed_at = int(server.ranges[1].removeprefix("bytes=").rstrip("-"))
                assert 0 < resumed_at <= len(files["first.tar"]) // 2, "only the missing part is fetched"

                # what the signed command says holds: https only, no more than its size, its hash, a
                # trusted signature
                def send(name: str, path: str, **more: Any) -> subprocess.CompletedProcess[str]:
                    args = {"url": f"{url}/{path}/{name}", "sha256": digest(name), "size": len(files[name])}
                    return _send(mosquitto, operator, {**args, **more})

                plain = await asyncio.to_thread(
                    send, "second.tar", "pkg", url=f"http://127.0.0.1:{trusted}/pkg/x"
                )
                assert plain.returncode != 0 and "https://" in plain.stdout + plain.stderr
                redirected = await asyncio.to_thread(send, "second.tar", "plain")
                assert "redirects to http://" in redirected.stdout + redirected.stderr
                padded = await asyncio.to_thread(send, "second.tar", "padded")
                assert "too-big" in padded.stdout + padded.stderr
                short = await asyncio.to_thread(send, "second.tar", "pkg", size=len(files["second.tar"]) - 1)
                assert "too-big" in short.stdout + short.stderr
                wrong = await asyncio.to_thread(send, "second.tar", "pkg", sha256=digest("first.tar"))
                assert "bad-package" in wrong.stdout + wrong.stderr
                forged = await asyncio.to_thread(send, "stranger.tar", "pkg")
                assert "bad-signature" in forged.stdout + forged.stderr
                assert _running(ctx) == [("street-issues", "2.0.1")], "every refusal changes nothing"
                status = ctx.uploads.transfers
                assert status == {}, f"refused fetches leave nothing staged: {status}"

                done = await asyncio.to_thread(send, "second.tar", "pkg")
                assert done.returncode == 0, done.stdout + done.stderr
                assert _running(ctx) == [("street-issues", "2.0.2")]
        finally:
            await server.runner.cleanup()

    asyncio.run(go())


def test_a_missing_fetch_ca_file_is_named_by_config_check_and_by_the_fetch(tmp_path: Path) -> None:
    from agent.commands import CommandError
    from agent.config import file_problems, load_config
    from agent.transfers import Uploads

    path = tmp_path / "gateway.toml"
    path.write_text('[device]\nid = "p1"\n[updates]\nfetch_ca_file = "city-ca.pem"\n')
    config = load_config(path)
    assert config.updates.fetch_ca_file == tmp_path / "city-ca.pem", "from the config file's folder"
    assert ("updates.fetch_ca_file", f"file {tmp_path / 'city-ca.pem'} does not exist") in file_problems(
        config
    )

    uploads = Uploads(tmp_path / "uploads", config.updates.fetch_ca_file)
    with pytest.raises(CommandError) as refused:
        asyncio.run(uploads.fetch("https://127.0.0.1:9/p.tar", "ab" * 32, 1000))
    assert refused.value.code == "no-trust" and "updates.fetch_ca_file" in refused.value.message
    assert uploads.transfers == {} and not any((tmp_path / "uploads").iterdir()), "nothing staged"
