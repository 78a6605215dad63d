"""crowd-counter on real backgrounds: painted crowds composited onto real frames, real people too.

    python -m models.pipeline.crowd_real            # the shipped counter (about 10 min on 2 cores)
    python -m models.pipeline.crowd_real --smoke    # the whole pipeline in about a minute (tests)

``python -m models.pipeline.build crowd-counter`` runs this build. 1.2.0 learnt from the renderer's
flat-shaded scenes only and read grass, brick and paving as people on real footage. Here a density
head on nanodet-coco's frozen backbone (``crowd_head.py``; the agent's density adapter reads it as it
is) learns from the renderer's people
painted, retextured and degraded onto real frames and photos from Debian's ``opencv-doc``, plus real
people: half of the labelled ``tune`` frames of ``vtest.avi`` (heads at the top of each person box).
The other half of the tune frames is kept for the agent's detection/density rule
(``crowd.sparse_below``) and the 40 ``test`` frames only for the reported figures. The renderer's own
scenes (backgrounds, lighting, weather, untextured people) never appear in training: they are the
unseen style the card reports on.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from models.pipeline import data as datasets
from models.pipeline import evaluate as ev
from models.pipeline.build_options import add_build_options, cache_folder, run_build
from models.pipeline.canvas import Canvas
from models.pipeline.import_detector import SIZE
from models.pipeline.objects import PAINTERS, distractor, head_point
from models.pipeline.spec import Spec
from models.pipeline.view import StreetView

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "models" / "crowd-counter"
DATA = Path("/usr/share/doc/opencv-doc/examples/data")
VERSION = "2.0.0"
FRAME_LONG = 400  # backgrounds are scaled to this long side before painting (1.3.0's input was 320; 2.0.0's 416 upscales it a little), and painting costs 2.5x less than at 640
TRAIN_SEED, HELD_SEED, GOLDEN_SEED = 2_000_000, 6_000_000, 6_900_000
# Photos without people (ones with people, e.g. messi5 or the calibration shots held by a person,
# would teach "a person here counts zero"). The held-out composites paint on the second list only.
TRAIN_PHOTOS = (
    "aero1.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "board.jpg", "box_in_scene.png",
    "building.jpg", "butterfly.jpg", "chicky_512.png", "ela_original.jpg", "home.jpg", "leuvenA.jpg",
    "left.jpg", "licenseplate_motion.jpg", "orange.jpg", "rubberwhale1.png", "smarties.png",
    "starry_night.jpg", "stuff.jpg", "sudoku.png",
)  # fmt: skip
HELD_PHOTOS = ("aero3.jpg", "aloeR.jpg", "fruits.jpg", "leuvenB.jpg", "right.jpg", "squirrel_cls.jpg")
HEAD_FROM_TOP = 0.1  # head centre below the top of a person box, as a share of its height (painters: 0.1)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- real frames ------------------------------------------------------------------------------------
@dataclass
class RealFrame:
    """A background (BGR, long side FRAME_LONG) and the real heads already in it (pixels)."""

    image: np.ndarray
    heads: np.ndarray
    name: str


def _fit(image: np.ndarray, heads: np.ndarray | None = None) -> RealFrame:
    h, w = image.shape[:2]
    s = FRAME_LONG / max(h, w)
    out = cv2.resize(
        image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    )
    pts = np.zeros((0, 2), np.float32) if heads is None else (heads * s).astype(np.float32)
    return RealFrame(out, pts, "")


def person_heads(frame) -> np.ndarray:
    """Head points of a labelled frame's people (difficult ones too: they are there), in pixels."""
    h, w = frame.image.shape[:2]
    rows = []
    for t in frame.truth:
        if t.label != "person":
            continue
        x1, y1, x2, y2 = t.box
        rows.append(((x1 + x2) / 2 * w, (y1 + (y2 - y1) * HEAD_FROM_TOP) * h))
    return np.asarray(rows, np.float32).reshape(-1, 2)


