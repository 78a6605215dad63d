"""Render the bundled demo clip ``demo/clip/street.mp4`` and its timeline ``demo/clip/street.json``.

    python -m models.pipeline.clip            # re-render both (needs ffmpeg on PATH)

A fixed pole camera over one street for 48 s at 10 fps: people pass, a bag pile is dumped and later
cleared, a vending stall is set up and packed away, a car arrives, parks and leaves, and a crowd
gathers and disperses. The JSON says when each thing is on screen and where (normalized box at its
steadiest), so the HIL test and the demo can check that each issue becomes one start and one end event.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.pipeline import conditions
from models.pipeline.canvas import Canvas
from models.pipeline.objects import PAINTERS
from models.pipeline.render import Placement
from models.pipeline.view import Conditions, StreetView

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 10, 48
VIEW_SEED = 20261123


@dataclass(frozen=True)
class Episode:
    """One issue on screen from ``start`` to ``end`` seconds at ground point (lateral m, image row)."""

    cls: str
    start: float
    end: float
    lateral: float
    row: float
    seed: int


def _view() -> StreetView:
    return StreetView(np.random.default_rng(VIEW_SEED), WIDTH, HEIGHT)


def _pavement(view: StreetView) -> tuple[float, float]:
    lay = view.layout
    if lay.road_left > 0:
        return lay.wall_left + 0.6, lay.road_left - 0.5
    return lay.road_right + 0.5, lay.wall_right - 0.6


def timeline(view: StreetView) -> tuple[list[Episode], dict]:
    lay = view.layout
    p0, p1 = _pavement(view)
    mid = (p0 + p1) / 2
    lane = lay.road_left + 1.6 if lay.road_left > 0 else lay.road_right - 1.6  # the kerbside lane
    episodes = [
        Episode("garbage", 6.0, 26.0, p0 + 0.35 * (p1 - p0), HEIGHT * 0.86, 11),
        Episode("street_stall", 12.0, 36.0, mid, HEIGHT * 0.62, 12),
        Episode("vehicle", 20.0, 40.0, lane, HEIGHT * 0.58, 13),
    ]
    crowd = {
        "gathers_s": 28.0,
        "disperses_s": 42.0,
        "gone_s": 46.0,
        "size": 18,
        "lateral": p1 - 0.6,
        "row": HEIGHT * 0.5,
    }
    return episodes, crowd


def _walkers(view: StreetView, rng: np.random.Generator, n: int) -> list[dict]:
    """Pedestrians walking along the pavement, towards or away from the camera, at their own pace."""
    p0, p1 = _pavement(view)
    out = []
    for _ in range(n):
        out.append(
            {
                "lateral": rng.uniform(p0, p1),
                "start": rng.uniform(0, SECONDS - 8),
                "speed": rng.uniform(1.1, 1.6),
                "away": bool(rng.random() < 0.5),
                "seed": int(rng.integers(1 << 31)),
            }
        )
    return out


def _walker_row(view: StreetView, w: dict, t: float) -> float | None:
    """Image row of a walker at time ``t`` (metres along the street from 6 m to 40 m), or None if away."""
    dt = t - w["start"]
    if dt < 0:
        return None
    dist = 6.0 + dt * w["speed"] if w["away"] else 40.0 - dt * w["speed"]
    if not 6.0 <= dist <= 40.0:
        return None
    return view.row_at(dist)


def frame(
    view: StreetView, t: float, episodes, crowd, walkers, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    placements: list[Placement] = []
    visible: dict[str, int] = {}
    for ep in episodes:
        if not ep.start <= t < ep.end:
            continue
        row = ep.row
        if ep.cls == "vehicle":  # drives in from the distance over 4 s, and away again
            arrive, leave = min(1.0, (t - ep.start) / 4.0), min(1.0, max(0.0, (ep.end - t) / 4.0))
            d_park = view.distance(ep.row)
            d = d_park + (1 - min(arrive, leave)) * 60.0
            row = view.row_at(d)
        placements.append(Placement(ep.cls, view.ground_x(ep.lateral, row), row, ep.seed))
        visible[ep.cls] = visible.get(ep.cls, 0) + 1
    for w in walkers:
        row = _walker_row(view, w, t)
        if row is not None:
            placements.append(Placement("person", view.ground_x(w["lateral"], row), row, w["seed"]))
    crowd_rng = np.random.default_rng(7)
    spots = crowd_rng.normal(0, 1, (crowd["size"], 2))
    arrivals = np.sort(crowd_rng.uniform(0, 8, crowd["size"]))
    in_crowd = 0
    for k in range(crowd["size"]):
        here = crowd["gathers_s"] + arrivals[k] <= t < crowd["disperses_s"] + arrivals[k] * 0.5
        if not here:
            continue
        d = view.distance(crowd["row"]) + spots[k, 1] * 2.0
        row = view.row_at(max(d, 5.0))
        lat = crowd["lateral"] + spots[k, 0] * 0.9
        placements.append(Placement("person", view.ground_x(lat, row), row, 1000 + k))
        in_crowd += 1
    c = Canvas(view.background("noon"))
    for pl in sorted(placements, key=lambda p: p.y):
        PAINTERS[pl.cls](c, view, np.random.default_rng(pl.seed), pl.x, pl.y, False)
    image = conditions.apply(c, view, Conditions("noon", "clear"), rng)
    people = sum(1 for p in placements if p.cls == "person")
    return image, {"people": people, "crowd": in_crowd, **visible}


def _box_of(view: StreetView, ep: Episode) -> list[float]:
    """The normalized box of an episode's object once in place (drawn alone on a blank view)."""
    c = Canvas(view.background("noon"))
    c.begin(1)
    PAINTERS[ep.cls](
        c, view, np.random.default_rng(ep.seed), view.ground_x(ep.lateral, ep.row), ep.row, False
    )
    (x1, y1, x2, y2), _ = c.end()
    return [
        round(max(x1, 0) / WIDTH, 4),
        round(max(y1, 0) / HEIGHT, 4),
        round(min(x2, WIDTH) / WIDTH, 4),
        round(min(y2, HEIGHT) / HEIGHT, 4),
    ]


