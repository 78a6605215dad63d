"""Real footage with our own labels: where it lives, how it is split, and how a model is scored on it.

The footage is not ours to ship: it comes from Debian's ``opencv-doc`` package (OpenCV's sample data,
installed by ``scripts/setup.sh``); the repository holds only the labels we drew on its frames
(``models/footage/*.labels.json``). Each labels file splits its frames in two: ``tune`` frames choose
thresholds, ``test`` frames are reported on, so no reported figure comes from the frames it was
tuned on. Scoring goes through the agent's own engine (preprocessing, adapter, NMS), so the figures
are the ones a camera gets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from agent.vision.detections import box_iou
from agent.vision.engine import ModelEngine

ROOT = Path(__file__).resolve().parents[2]
LABELS_DIR = ROOT / "models" / "footage"
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
MATCH_IOU = 0.5


class FootageMissing(FileNotFoundError):
    """The opencv-doc sample data is not installed; the message says how to get it."""


def opencv_data(name: str) -> Path:
    path = OPENCV_DATA / name
    if not path.is_file():
        raise FootageMissing(
            f"{path} is missing: install Debian's opencv-doc package (apt-get install opencv-doc; "
            "scripts/setup.sh does it as root)"
        )
    return path


@dataclass(frozen=True)
class Truth:
    label: str
    box: tuple[float, float, float, float]  # normalized x1, y1, x2, y2
    difficult: bool


@dataclass(frozen=True)
class LabelledFrame:
    index: int
    image: np.ndarray
    truth: list[Truth]
    name: str = ""  # a still photo's path under opencv-doc's examples (clip frames go by index)


@dataclass(frozen=True)
class Footage:
    name: str
    source: Path
    tune: list[LabelledFrame]
    test: list[LabelledFrame]


def load_footage(labels: str | Path = "vtest") -> Footage:
    """Read a labels file (a name under models/footage or a path) and the frames it labels."""
    path = Path(labels)
    if not path.suffix:
        path = LABELS_DIR / f"{labels}.labels.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    source = opencv_data(spec["video"])
    w, h = spec["width"], spec["height"]
    wanted = {int(k): v for k, v in spec["frames"].items()}
    frames: dict[int, LabelledFrame] = {}
    cap = cv2.VideoCapture(str(source))
    try:
        index = 0
        while len(frames) < len(wanted):
            ok, image = cap.read()
            if not ok:
                break
            if index in wanted:
                if image.shape[:2] != (h, w):
                    raise ValueError(
                        f"{source} frame {index} is {image.shape[1]}x{image.shape[0]}, labels say {w}x{h}"
                    )
                truth = [
                    Truth(
                        t["label"],
                        (t["box"][0] / w, t["box"][1] / h, t["box"][2] / w, t["box"][3] / h),
                        bool(t.get("difficult", False)),
                    )
                    for t in wanted[index]
                ]
                frames[index] = LabelledFrame(index, image, truth)
            index += 1
    finally:
        cap.release()
    missing = sorted(set(wanted) - set(frames))
    if missing:
        raise ValueError(f"{source} has no frames {missing[:5]}: is it the video the labels were drawn on?")
    tune = set(spec["split"]["tune"])
    return Footage(
        path.name.removesuffix(".labels.json"),
        source,
        [frames[i] for i in sorted(frames) if i in tune],
        [frames[i] for i in sorted(frames) if i not in tune],
    )


def load_stills(labels: str | Path = "stills") -> list[LabelledFrame]:
    """Labelled still photos (a name under models/footage or a path): a real source apart from the
    clip, never tuned on, so every frame is a test frame. Paths are under opencv-doc's examples."""
    path = Path(labels)
    if not path.suffix:
        path = LABELS_DIR / f"{labels}.labels.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for index, (rel, truths) in enumerate(spec["images"].items()):
        file = OPENCV_DATA.parent / rel
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise FootageMissing(f"{file} is missing or unreadable: install Debian's opencv-doc package")
        h, w = image.shape[:2]
        truth = [
            Truth(
                t["label"],
                (t["box"][0] / w, t["box"][1] / h, t["box"][2] / w, t["box"][3] / h),
                bool(t.get("difficult", False)),
            )
            for t in truths
        ]
        out.append(LabelledFrame(index, image, truth, rel))
    return out