def split_tune(footage) -> tuple[list, list]:
    """Tune frames 10, 50, 90, ... train; 30, 70, 110, ... choose the agent's rule. Alternate frames
    so both halves span the whole clip (the crowd changes along it)."""
    train = [f for f in footage.tune if f.index % 40 == 10]
    rule = [f for f in footage.tune if f.index % 40 != 10]
    return train, rule


def backgrounds(held: bool, tune_train: list, smoke: bool = False) -> list[RealFrame]:
    """Real frames to paint on. Training: the training tune frames of vtest with their people, the
    median of those frames (the street corner with nobody in it), tree.avi and the training photos.
    Held-out composites: other tree.avi frames and photos, and the same empty street corner."""
    from models.pipeline.transfer import video_frames

    lim = 3 if smoke else None
    out: list[RealFrame] = []
    if tune_train:
        empty = np.median(np.stack([f.image for f in tune_train]), axis=0).astype(np.uint8)
        out.append(replace(_fit(empty), name="vtest-median"))
        if not held:
            for f in tune_train:
                out.append(replace(_fit(f.image, person_heads(f)), name=f"vtest-{f.index}"))
    for k, frame in enumerate(
        video_frames("tree.avi", lambda i: i % 6 == 0 and ((i // 6) % 5 == 0) == held, lim)
    ):
        out.append(replace(_fit(frame), name=f"tree-{k}"))
    for name in (HELD_PHOTOS if held else TRAIN_PHOTOS)[: lim or None]:
        img = cv2.imread(str(DATA / name), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"{DATA / name} is missing: install Debian's opencv-doc package")
        out.append(replace(_fit(img), name=name))
    return out


# -- composites -------------------------------------------------------------------------------------
def crowd_size(rng: np.random.Generator) -> int:
    """Painted people per composite: a quarter none (real frames as they are: hard negatives and
    real low counts), then few, tens and up to 200."""
    return int(
        rng.choice(
            [0, rng.integers(1, 10), rng.integers(10, 60), rng.integers(60, 201)], p=[0.25, 0.2, 0.3, 0.25]
        )
    )


def composite(bg: RealFrame, rng: np.random.Generator, pool: list[np.ndarray], count: int):
    """Paint ``count`` people (and a few unlabelled cars, bikes, bins) onto a real frame, far to near,
    with a random pole geometry, then degrade the frame. Returns BGR and every head point in pixels."""
    from models.pipeline.transfer import _degrade, _retexture, pixel_box

    img, heads = bg.image.copy(), bg.heads.copy()
    h, w = img.shape[:2]
    if rng.random() < 0.5:
        img = img[:, ::-1].copy()
        heads[:, 0] = w - heads[:, 0]
    if rng.random() < 0.5:  # a random zoom: more distinct backgrounds, real people at other sizes
        s = rng.uniform(0.55, 1.0)
        cw, ch = int(w * s), int(h * s)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
        heads = (heads - [x0, y0]) * [w / cw, h / ch]
        heads = heads[(heads[:, 0] >= 0) & (heads[:, 0] < w) & (heads[:, 1] >= 0) & (heads[:, 1] < h)]
    view = StreetView(rng, w, h, plaza=True)
    view.horizon = h * rng.uniform(-0.5, 0.35)
    tallest = rng.uniform(20, max(40.0, 160.0 - 0.6 * count)) * h / 300  # px of a person at the bottom row
    view.cam_h = (h - view.horizon) * 1.72 / tallest
    y_lo = max(view.min_row(), 0.0) + 0.03 * h
    if rng.random() < 0.5:
        xs = rng.uniform(-0.02 * w, 1.02 * w, count)
        ys = y_lo + (h * 1.08 - y_lo) * rng.uniform(0, 1, count) ** 0.8
    else:  # a few gatherings
        k = int(rng.integers(1, 4))
        centers = np.stack([rng.uniform(0.15, 0.85, k) * w, rng.uniform(y_lo, h, k)], 1)
        which = rng.integers(0, k, count)
        spread = rng.uniform(0.05, 0.2) * w
        xs = centers[which, 0] + rng.normal(0, spread, count)
        ys = np.clip(centers[which, 1] + rng.normal(0, spread * 0.5, count), y_lo, h * 1.08)
    items = [("person", float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
    for _ in range(int(rng.integers(0, 4))):  # not people: must not be counted
        kind = ("bicycle", "vehicle", "other")[int(rng.integers(3))]
        items.append((kind, float(rng.uniform(0, w)), float(rng.uniform(y_lo, h * 1.02))))
    items.sort(key=lambda t: t[2])
    c = Canvas(np.ascontiguousarray(img))
    painted_heads = []
    for inst, (kind, x, y) in enumerate(items, start=1):
        c.begin(inst)
        r = np.random.default_rng(int(rng.integers(1 << 31)))
        if kind == "other":
            c.current = 0
            distractor(c, view, r, x, y)
            c.end()
            continue
        PAINTERS[kind](c, view, r, x, y, False)
        extent, owned = c.end()
        if kind == "person":
            painted_heads.append((x, head_point(view, y)))
        if extent is None or owned == 0:
            continue
        bx = pixel_box(extent, w, h)
        if bx[2] - bx[0] >= 2 and bx[3] - bx[1] >= 2:
            _retexture(c.image, c.ids == inst, bx, rng, pool)
    out = c.image
    if len(items) and rng.random() < 0.6:  # soften the painters' crisp edges to the footage's sharpness
        soft = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
        obj = c.ids > 0
        out[obj] = soft[obj]
    ph = np.asarray(painted_heads, np.float32).reshape(-1, 2)
    ph = ph[(ph[:, 0] >= 0) & (ph[:, 0] < w) & (ph[:, 1] >= 0) & (ph[:, 1] < h)]
    return _degrade(out, rng), np.concatenate([heads.astype(np.float32), ph])


_POOL: tuple[list[RealFrame], list[np.ndarray], np.ndarray] | None = None


# How often each kind of background is painted on: vtest is one scene among the others, so it is
# kept to about a third of the composites (a counter for every street, not for this corner).
SHARE = {"vtest-tune": 0.25, "vtest-median": 0.1}


def background_weights(bgs: list[RealFrame]) -> np.ndarray:
    kinds = [
        "vtest-median"
        if b.name == "vtest-median"
        else "vtest-tune"
        if b.name.startswith("vtest")
        else "other"
        for b in bgs
    ]
    fixed = {k: SHARE[k] for k in SHARE if k in kinds}
    rest = 1.0 - sum(fixed.values())
    counts = {k: kinds.count(k) for k in set(kinds)}
    w = np.array([fixed.get(k, rest) / counts[k] for k in kinds])
    return w / w.sum()


def _init_pool(bgs: list[RealFrame]) -> None:
    global _POOL
    _POOL = (bgs, [b.image for b in bgs], background_weights(bgs))


def _sample_raw(seed: int) -> tuple[np.ndarray, np.ndarray]:
    bgs, textures, weights = _POOL
    r = np.random.default_rng(seed)
    bg = bgs[int(r.choice(len(bgs), p=weights))]
    return composite(bg, r, textures, crowd_size(r))


def make_raw(
    first_seed: int, n: int, bgs: list[RealFrame], workers: int = 2
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` composites (BGR at the background's size, head points in pixels), each a pure function
    of its seed and the backgrounds."""
    seeds = range(first_seed, first_seed + n)
    if n < 64 or workers < 2:
        _init_pool(bgs)
        return [_sample_raw(s) for s in seeds]
    with ProcessPoolExecutor(workers, initializer=_init_pool, initargs=(bgs,)) as pool:
        return list(pool.map(_sample_raw, seeds, chunksize=32))


@dataclass
class FeatureSet:
    """Training data for the density head: the frozen backbone's three maps of each frame and its
    scaled density target."""

    feats: list[np.ndarray]
    maps: np.ndarray


def feature_set(sess, samples: list[tuple[np.ndarray, np.ndarray]]) -> FeatureSet:
    from models.pipeline import crowd_head
    from models.pipeline.transfer import cache_features

    images, heads = [s[0] for s in samples], [s[1] for s in samples]
    return FeatureSet(cache_features(sess, images), crowd_head.targets(images, heads))


def _cached(path: Path | None, make: Callable[[], FeatureSet]) -> FeatureSet:
    if path is not None and path.exists():
        z = np.load(path)
        return FeatureSet([z["f0"], z["f1"], z["f2"]], z["maps"])
    out = make()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, f0=out.feats[0], f1=out.feats[1], f2=out.feats[2], maps=out.maps)
    return out


# -- training -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    train: int
    held: int
    style: int
    steps: int
    batch: int
    lr: float
    calibration: int


FULL = Plan(train=3000, held=300, style=300, steps=2500, batch=16, lr=2e-3, calibration=64)
SMOKE = Plan(train=16, held=8, style=6, steps=3, batch=2, lr=2e-3, calibration=4)


# -- measurement ----------------------------------------------------------------------------------
def real_counts(folder: Path, frames: list) -> np.ndarray:
    """Counts the agent's engine gives on real frames with ``folder``'s shipped model file."""
    from agent.vision.engine import EngineOptions, load_engine

    engine = load_engine(folder, EngineOptions(intra_op_threads=2, self_test=False))
    prep = engine.preprocessor()
    return np.asarray([engine.infer(f.image, prep).count for f in frames], np.float64)


def count_figures(pred: np.ndarray, truth: np.ndarray) -> dict:
    return {
        "frames": len(truth),
        "mean_truth": round(float(truth.mean()), 3),
        "mean_count": round(float(pred.mean()), 3),
        "mae": round(float(np.abs(pred - truth).mean()), 3),
        "mean_signed_error": round(float((pred - truth).mean()), 3),
    }


def detector_counts(frames: list, folder: Path = ROOT / "models" / "nanodet-coco") -> np.ndarray:
    """People a shipped detector (nanodet-coco unless told) finds per frame at its thresholds."""
    from agent.vision.engine import EngineOptions, load_engine

    engine = load_engine(folder, EngineOptions(intra_op_threads=2, self_test=False))
    prep = engine.preprocessor()
    person = engine.manifest.labels.index("person")
    return np.asarray(
        [int((engine.infer(f.image, prep).class_id == person).sum()) for f in frames], np.float64
    )


def agent_rule(density: np.ndarray, detected: np.ndarray, sparse_below: float) -> np.ndarray:
    """agent/vision/crowd.py's choice: detections below ``sparse_below``, else density, never fewer
    than the detections."""
    return np.where(density < sparse_below, detected, np.maximum(density, detected))


def style_scenes(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The renderer's own crowd scenes (held-out seeds) at 640x360: a style training never saw."""
    from models.pipeline.render import render_crowd

    scenes = [render_crowd(seed) for seed in range(datasets.HELDOUT_SEEDS, datasets.HELDOUT_SEEDS + n)]
    return [(sc.image, sc.points) for sc in scenes]


def _bands(pred: np.ndarray, points: list[np.ndarray]) -> dict:
    truth = datasets.CrowdSet(np.empty((0,), np.uint8), points, [], [])  # count_report reads the points only
    return {k: {kk: round(vv, 3) for kk, vv in v.items()} for k, v in ev.count_report(pred, truth).items()}


# -- the build ------------------------------------------------------------------------------------
def _previous(out: Path, cache: Path) -> Path | None:
    """A copy of the counter shipped before this build (to measure old against new on the same frames)."""
    keep = cache / "crowd-counter-previous"
    manifest = out / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text())["version"] != VERSION:
        if keep.exists():
            shutil.rmtree(keep)
        keep.mkdir(parents=True)
        for p in out.iterdir():
            if p.is_file():
                shutil.copy2(p, keep / p.name)
    return keep if (keep / "manifest.json").exists() else None


def build(
    out: Path, plan: Plan, cache: Path | None, smoke: bool = False, data_dir: Path | None = None
) -> dict:
    from models.pipeline import crowd_head
    from models.pipeline.export import tail_nodes
    from models.pipeline.footage import load_footage
    from models.pipeline.import_detector import INPUT, quantize
    from models.pipeline.manifest import write_manifest
    from models.pipeline.transfer import backbone_session, copy_licenses

    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    previous = _previous(TARGET, cache or ROOT / "out" / "cache") if not smoke else None
    footage = load_footage()
    tune_train, tune_rule = split_tune(footage)
    train_bgs = backgrounds(False, tune_train, smoke)
    held_bgs = backgrounds(True, tune_train, smoke)
    key = f"crowd-nanodet-{VERSION}"
    _log(f"crowd-counter: {plan.train} training composites on {len(train_bgs)} real frames")
    t0 = time.monotonic()
    sess = backbone_session()
    trainset = _cached(
        cache and cache / f"{key}-train-{plan.train}.npz",
        lambda: feature_set(sess, make_raw(TRAIN_SEED, plan.train, train_bgs)),
    )
    held_raw = make_raw(HELD_SEED, plan.held, held_bgs)  # cheap at 300; the images calibrate INT8 too
    held_points = [p for _, p in held_raw]
    source = f"{plan.train} composites (seeds {TRAIN_SEED}..) on {len(train_bgs)} real frames"
    if data_dir is not None:
        own = datasets.read_crowd_dir(data_dir)
        mine = feature_set(sess, own)
        trainset = FeatureSet(
            [np.concatenate([a, b]) for a, b in zip(trainset.feats, mine.feats, strict=True)],
            np.concatenate([trainset.maps, mine.maps]),
        )
        source += f" and {len(own)} images from {data_dir}"
    style = style_scenes(plan.style)
    data_s = time.monotonic() - t0
    _log(f"crowd-counter: data ready in {data_s:.0f} s; training {plan.steps} steps of {plan.batch}")

    import torch

    head, train_s = crowd_head.train_head(
        trainset.feats, trainset.maps, plan.steps, plan.batch, plan.lr, _log
    )
    fp32, int8 = out / "crowd-counter-fp32.onnx", out / "crowd-counter-int8.onnx"
    crowd_head.export(head, fp32)
    calib = [img for img, _ in held_raw[: plan.calibration]]
    quantize(fp32, int8, calib, exclude=tail_nodes(fp32, include_last_convs=True))

    timing = ev.time_side_by_side(
        {"fp32": fp32, "int8": int8}, INPUT.width, INPUT.height, runs=10 if smoke else 40
    )
    test_truth = np.asarray([sum(t.label == "person" for t in f.truth) for f in footage.test], np.float64)
    rule_truth = np.asarray([sum(t.label == "person" for t in f.truth) for f in tune_rule], np.float64)
    m: dict = {
        "name": "crowd-counter",
        "version": VERSION,
        "input": [INPUT.width, INPUT.height],
        "training": {
            "data": source,
            "backgrounds": sorted({b.name.split("-")[0] for b in train_bgs}),
            "real_people_frames": [f.index for f in tune_train],
            "backbone": "nanodet-coco (frozen)",
            "steps": plan.steps,
            "batch": plan.batch,
            "train_s": round(train_s),
            "data_s": round(data_s),
            "torch": torch.__version__,
            "bf16": True,
        },
        "ms_per_frame": {k: round(v, 3) for k, v in timing.items()},
        "speedup": round(timing["fp32"] / timing["int8"], 3),
    }
    variants = {"fp32": fp32, "int8": int8}
    for k, path in variants.items():
        s = ev.session(path)
        m[k] = {
            "real_test": count_figures(
                crowd_head.onnx_counts(s, [f.image for f in footage.test]), test_truth
            ),
            "style": _bands(crowd_head.onnx_counts(s, [i for i, _ in style]), [p for _, p in style]),
            "composites": _bands(crowd_head.onnx_counts(s, [i for i, _ in held_raw]), held_points),
        }
    style_mape = {k: m[k]["style"].get("10-200", {}).get("mape", math.nan) for k in variants}
    shipped = "int8" if style_mape["int8"] - style_mape["fp32"] <= 1.0 else "fp32"
    m["shipped"] = shipped
    file = variants[shipped]
    golden = _golden(out, held_bgs, file)
    write_manifest(
        out,
        _spec(plan),
        file=file.name,
        other=[fp32.name, int8.name],
        classes=["person"],
        thresholds={"confidence": 0.25, "iou": 0.45, "per_class": {}},
        golden={k: v for k, v in golden.items() if k != "people"},
        input=INPUT,
    )
    copy_licenses(out)  # the file carries NanoDet's backbone
    # what a camera gets: the agent's engine on the real test frames, old model and new
    m["real_footage"] = {
        "footage": footage.name,
        "test_frames": len(footage.test),
        "new": count_figures(real_counts(out, footage.test), test_truth),
    }
    if previous is not None:
        m["real_footage"]["previous"] = {
            "version": json.loads((previous / "manifest.json").read_text())["version"],
            **count_figures(real_counts(previous, footage.test), test_truth),
        }
    elif (TARGET / "metrics.json").exists():  # a rebuild: keep the figures measured on the old model
        old = json.loads((TARGET / "metrics.json").read_text()).get("real_footage", {}).get("previous")
        if old:
            m["real_footage"]["previous"] = old
    # the agent's rule on the tune frames kept out of training (crowd.sparse_below)
    density = real_counts(out, tune_rule)
    detected = detector_counts(tune_rule)
    m["rule_frames"] = {
        "frames": [f.index for f in tune_rule],
        "density": count_figures(density, rule_truth),
        "detections": count_figures(detected, rule_truth),
        "max_density": round(float(density.max()), 2),
        "agent_rule": {
            str(s): count_figures(agent_rule(density, detected, s), rule_truth) for s in (0, 5, 10, 20, 30)
        },
    }
    m["golden"] = golden
    m["total_s"] = round(time.monotonic() - started)
    (out / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
    from models.pipeline.crowd_card import write_card

    write_card(out / "MODEL_CARD.md", m, plan)
    _log(f"crowd-counter: done in {m['total_s']} s, shipped {file.name}")
    return m


def _spec(plan: Plan) -> Spec:
    """What the manifest says of the counter (its training is this module's ``plan``)."""
    return Spec(
        "crowd-counter", "density", VERSION, SIZE, SIZE, plan.train, 0, plan.held, plan.steps,
        plan.batch, plan.lr, 0, GOLDEN_SEED,
    )  # fmt: skip


def _golden(out: Path, bgs: list[RealFrame], file: Path) -> dict:
    """A held-out composite of about 60 people and the count the shipped file gives on it."""
    r = np.random.default_rng(GOLDEN_SEED)
    bg = next((b for b in bgs if b.name == "vtest-median"), bgs[0])
    img, heads = composite(bg, r, [b.image for b in bgs], 60)
    _ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    (out / "golden.jpg").write_bytes(buf.tobytes())
    from models.pipeline.crowd_head import onnx_counts

    count = float(onnx_counts(ev.session(file), [cv2.imdecode(buf, cv2.IMREAD_COLOR)])[0])
    return {"image": "golden.jpg", "count": round(count, 2), "count_tolerance": 0.1, "people": len(heads)}


def run(args: argparse.Namespace) -> int:
    """A build from parsed options: this module's own, or ``build crowd-counter``'s."""
    plan = SMOKE if args.smoke else FULL
    return run_build(lambda: build(args.out or TARGET, plan, cache_folder(args), args.smoke, args.data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.pipeline.crowd_real", description=__doc__.splitlines()[0]
    )
    add_build_options(
        parser,
        out="output folder (default: models/crowd-counter/)",
        data="also train on this directory of images with head points",
        smoke="a few steps on a few composites: checks the pipeline",
        no_cache="composite afresh instead of using out/cache",
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