def render(out_dir: Path) -> dict:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit(
            "error: ffmpeg is not on PATH; install it (apt-get install ffmpeg) to encode the clip"
        )
    view = _view()
    episodes, crowd = timeline(view)
    walkers = _walkers(view, np.random.default_rng(VIEW_SEED + 1), 14)
    out_dir.mkdir(parents=True, exist_ok=True)
    video = out_dir / "street.mp4"
    cmd = [
        ffmpeg,
        "-y",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-s",
        f"{WIDTH}x{HEIGHT}",
        "-r",
        str(FPS),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-preset",
        "slow",
        "-crf",
        "29",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(FPS * 2),
        "-movflags",
        "+faststart",
        str(video),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    rng = np.random.default_rng(VIEW_SEED + 2)
    per_second = []
    for i in range(FPS * SECONDS):
        t = i / FPS
        image, seen = frame(view, t, episodes, crowd, walkers, rng)
        if i % FPS == 0:
            per_second.append({"t": t, **seen})
        assert proc.stdin is not None
        proc.stdin.write(image.tobytes())
    assert proc.stdin is not None
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("error: ffmpeg failed to encode the clip (see its message above)")
    meta = {
        "video": "street.mp4",
        "width": WIDTH,
        "height": HEIGHT,
        "fps": FPS,
        "duration_s": SECONDS,
        "camera": "fixed pole camera, noon, clear; rendered by models/pipeline/clip.py",
        "issues": [
            {
                "label": ep.cls,
                "appears_s": ep.start,
                "disappears_s": ep.end,
                "box": _box_of(view, ep),
                **(
                    {"note": "drives in over the first 4 s and away over the last 4 s"}
                    if ep.cls == "vehicle"
                    else {}
                ),
            }
            for ep in episodes
        ],
        "crowd": {
            "gathers_s": crowd["gathers_s"],
            "disperses_s": crowd["disperses_s"],
            "gone_s": crowd["gone_s"],
            "peak_people": crowd["size"],
        },
        "per_second": per_second,
    }
    (out_dir / "street.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.pipeline.clip", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=ROOT / "demo" / "clip", help="output folder")
    args = parser.parse_args(argv)
    meta = render(args.out)
    size = (args.out / meta["video"]).stat().st_size
    print(f"wrote {args.out / meta['video']} ({size / 1e6:.2f} MB, {meta['duration_s']} s) and street.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
