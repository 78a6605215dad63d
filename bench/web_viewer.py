"""What watching costs: the agent's CPU with one live-view viewer against none, alternating.

    python bench/web_viewer.py [--rounds 4] [--seconds 15]

The agent runs as its own process (``edge-agent``) on the demo's street clip (looping, 4 fps, both
models) with Mosquitto, the simulated board (in this process) and the commissioning page enabled.
Rounds alternate: no viewer, then one viewer reading the MJPEG stream (in this process, so its own
CPU is not counted). The agent's CPU time (user + system, all its threads) is read with psutil over
each window; the figures are % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402
import tomli_w  # noqa: E402

from tools.broker import Broker, free_port  # noqa: E402
from tools.demo import DEMO_CONFIG, demo_config, start_board  # noqa: E402
from tools.demo import Broker as DemoBroker  # noqa: E402

PASSWORD = "bench password for the page"


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


async def window(
    proc: psutil.Process, url: str, seconds: float, viewer: bool, jar: aiohttp.CookieJar
) -> tuple[float, int]:
    """The agent's CPU (% of one core) over ``seconds``, and the frames a viewer got meanwhile."""
    frames = 0
    start_cpu, start = cpu_s(proc), time.monotonic()
    if not viewer:
        await asyncio.sleep(seconds)
    else:
        async with (
            aiohttp.ClientSession(cookie_jar=jar) as http,
            http.get(f"{url}api/cameras/cam-1/live.mjpeg") as response,
        ):
            assert response.status == 200, response.status
            while time.monotonic() - start < seconds:
                chunk = await response.content.readuntil(b"--frame\r\n")
                frames += chunk.count(b"\xff\xd8")  # JPEG start markers
    elapsed = time.monotonic() - start
    return 100 * (cpu_s(proc) - start_cpu) / elapsed, frames


async def measure(
    url: str, proc: psutil.Process, rounds: int, seconds: float
) -> list[tuple[float, float, int]]:
    jar = aiohttp.CookieJar(unsafe=True)  # the page is on 127.0.0.1: keep its cookie
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        for _ in range(120):
            try:
                async with http.post(f"{url}login", data={"password": PASSWORD}, allow_redirects=False) as r:
                    if r.status == 302:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
        else:
            raise SystemExit("the page did not answer within 60 s")
    await asyncio.sleep(seconds)  # warm-up: models loaded, frames flowing
    out = []
    for i in range(rounds):
        none, _ = await window(proc, url, seconds, False, jar)
        one, frames = await window(proc, url, seconds, True, jar)
        print(f"round {i + 1}: no viewer {none:.1f} %, one viewer {one:.1f} % ({frames / seconds:.1f} fps)")
        out.append((none, one, frames))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each window")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="web-viewer-bench-") as tmp_name:
        tmp = Path(tmp_name)
        broker: Broker | DemoBroker = DemoBroker(tmp)
        broker.start()
        board = start_board(tmp)
        agent = None
        try:
            data = tomllib.loads(DEMO_CONFIG.read_text(encoding="utf-8"))
            data["cameras"] = [{**data["cameras"][0], "loop": True}]
            (tmp / "password").write_text(PASSWORD)
            port = free_port()
            data["web"] = {"enabled": True, "port": port, "password_file": str(tmp / "password")}
            (tmp / "demo.toml").write_text(tomli_w.dumps(data))
            config = demo_config(tmp, broker, board.port if board else None, tmp / "demo.toml")
            config_file = tmp / "gateway.toml"
            config_file.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))
            agent = subprocess.Popen(
                [sys.executable, "-m", "agent", "-c", str(config_file), "--log-level", "WARNING"], cwd=ROOT
            )
            results = asyncio.run(
                measure(f"http://127.0.0.1:{port}/", psutil.Process(agent.pid), args.rounds, args.seconds)
            )
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(30)
            if board is not None:
                board.stop()
            broker.stop()
    none = [r[0] for r in results]
    one = [r[1] for r in results]
    fps = [r[2] / args.seconds for r in results]
    print(
        f"\nagent CPU, % of one core, median of {args.rounds} alternating rounds of {args.seconds:.0f} s: "
        f"no viewer {statistics.median(none):.1f} (range {min(none):.1f}-{max(none):.1f}), "
        f"one viewer {statistics.median(one):.1f} (range {min(one):.1f}-{max(one):.1f}); "
        f"cost of one viewer {statistics.median(o - n for n, o in zip(none, one, strict=True)):+.1f} points; "
        f"viewer got {statistics.median(fps):.1f} fps"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
