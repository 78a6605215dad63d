"""The crowd count the agent reports, measured on the unseen style (the renderer's crowd scenes).

    python -m models.pipeline.crowd_agent            # writes the section into crowd-counter's card
    python -m models.pipeline.crowd_agent --print    # prints it only

The counter's card reports the density model alone; a camera reports what ``agent/vision/crowd.py``
makes of it and of the person detections (detections below ``crowd.sparse_below``, never fewer than
the detections). This runs the default camera's pair through the agent's engines on the same 300
scenes the card's unseen-style table uses, at 640x360 as a camera delivers them, with the shipped
``sparse_below``: nothing here is tuned on these scenes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from agent.config.camera import CrowdConfig
from models.pipeline.crowd_real import agent_rule, detector_counts, real_counts
from models.pipeline.data import HELDOUT_SEEDS, CrowdSet
from models.pipeline.evaluate import count_report
from models.pipeline.footage import load_stills
from models.pipeline.footage_report import put_section
from models.pipeline.render import render_crowd

ROOT = Path(__file__).resolve().parents[2]
COUNTER = ROOT / "models" / "crowd-counter"
DETECTOR = ROOT / "models" / "street-vision"  # the default camera's person detector
BANDS = ((10, 50), (51, 100), (101, 200), (10, 200))
BEGIN, END = "<!-- agent-count: begin -->", "<!-- agent-count: end -->"


def measure(n: int = 300) -> dict[str, Any]:
    scenes = [render_crowd(seed) for seed in range(HELDOUT_SEEDS, HELDOUT_SEEDS + n)]
    d, k = real_counts(COUNTER, scenes), detector_counts(scenes, DETECTOR)
    # count_report reads only the head points: the frames themselves are not kept in the set
    truth = CrowdSet(
        np.empty((0,), np.uint8),
        [sc.points for sc in scenes],
        [sc.conditions.lighting for sc in scenes],
        [sc.conditions.weather for sc in scenes],
    )
    t = np.asarray([len(sc.points) for sc in scenes], np.float64)
    sparse_below = CrowdConfig().sparse_below
    counts = {"density": d, "detections": k, "agent": agent_rule(d, k, sparse_below)}
    rows: dict[str, dict[str, float | None]] = {}
    bands: dict[str, int] = {}
    for name, pred in counts.items():
        report = count_report(pred, truth)
        few = report.get("0-9")
        rows[name] = {"mae_0_9": round(few["mae"], 2) if few else None}
        for lo, hi in BANDS:
            band = report.get(f"{lo}-{hi}")
            rows[name][f"{lo}-{hi}"] = round(band["mape"], 1) if band else None
            bands[f"{lo}-{hi}"] = int(band["n"]) if band else 0
    return {
        "data": f"render.render_crowd seeds {HELDOUT_SEEDS}..{HELDOUT_SEEDS + n - 1} at 640x360",
        "frames": n,
        "frames_per_band": bands,
        "detector": json.loads((DETECTOR / "manifest.json").read_text())["id"],
        "sparse_below": sparse_below,
        "counts": rows,
        # per frame: people painted, density count, people detected, what the agent reports
        "per_frame": np.stack([t, d, k, counts["agent"]], 1).round(2).tolist(),
    }


def measure_stills() -> dict[str, Any]:
    """The same pair and rule on OpenCV's labelled still photos (other cameras than vtest's: signs,
    shop fronts, basketball, plants), never trained or tuned on: what a camera reports on each."""
    frames = load_stills()
    d, k = real_counts(COUNTER, frames), detector_counts(frames, DETECTOR)
    agent = agent_rule(d, k, CrowdConfig().sparse_below)
    rows = []
    for f, dv, kv, av in zip(frames, d, k, agent, strict=True):
        people = sum(t.label == "person" for t in f.truth)
        rows.append(
            {
                "photo": f.name,
                "people": people,
                "density": round(float(dv), 2),
                "detections": int(kv),
                "agent": round(float(av), 2),
            }
        )
    return {
        "photos": len(rows),
        "mae": {
            key: round(float(np.mean([abs(r[key] - r["people"]) for r in rows])), 2)
            for key in ("density", "detections", "agent")
        },
        "per_photo": rows,
    }


def stills_section(s: dict[str, Any]) -> list[str]:
    lines = [
        "### Other real photos",
        "",
        f"OpenCV's {s['photos']} labelled still photos (`models/footage/stills.labels.json`: scene-text "
        "street photos, a basketball match, plants), from cameras other than vtest's and never trained or "
        "tuned on. People per photo and the counts (MAE: density "
        f"{s['mae']['density']}, detections {s['mae']['detections']}, what the agent reports {s['mae']['agent']}):",
        "",
        "| photo | people labelled | density | detections | agent reports |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['photo']} | {r['people']} | {r['density']} | {r['detections']} | {r['agent']} |"
        for r in s["per_photo"]
    ]
    lines += [
        "",
        "Density alone reads the white letters of a dark road sign (scenetext02) as people, and spreads the",
        "two close-up players of basketball1 over more cells than two; the agent reports the detections",
        "there, since both stay under `sparse_below`. A wall of text large enough to pass it would be",
        "counted as a crowd. 1.3.0's density alone, on the same photos before it was replaced: MAE 12.05",
        "(42.3 on scenetext05's barrier and kerb).",
    ]
    return [*lines, ""]


def section(r: dict[str, Any], stills: dict[str, Any] | None = None) -> str:
    names = {
        "density": "density model alone, through the agent's engine",
        "detections": f"person detections alone ({r['detector']})",
        "agent": f"what the agent reports (sparse_below {r['sparse_below']:g})",
    }
    fb = r["frames_per_band"]
    lines = [
        BEGIN,
        "### What a camera reports on the unseen style",
        "",
        f"The same scenes ({r['data']}), as a camera delivers them, through the default camera's pair of "
        "models and `agent/vision/crowd.py`'s rule at its shipped setting (`python -m "
        "models.pipeline.crowd_agent`). MAPE %; frames per band: "
        + ", ".join(f"{k} {v}" for k, v in fb.items())
        + ".",
        "",
        "| count from | MAE 0-9 | " + " | ".join(f"MAPE {lo}-{hi}" for lo, hi in BANDS) + " |",
        "|---|---|" + "---|" * len(BANDS),
    ]
    for key, title in names.items():
        row = r["counts"][key]
        lines.append(
            f"| {title} | {row['mae_0_9']} | " + " | ".join(str(row[f"{lo}-{hi}"]) for lo, hi in BANDS) + " |"
        )
    d, a = r["counts"]["density"]["10-50"], r["counts"]["agent"]["10-50"]
    lines += [
        "",
        "The detector finds few of the painted people once a crowd is more than a few dozen (it is the",
        "density model that counts those), so the rule changes little above 20 people; below that it",
        "trusts the detections, which on these flat-shaded people undercount"
        + (
            f" (10-50 people: {a} % off by the rule, {d} % by density alone)."
            if a is not None and d is not None
            else "."
        ),
        "On real footage the detections are the better count (the rule table above), so `sparse_below`",
        "stays where the tune frames put it; these scenes are for reporting and tune nothing.",
        "",
        *(stills_section(stills) if stills else []),
        END,
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the section only; write nothing")
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args(argv)
    r = measure(args.frames)
    stills = measure_stills()
    if not args.print:
        path = COUNTER / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics["agent_count_unseen_style"] = {k: v for k, v in r.items() if k != "per_frame"}
        metrics["agent_count_stills"] = stills
        path.write_text(json.dumps(metrics, indent=2) + "\n")
        put_section(COUNTER / "MODEL_CARD.md", section(r, stills), BEGIN, END, "## Held-out composites")
    print(section(r, stills))


if __name__ == "__main__":
    main()