@dataclass
class Scored:
    """Detections of one label on a set of frames, matched to the truth, at every score."""

    scores: np.ndarray  # every detection's score
    tp: np.ndarray  # matched a non-difficult truth box
    ignored: np.ndarray  # matched only a difficult one: neither a hit nor a false alarm
    n_truth: int  # non-difficult truth boxes
    per_frame: list[tuple[np.ndarray, int]]  # (scores of the frame's detections, truth count incl. difficult)

    def at(self, threshold: float) -> dict[str, float]:
        keep = (self.scores >= threshold) & ~self.ignored
        tp = int((keep & self.tp).sum())
        fp = int((keep & ~self.tp).sum())
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / self.n_truth if self.n_truth else float("nan")
        errors = [abs(int((s >= threshold).sum()) - n) for s, n in self.per_frame]
        return {
            "threshold": round(threshold, 2),
            "precision": precision,
            "recall": recall,
            "tp": tp,
            "fp": fp,
            "truth": self.n_truth,
            "count_error": float(np.mean(errors)) if errors else float("nan"),
            "frames_found": float(np.mean([(s >= threshold).any() for s, n in self.per_frame if n]))
            if any(n for _, n in self.per_frame)
            else float("nan"),
        }


def detect(engine: ModelEngine, frames: list[LabelledFrame], floor: float = 0.05) -> list:
    """Each frame's detections through the engine, with every threshold lowered to ``floor``."""
    low = engine.manifest.thresholds.model_copy(
        update={"confidence": floor, "per_class": dict.fromkeys(engine.manifest.labels, floor)}
    )
    manifest = engine.manifest.model_copy(update={"thresholds": low})
    prep = engine.preprocessor()
    return [engine.infer(f.image, prep, manifest) for f in frames]


def score_label(label: str, labels: list[str], frames: list[LabelledFrame], found: list) -> Scored:
    """Greedy matching by score at IoU 0.5, as PASCAL VOC does, for one label."""
    cid = labels.index(label)
    scores, tp, ignored, per_frame = [], [], [], []
    n_truth = 0
    for frame, dets in zip(frames, found, strict=True):
        truth = [t for t in frame.truth if t.label == label]
        n_truth += sum(not t.difficult for t in truth)
        mine = dets[dets.class_id == cid]
        order = np.argsort(-mine.confidence, kind="stable")
        boxes, confs = mine.xyxy[order], mine.confidence[order]
        gt = np.asarray([t.box for t in truth], np.float32).reshape(-1, 4)
        ious = box_iou(boxes, gt) if len(gt) and len(boxes) else np.zeros((len(boxes), len(gt)))
        used = np.zeros(len(gt), bool)
        for i in range(len(boxes)):
            j = -1
            if len(gt):
                cand = np.where(~used & (ious[i] >= MATCH_IOU))[0]
                if len(cand):
                    j = int(cand[np.argmax(ious[i, cand])])
            if j >= 0:
                used[j] = True
                tp.append(not truth[j].difficult)
                ignored.append(truth[j].difficult)
            else:
                tp.append(False)
                ignored.append(False)
            scores.append(float(confs[i]))
        per_frame.append((confs.astype(np.float32), len(truth)))
    return Scored(
        np.asarray(scores, np.float32), np.asarray(tp, bool), np.asarray(ignored, bool), n_truth, per_frame
    )


def tune_threshold(scored: Scored, precision: float, *, lo: float = 0.25, hi: float = 0.9) -> float:
    """A threshold (in hundredths) whose precision reaches ``precision`` with the most recall.

    Several thresholds often tie (a few static objects found with high scores and no false alarm
    anywhere in between): then the middle of the tied run, so a threshold is not pushed to the edge
    of what a handful of tuning frames happen to allow. Where no threshold reaches the precision,
    the best F1. The search stays within ``lo``..``hi``.
    """
    grid = [k / 100 for k in range(round(lo * 100), round(hi * 100) + 1)]
    rows = [scored.at(t) for t in grid]
    ok = [r for r in rows if r["precision"] >= precision and r["tp"] > 0]
    if not ok:
        f1 = [
            2 * r["precision"] * r["recall"] / (r["precision"] + r["recall"]) if r["tp"] else 0.0
            for r in rows
        ]
        ok = [rows[int(np.argmax(f1))]]
    best = max(r["recall"] for r in ok)
    tied = [r["threshold"] for r in ok if r["recall"] >= best - 1e-9]
    # the run of tied thresholds that starts at the lowest one (recall only falls as t rises)
    run = [tied[0]]
    for t in tied[1:]:
        if round((t - run[-1]) * 100) != 1:
            break
        run.append(t)
    return run[len(run) // 2]
