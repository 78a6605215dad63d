"""Real-footage figures for a shipped model folder, written into its metrics.json and model card.

    python -m models.pipeline.footage_report street-issues crowd-counter

Our synthetic-trained models are measured on the same labelled real frames as the imported
detector (``models/footage``), at their shipped thresholds and on the ``test`` frames only. The card
keeps the section between markers, so a rebuild (``card.py``) writes it again from metrics.json.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from agent.vision.detections import DensityMap
from agent.vision.engine import EngineOptions, load_engine
from models.pipeline.footage import ROOT, load_footage, score_label

BEGIN, END = "<!-- real-footage -->", "<!-- /real-footage -->"
ISSUE_LABELS = ("garbage", "street_stall", "pothole", "debris_pile", "illegal_ad")


def measure(folder: Path) -> dict:
    engine = load_engine(folder, EngineOptions(intra_op_threads=2, self_test=False))
    footage = load_footage()
    frames = footage.test
    prep = engine.preprocessor()
    found = [engine.infer(f.image, prep) for f in frames]
    out: dict = {"footage": footage.name, "test_frames": len(frames)}
    if engine.is_density:
        truth = np.asarray([sum(t.label == "person" for t in f.truth) for f in frames], np.float64)
        pred = np.asarray([r.count for r in found if isinstance(r, DensityMap)], np.float64)
        out["person_count"] = {
            "mean_truth": float(truth.mean()),
            "mean_count": float(pred.mean()),
            "mae": float(np.abs(pred - truth).mean()),
            "mean_signed_error": float((pred - truth).mean()),
        }
        return out
    labels = engine.manifest.labels
    for label in ("person", "vehicle"):
        if label in labels:
            out[label] = score_label(label, labels, frames, found).at(0.0)
    # The clip has no street issue in it: every issue detection there is a false alarm.
    out["issue_detections_per_frame"] = {
        label: float(np.mean([(d.class_id == labels.index(label)).sum() for d in found]))
        for label in ISSUE_LABELS
        if label in labels
    }
    return out


def section(r: dict) -> str:
    """The card's real-footage section from ``metrics["real_footage"]``."""
    lines = [
        BEGIN,
        "## Real footage",
        "",
        f"Measured on {r['test_frames']} `test` frames of OpenCV's street-corner clip `vtest.avi` (Debian "
        "`opencv-doc`, 768x576; our labels in `models/footage/vtest.labels.json`), at the shipped "
        "thresholds. This model never saw real frames in training.",
        "",
    ]
    if "person_count" in r:
        c = r["person_count"]
        lines += [
            f"- People per frame: {c['mean_truth']:.1f} labelled, {c['mean_count']:.1f} counted "
            f"(mean absolute error {c['mae']:.1f}, signed {c['mean_signed_error']:+.1f}): the density map "
            "takes real textures (grass, brick, paving) for people. The agent therefore counts "
            "detections below `crowd.sparse_below` (20) and never below the detector's count.",
        ]
    for label in ("person", "vehicle"):
        if label in r:
            m = r[label]
            lines.append(
                f"- `{label}`: precision {m['precision']:.2f}, recall {m['recall']:.2f} "
                f"({m['tp']} of {m['truth']} found, {m['fp']} false), count error {m['count_error']:.2f} per frame."
            )
    if "issue_detections_per_frame" in r:
        per = ", ".join(f"`{k}` {v:.2f}" for k, v in r["issue_detections_per_frame"].items())
        lines.append(
            f"- Street-issue detections per frame on a clip with no street issue (all false alarms): {per}."
        )
    lines += ["", END, ""]
    return "\n".join(lines)


def put_section(card: Path, block: str, begin: str, end: str, before: str) -> None:
    """Write ``block`` (which starts with ``begin`` and ends with ``end``) into a model card: over the one
    between those markers, else before the heading ``before``, else at the end."""
    text = card.read_text(encoding="utf-8")
    if begin in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", lambda _: block, text, flags=re.S)
    else:
        at = text.find(before)
        text = text[:at] + block + "\n" + text[at:] if at >= 0 else text.rstrip() + "\n\n" + block
    card.write_text(text, encoding="utf-8")


def write_section(card: Path, r: dict) -> None:
    # before the measured figures, where a reader looks first
    put_section(card, section(r), BEGIN, END, "## Measured figures")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model folder names under models/")
    args = parser.parse_args(argv)
    for name in args.models:
        folder = ROOT / "models" / name
        r = measure(folder)
        metrics_path = folder / "metrics.json"
        metrics = json.loads(metrics_path.read_text())
        metrics["real_footage"] = r
        metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
        write_section(folder / "MODEL_CARD.md", r)
        print(f"{name}: {json.dumps(r)}")


if __name__ == "__main__":
    main()
